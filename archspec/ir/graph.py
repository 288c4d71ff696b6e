"""The graph IR: pydantic nodes in a networkx DiGraph.

A :class:`Node` is one op application with its typed attributes, its inputs and its inferred
output shape. Nodes are added in a topological order (lowering walks the spec top-down), so
``Graph.nodes()`` needs no sort. ``Graph.modules`` records the module hierarchy the spec implies
(blocks, sequences, named groups); the code generator turns it into ``nn.Module`` classes, and
``check`` uses it to total a named layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Iterator, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PlainValidator

from ..errors import Mark
from ..ops import Attrs, ChannelsLast, Shape

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["Node", "ModuleInfo", "AuxOutput", "Graph", "make_node"]


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


_NODE_GIVEN = ("id", "op", "attrs", "inputs", "in_shapes", "shape", "scope", "local", "mark", "spec_path")
_NODE_REST = {name: f.default for name, f in Node.model_fields.items() if name not in _NODE_GIVEN}
#: make_node builds what Node(...) builds only for a model it understands: no aliases, no post-init,
#: no default factories left to call, extra keys not kept (tests/test_lower_fast.py compares them)
_NODE_PLAIN = (not Node.__pydantic_post_init__ and Node.model_config.get("extra") != "allow"
               and list(Node.model_fields)[:len(_NODE_GIVEN)] == list(_NODE_GIVEN)
               and all(f.alias is None and f.validation_alias is None for f in Node.model_fields.values())
               and all(Node.model_fields[n].default_factory is None for n in _NODE_REST))


def make_node(id: str, op: str, attrs: Attrs, inputs: list[str], in_shapes: list[Shape], shape: Shape,
              scope: str, local: str, mark: Mark | None, spec_path: str) -> Node:
    """``Node(id=..., ..., spec_path=...)`` for values that already have their fields' types (a str
    id, a list of str inputs, tuple or ChannelsLast shapes), without validating them again: what
    lowering builds for every node. The lists are the node's own (not copied)."""
    if not _NODE_PLAIN:  # pragma: no cover - another pydantic: the ordinary way
        return Node(id=id, op=op, attrs=attrs, inputs=inputs, in_shapes=in_shapes, shape=shape, scope=scope,
                    local=local, mark=mark, spec_path=spec_path)
    node = _new(Node)
    _set(node, "__dict__", {"id": id, "op": op, "attrs": attrs, "inputs": inputs, "in_shapes": in_shapes,
                            "shape": shape, "scope": scope, "local": local, "mark": mark,
                            "spec_path": spec_path, **_NODE_REST})
    _set(node, "__pydantic_fields_set__", set(_NODE_GIVEN))
    _set(node, "__pydantic_extra__", None)
    _set(node, "__pydantic_private__", None)
    return node


_new = object.__new__
_set = object.__setattr__


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
    """A lowered network.

    ``g`` is the networkx ``DiGraph`` of the nodes (each stored under the node attribute ``node``);
    it is built when first read, since importing networkx costs more than lowering most networks
    and nothing on the way from a spec to its stats needs it."""

    def __init__(self, name: str, input_shape: Shape) -> None:
        self.name = name
        self.input_shape = input_shape
        self._nodes: dict[str, Node] = {}
        self._g: "nx.DiGraph | None" = None
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

    @property
    def g(self) -> "nx.DiGraph":
        """The nodes and edges as a networkx ``DiGraph`` (node attribute ``node``), built on first use
        exactly as adding the nodes one by one builds it, and kept up to date after that."""
        if self._g is None:
            import networkx as nx

            g = nx.DiGraph()
            for nid in self._order:
                g.add_node(nid, node=self._nodes[nid])
                for src in self._nodes[nid].inputs:
                    g.add_edge(src, nid)
            self._g = g
        return self._g

    def add(self, node: Node) -> Node:
        if node.id in self._nodes or (self._g is not None and node.id in self._g):
            raise ValueError(f"duplicate node id {node.id}")
        self._nodes[node.id] = node
        if self._g is not None:
            self._g.add_node(node.id, node=node)
            for src in node.inputs:
                self._g.add_edge(src, node.id)
        self._order.append(node.id)
        return node

    def node(self, node_id: str) -> Node:
        return self._nodes[node_id]

    def nodes(self) -> Iterator[Node]:
        """All nodes in topological (spec) order, the input first."""
        nodes = self._nodes
        for nid in self._order:
            yield nodes[nid]

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, node_id: object) -> bool:
        """Is ``node_id`` a node of the graph?"""
        try:
            return node_id in self._nodes
        except TypeError:  # unhashable: not a node id (as networkx answers)
            return False

    @property
    def output_shape(self) -> Shape:
        return self.node(self.output).shape

    def lint(self) -> None:
        """Check the invariants lowering promises: a DAG, listed in topological order."""
        pos = {nid: i for i, nid in enumerate(self._order)}
        nodes = self._nodes
        if all(src in pos and pos[src] < i for i, nid in enumerate(self._order) for src in nodes[nid].inputs):
            return  # every edge goes forward in the order: a DAG in topological order
        import networkx as nx  # something is wrong: say what, as ever

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
