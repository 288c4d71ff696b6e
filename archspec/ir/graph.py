"""The graph IR: pydantic nodes in a networkx DiGraph.

A :class:`Node` is one op application with its typed attributes, its inputs and its inferred
output shape. Nodes are added in a topological order (lowering walks the spec top-down), so
``Graph.nodes()`` needs no sort. ``Graph.modules`` records the module hierarchy the spec implies
(blocks, sequences, named groups); the code generator turns it into ``nn.Module`` classes, and
``check`` uses it to total a named layer.
"""

from __future__ import annotations

from typing import Annotated, Any, Iterator, Literal, Optional

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, PlainValidator

from ..errors import Mark
from ..ops import Attrs, ChannelsLast, Shape

__all__ = ["Node", "ModuleInfo", "AuxOutput", "Graph"]


def _shape(v: Any) -> Shape:
    """A shape as a tuple, keeping the channels-last layout it may carry."""
    return v if isinstance(v, ChannelsLast) else tuple(v)


#: a shape field: a tuple of ints, or a ChannelsLast one (plain validation would drop the layout)
ShapeField = Annotated[Shape, PlainValidator(_shape)]


class Node(BaseModel):
    """One op application."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str = Field(description="unique dotted path, e.g. layer2.0.conv1")
    op: str = Field(description="registry name of the op")
    attrs: Attrs = Field(description="the op's validated attributes")
    inputs: list[str] = Field(default_factory=list, description="ids of the producers, in order")
    in_shapes: list[ShapeField] = Field(default_factory=list)
    shape: ShapeField = Field(description="inferred output shape (no batch dimension)")
    scope: str = Field("", description="module path that holds the node ('' = the network)")
    local: str = Field(description="the node's own name inside its scope")
    mark: Optional[Mark] = Field(None, description="where the spec writes this layer")
    spec_path: str = Field("", description="key path of the layer in the spec")
    # filled only when lowering for code generation (symbolic=True):
    sym_attrs: Any = Field(None, description="attrs whose numbers remember their expressions")
    sym_in: Any = Field(None, description="input shapes with symbolic channels")
    guards: tuple[str, ...] = Field((), description="Python conditions this node exists under")
    skipped: bool = Field(False, description="a call whose when: was false (an identity)")


class ModuleInfo(BaseModel):
    """A container the spec implies: a block instance, a sequence or a named group."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    path: str
    kind: Literal["network", "block", "seq", "group", "dense"]
    block: Optional[str] = None
    args: dict[str, Any] = Field(default_factory=dict)
    input: str = ""
    output: str = ""
    mark: Optional[Mark] = None
    sym_args: dict[str, Any] = Field(default_factory=dict, description="block arguments, symbolic")
    given: list[str] = Field(default_factory=list, description="parameters the call passed")
    sym_in: Any = None
    guards: tuple[str, ...] = ()


class AuxOutput(BaseModel):
    """A training-time output (GoogLeNet's auxiliary classifiers): a side branch of the network,
    run and returned in training mode with its loss weight, dropped at inference."""

    name: str = Field(description="the layer (and module attribute) that computes it, e.g. aux1")
    output: str = Field(description="node id of its output")
    tap: str = Field(description="node id it reads from the main network")
    loss_weight: float = Field(description="weight of its loss in the training objective")
    nodes: list[str] = Field(default_factory=list, description="its nodes: training-only")


class Graph:
    """A lowered network."""

    def __init__(self, name: str, input_shape: Shape) -> None:
        self.name = name
        self.input_shape = input_shape
        self.g: nx.DiGraph = nx.DiGraph()
        self._order: list[str] = []
        self.output: str = ""
        self.modules: dict[str, ModuleInfo] = {}
        #: named layers (module paths and node ids) -> the node id of their output
        self.named: dict[str, str] = {}
        #: per-layer expectations written inline (``expect:`` on a call): path -> raw mapping
        self.layer_expects: dict[str, Any] = {}
        #: training-time outputs (``aux:`` layers), in network order
        self.aux: dict[str, AuxOutput] = {}
        #: ids of the nodes only the training-time outputs use
        self.training_only: set[str] = set()

    def add(self, node: Node) -> Node:
        if node.id in self.g:
            raise ValueError(f"duplicate node id {node.id}")
        self.g.add_node(node.id, node=node)
        for src in node.inputs:
            self.g.add_edge(src, node.id)
        self._order.append(node.id)
        return node

    def node(self, node_id: str) -> Node:
        return self.g.nodes[node_id]["node"]

    def nodes(self) -> Iterator[Node]:
        """All nodes in topological (spec) order, the input first."""
        for nid in self._order:
            yield self.g.nodes[nid]["node"]

    def __len__(self) -> int:
        return len(self._order)

    @property
    def output_shape(self) -> Shape:
        return self.node(self.output).shape

    def lint(self) -> None:
        """Check the invariants lowering promises: a DAG, listed in topological order."""
        if not nx.is_directed_acyclic_graph(self.g):
            cycle = nx.find_cycle(self.g)
            raise ValueError(f"graph has a cycle: {cycle}")
        pos = {nid: i for i, nid in enumerate(self._order)}
        for a, b in self.g.edges:
            if pos[a] >= pos[b]:
                raise ValueError(f"edge {a} -> {b} goes backwards")

    def members(self, path: str) -> list[Node]:
        """The nodes inside module ``path`` (or the node ``path`` itself)."""
        prefix = path + "."
        return [n for n in self.nodes() if n.id == path or n.id.startswith(prefix)]
