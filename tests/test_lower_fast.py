"""Lowering's shortcuts give exactly what lowering everything gives (archspec.ir.lower, graph):

* a block instance whose body, arguments, input shape and depth match an earlier one is that one's
  nodes, modules and names copied under its own path (``Lowerer.body``): the whole IR — every node's
  fields, marks and key paths, every module, named layer and expectation — equals the IR lowered
  without copies, for every spec of the zoo, and a network that runs into a limit inside a copied
  block fails with the same error at the same place;
* ``make_node`` builds what ``Node(...)`` builds;
* ``Graph.g`` (networkx), built on first use, is the graph adding the nodes one by one built.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from archspec.errors import SpecError
from archspec.ir import Node
from archspec.ir.graph import make_node
from archspec.limits import DEFAULT_MAX_EDGES, DEFAULT_MAX_NODES, configure, restore
from archspec.load import expand_refs, load_networks
from archspec.ops import REGISTRY, ChannelsLast

from .test_errors import write

lowering = importlib.import_module("archspec.ir.lower")
ROOT = Path(__file__).resolve().parent.parent
REFS = expand_refs([str(ROOT / "specs")])


def _shape(s):
    return (type(s).__name__, tuple(s))


def ir(graph) -> list:
    """Everything a lowered graph holds, as comparable data."""
    out: list = []
    for n in graph.nodes():
        out.append((n.id, n.op, type(n.attrs).__name__, repr(n.attrs), list(n.inputs),
                    [_shape(s) for s in n.in_shapes], _shape(n.shape), n.scope, n.local, n.mark, n.spec_path,
                    repr(n.sym_attrs), repr(n.sym_in), n.guards, n.skipped, sorted(n.model_fields_set)))
    out.append([(p, repr(m), sorted(m.model_fields_set)) for p, m in graph.modules.items()])
    out.append((graph.output, list(graph.named.items()), repr(list(graph.layer_expects.items())),
                repr(graph.aux), sorted(graph.training_only), len(graph)))
    return out


def lower_without_copies(net, monkeypatch, symbolic=False):
    with monkeypatch.context() as m:
        m.setattr(lowering, "_body_key", lambda *a: None)
        return lowering.lower(net, symbolic=symbolic)


@pytest.mark.parametrize("ref", REFS, ids=lambda r: str(Path(r).relative_to(ROOT)))
def test_copied_block_bodies_give_the_same_ir(ref: str, monkeypatch):
    for net in load_networks(ref):
        fast, slow = lowering.lower(net), lower_without_copies(net, monkeypatch)
        assert ir(fast) == ir(slow)
        assert list(fast.g.edges) == list(slow.g.edges)


def test_the_zoo_copies_bodies():
    """The shortcut is taken: in each stage of a ResNet-152, every bottleneck after the second is a copy
    of the second (the first one changes the width and has the downsample)."""
    (net,) = load_networks(str(ROOT / "specs/torchvision/resnet152.yaml"))
    lw = lowering.Lowerer(net)
    calls = []
    real = lowering._Body.replay

    def replay(self, *a):
        calls.append(1)
        return real(self, *a)

    lowering._Body.replay = replay
    try:
        lw.run()
    finally:
        lowering._Body.replay = real
    assert len(calls) == (3 - 2) + (8 - 2) + (36 - 2) + (3 - 2)


SPEC = """name: t
input: [3, 8, 8]
blocks:
  B:
    params: [c]
    body:
      - {conv: {out: c, kernel: 3, padding: 1}}
      - {relu: {}, when: c > 4}
      - inner: {C: {k: 2}, repeat: 2}
      - {add: [[], {conv: {out: 8, kernel: 1}}]}
  C:
    params: [k]
    body:
      - {relu: {}, repeat: k}
      - {dense: {conv: {out: 2, kernel: 1}}, repeat: k}
      - {conv: {out: 8, kernel: 1}}
network:
  - {conv: {out: 8, kernel: 1}}
  - {B: {c: 8}, repeat: 6}
  - {B: {c: 4}, repeat: 3}
"""


def outcome(net, monkeypatch, copies: bool):
    try:
        g = lowering.lower(net) if copies else lower_without_copies(net, monkeypatch)
    except SpecError as err:
        return ("error", err.format())
    return ("ok", ir(g))


def test_limits_stop_a_copy_where_they_stop_lowering(tmp_path: Path, monkeypatch):
    """Every node and edge limit around the network's size: the same graph or the same error."""
    (net,) = load_networks(write(tmp_path, SPEC))
    full = lower_without_copies(net, monkeypatch)
    nodes, edges = len(full), sum(len(n.inputs) for n in full.nodes())
    try:
        seen = set()
        for max_nodes in range(1, nodes + 3):
            configure(max_nodes, DEFAULT_MAX_EDGES)
            got = outcome(net, monkeypatch, True)
            assert got == outcome(net, monkeypatch, False), max_nodes
            seen.add(got[0])
        for max_edges in range(1, edges + 3):
            configure(DEFAULT_MAX_NODES, max_edges)
            got = outcome(net, monkeypatch, True)
            assert got == outcome(net, monkeypatch, False), max_edges
            seen.add(got[0])
        assert seen == {"ok", "error"}
    finally:
        configure(DEFAULT_MAX_NODES, DEFAULT_MAX_EDGES)


def test_code_generation_lowers_every_instance(tmp_path: Path, monkeypatch):
    (net,) = load_networks(write(tmp_path, SPEC))
    assert ir(lowering.lower(net, symbolic=True)) == ir(lower_without_copies(net, monkeypatch, symbolic=True))


def test_make_node_is_node():
    attrs = REGISTRY["relu"].attrs()
    fields = dict(id="a.b", op="relu", attrs=attrs, inputs=["x"], in_shapes=[(1, 2, 3), ChannelsLast((2, 3, 1))],
                  shape=ChannelsLast((2, 3, 1)), scope="a", local="b", mark=None, spec_path="network[0]")
    slow, fast = Node(**fields), make_node(**fields)
    assert fast.__dict__ == slow.__dict__ and list(fast.__dict__) == list(slow.__dict__)
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.__pydantic_extra__ == slow.__pydantic_extra__
    assert fast.__pydantic_private__ == slow.__pydantic_private__
    assert [type(s) for s in fast.in_shapes] == [type(s) for s in slow.in_shapes]
    assert fast == slow


def test_graph_builds_networkx_on_first_use():
    (net,) = load_networks(str(ROOT / "specs/torchvision/googlenet.yaml"))
    g = lowering.lower(net)
    assert g._g is None  # nothing read it yet
    nxg = g.g
    assert list(nxg.nodes) == [n.id for n in g.nodes()]
    assert all(nxg.nodes[n.id]["node"] is n for n in g.nodes())
    assert sorted(nxg.edges) == sorted({(i, n.id) for n in g.nodes() for i in n.inputs})
    assert "input" in g and g.output in g and "nothing" not in g and ["unhashable"] not in g
