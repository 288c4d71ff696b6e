"""Per-layer and total statistics of a lowered graph, read from the op registry.

Conventions (the same everywhere archspec prints a number):

* ``params``: learnable parameters (``sum(p.numel())`` in PyTorch); BN running statistics are
  buffers and do not count. ``weights``: the same without biases (and without BN shifts).
* ``macs``: multiply-accumulates of conv / linear / matmul for one image — what the ResNet paper
  calls FLOPs; ``torch.utils.flop_counter.FlopCounterMode`` reports twice this at batch 1.
  ``shared_macs`` is the part of ``macs`` paid once per forward pass whatever the batch size (Swin
  V2's position-bias MLP): at batch B, FlopCounterMode reports 2·(B·(macs − shared_macs) + shared_macs).
* ``activations``: elements of every node's output for one image, the input included; an
  identity (an empty block, a skipped layer) aliases its input and counts nothing.
* ``neurons``: output elements of the layers with weights (conv, linear) — AlexNet's "650,000 neurons".
* ``rf`` / ``jump``: receptive field and stride (in input pixels) of one output unit, per axis.
* Training-time outputs (``aux:`` layers, GoogLeNet's auxiliary classifiers) are dropped at
  inference, so the totals above leave their layers out: they describe the network that eval mode
  runs. ``*_with_aux`` are the same totals with them (``params_with_aux`` is what the generated
  module holds, ``sum(p.numel())``); ``aux`` lists each output with its own counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import Graph, lower
from ..load import Network, load_networks
from ..ops import REGISTRY, Shape, numel

__all__ = ["LayerStats", "AuxStats", "NetStats", "analyse", "module_totals", "human", "compile_spec"]


@dataclass
class LayerStats:
    name: str
    op: str
    output: Shape
    params: int
    weights: int
    macs: int
    activations: int
    rf: tuple[int, int]
    jump: tuple[int, int]
    aux: str | None = None  # the training-time output this layer belongs to
    shared_macs: int = 0  # the part of macs paid once per forward pass, whatever the batch


@dataclass
class AuxStats:
    """One training-time output: its shape, loss weight and what its layers cost."""

    name: str
    output: Shape
    loss_weight: float
    params: int
    macs: int
    activations: int


@dataclass
class NetStats:
    name: str
    ref: str
    input: Shape
    output: Shape
    params: int
    weights: int
    macs: int
    activations: int
    neurons: int
    rf: tuple[int, int]
    layers: list[LayerStats] = field(default_factory=list)
    params_with_aux: int = 0
    weights_with_aux: int = 0
    macs_with_aux: int = 0
    activations_with_aux: int = 0
    aux: list[AuxStats] = field(default_factory=list)
    shared_macs: int = 0
    shared_macs_with_aux: int = 0

    def metric(self, key: str):
        return getattr(self, key)


def analyse(graph: Graph, ref: str = "") -> NetStats:
    """Counts for every node of ``graph`` and the totals."""
    layers: list[LayerStats] = []
    owner = {nid: a.name for a in graph.aux.values() for nid in a.nodes}
    rf: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {}
    for node in graph.nodes():
        opdef = REGISTRY[node.op]
        counts = opdef.count(node.attrs, node.in_shapes, node.shape)
        if len(node.inputs) == 1:  # most nodes: the input's own field and stride
            r_in, j_in = rf[node.inputs[0]]
        elif node.inputs:
            r_in = tuple(max(rf[i][0][a] for i in node.inputs) for a in range(2))
            j_in = tuple(max(rf[i][1][a] for i in node.inputs) for a in range(2))
        else:
            r_in, j_in = (1, 1), (1, 1)
        win = opdef.window(node.attrs, node.in_shapes)
        r_out, j_out = r_in, j_in
        if win is not None:
            if win.global_:
                x = node.in_shapes[0]
                k = (x[1], x[2]) if len(x) == 3 else (1, 1)
                s, d = k, (1, 1)
            else:
                k, s, d = win.kernel, win.stride, win.dilation
            r_out = tuple(r_in[a] + (d[a] * (k[a] - 1)) * j_in[a] for a in range(2))
            j_out = tuple(j_in[a] * s[a] for a in range(2))
        rf[node.id] = (r_out, j_out)  # type: ignore[assignment]
        acts = 0 if "alias" in opdef.tags else numel(node.shape)
        layers.append(LayerStats(node.id, node.op, node.shape, counts.params, counts.weights,
                                 counts.macs, acts, r_out, j_out, owner.get(node.id),  # type: ignore[arg-type]
                                 counts.shared_macs))
    main = [ls for ls in layers if ls.aux is None]
    neurons = sum(ls.activations for ls in main if "weighted" in REGISTRY[ls.op].tags)
    aux = []
    for a in graph.aux.values():
        rows = [ls for ls in layers if ls.aux == a.name]
        aux.append(AuxStats(a.name, graph.node(a.output).shape, a.loss_weight, sum(r.params for r in rows),
                            sum(r.macs for r in rows), sum(r.activations for r in rows)))
    return NetStats(
        name=graph.name, ref=ref, input=graph.input_shape, output=graph.output_shape,
        params=sum(ls.params for ls in main), weights=sum(ls.weights for ls in main),
        macs=sum(ls.macs for ls in main), activations=sum(ls.activations for ls in main),
        neurons=neurons, rf=rf[graph.output][0], layers=layers,
        params_with_aux=sum(ls.params for ls in layers), weights_with_aux=sum(ls.weights for ls in layers),
        macs_with_aux=sum(ls.macs for ls in layers), activations_with_aux=sum(ls.activations for ls in layers),
        aux=aux, shared_macs=sum(ls.shared_macs for ls in main),
        shared_macs_with_aux=sum(ls.shared_macs for ls in layers))


def module_totals(graph: Graph, stats: NetStats, path: str) -> dict[str, object] | None:
    """Totals of a named layer (a node or a module such as ``layer2`` or ``inception_3a``)."""
    nid = graph.named.get(path, path if path in graph else None)
    if nid is None and path not in graph.modules:
        return None
    members = {n.id for n in graph.members(path)}
    rows = [ls for ls in stats.layers if ls.name in members]
    out_id = graph.modules[path].output if path in graph.modules else nid
    out = {
        "params": sum(r.params for r in rows), "weights": sum(r.weights for r in rows),
        "macs": sum(r.macs for r in rows), "activations": sum(r.activations for r in rows),
        "neurons": sum(r.activations for r in rows if "weighted" in REGISTRY[r.op].tags),
        "output": graph.node(out_id).shape,
    }
    for k in ("params", "macs"):  # a layer's totals are the same with or without the aux outputs
        out[f"{k}_with_aux"] = out[k]
    return out


def human(n: float) -> str:
    """25557032 -> '25.56 M'; 3.86e9 -> '3.86 G'; small numbers stay exact."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:,}" if isinstance(n, int) else f"{n:.3g}"


def compile_spec(ref: str, input_override: Shape | None = None) -> list[tuple[Network, Graph, NetStats]]:
    """Load, lower and analyse every network ``ref`` names."""
    out = []
    for net in load_networks(ref):
        if input_override is not None:
            net.input = tuple(input_override)
        graph = lower(net)
        out.append((net, graph, analyse(graph, net.ref)))
    return out
