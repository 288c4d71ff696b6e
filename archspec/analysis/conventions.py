"""Counting conventions: the totals other counters print, computed statically from the lowered graph.

Counters disagree because they count different things, not because one is wrong (docs/counting.md
works ResNet-50 through). archspec's ``macs`` are multiply-accumulates of conv, linear and attention
matmuls per image; each convention here is the number one tool prints for the same network, derived
without torch:

* ``macs``: archspec's own count (the ResNet paper's "FLOPs").
* ``flops``: 2 × MACs, what ``torch.utils.flop_counter.FlopCounterMode`` reports at batch 1 (with
  autograd on: under ``no_grad`` CPU attention takes a fused path it does not see).
* ``torchvision``: the weights' ``meta["_ops"]``: MACs in G, rounded to 3 decimals (torchvision
  calls them GFLOPS; they are GMACs).
* ``fvcore`` (0.1.5): ``FlopCountAnalysis(model, x).total()`` at batch 1: one fused multiply-add is
  one flop, and only the aten ops it has a handle for count (``_convolution``, ``linear``,
  ``addmm``, ``matmul``, ``bmm``, ``einsum``; ``batch_norm`` 1 or 2 per element in eval,
  ``layer_norm`` 4 or 5, ``adaptive_avg_pool2d`` 1 per input element); max pooling, activations,
  additions and ``scaled_dot_product_attention`` have none and count 0.
* ``ptflops`` (0.7.5, its default ``pytorch`` backend): ``get_model_complexity_info`` in MACs: a
  forward hook per module of the types in its ``MODULES_MAPPING`` (conv and linear with their
  bias, BN 1 or 2 per element, LayerNorm 1, ReLU / GELU 1 per output element, pooling 1 per
  input element, its own formula for ``nn.MultiheadAttention``) plus the ``torch.nn.functional``
  calls it patches (``relu``, ``gelu``, ``silu``, the poolings, ``softmax``): ``nn.ReLU``,
  ``nn.GELU`` and the pooling modules call them, so they count twice.
* ``thop`` (0.1.1): ``profile(model, (x,))`` in MACs: a hook per module of the exact types in its
  ``register_hooks`` (conv and linear without bias, BN and LayerNorm 2 per element, ×2 with an
  affine, average pooling 1 per output element, adaptive average pooling (k + 1) per output
  element, softmax 3 per element less one per row); ReLU, max pooling and dropout count 0, and a
  module type it does not list counts 0 (its children still count).

How a node is counted for a tool is derived from the registry, never from a table of op names: the
op's ``OpDef.tool_counts`` hook if it declares one for that tool, else the torch module class the
op emits (``Emit.module``: ``nn.BatchNorm2d(64)`` is a BatchNorm2d, which each tool counts by its
own rule, :data:`TORCH_CLASSES`), else — a functional op (``x + y``, ``torch.cat``, indexing) —
zero, which is what every tool gives element-wise and indexing code. What cannot be derived that
way (a module class none of the rules lists; emitted code or a helper that calls something a tool
may count) is reported as not modelled, with the reason, and the total is ``None``: never a silent
zero.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from ..ir import Graph
from ..ops import REGISTRY, Counts, Shape, numel
from .stats import NetStats

__all__ = ["Convention", "CONVENTIONS", "TOOLS", "TORCH_CLASSES", "ToolRule", "NodeCount", "Tally",
           "tool_count", "tally", "convention_value", "format_value"]


@dataclass(frozen=True)
class Convention:
    """One way of counting: its name (``--convention``), the JSON key of its total, the column
    header, and what it is."""

    name: str
    key: str
    column: str
    doc: str


CONVENTIONS: dict[str, Convention] = {c.name: c for c in (
    Convention("macs", "macs", "MACs", "multiply-accumulates of conv/linear/attention matmuls per image "
               "(the ResNet paper's FLOPs)"),
    Convention("flops", "flops", "FLOPs", "2 × MACs: torch.utils.flop_counter.FlopCounterMode at batch 1"),
    Convention("torchvision", "torchvision_ops", "_ops (GMACs)",
               "torchvision weights' meta['_ops']: MACs in G to 3 decimals"),
    Convention("fvcore", "fvcore_flops", "fvcore FLOPs",
               "fvcore 0.1.5 FlopCountAnalysis.total(): one fused multiply-add = one flop, its aten op set"),
    Convention("ptflops", "ptflops_macs", "ptflops MACs",
               "ptflops 0.7.5 get_model_complexity_info (pytorch backend): its module and functional set"),
    Convention("thop", "thop_macs", "thop MACs", "thop 0.1.1 profile(): its module set, per module type"),
)}

#: the conventions that are another tool's per-op rules (the others are functions of the MACs)
TOOLS = ("fvcore", "ptflops", "thop")


@dataclass(frozen=True)
class Ctx:
    """One node, as a rule sees it: input shapes, output shape, its counts (batch 1)."""

    ins: list[Shape]
    out: Shape
    counts: Counts

    @property
    def n_in(self) -> int:
        return numel(self.ins[0])

    @property
    def n_out(self) -> int:
        return numel(self.out)

    @property
    def bias(self) -> bool:
        """A conv or linear layer with a bias (its parameters exceed its weights)."""
        return self.counts.params > self.counts.weights

    @property
    def affine(self) -> bool:
        """A normalisation with a learned scale and shift."""
        return self.counts.params > 0


Rule = Callable[[Ctx], int]


def _zero(c: Ctx) -> int:
    return 0


def _thop_adaptive_avg(c: Ctx) -> int:
    # thop: kernel = prod(in_hw / out_hw) in float64, (kernel + 1) * output elements, truncated
    (_, h, w), (_, oh, ow) = c.ins[0], c.out
    return int((float(h) / oh * (float(w) / ow) + 1) * c.n_out)


def _thop_softmax(c: Ctx) -> int:
    f = c.ins[0][0]  # nn.Softmax(dim=1): the features of each row
    return c.n_in // f * (3 * f - 1)


@dataclass(frozen=True)
class ToolRule:
    """How each tool counts one call of a torch module class, and why."""

    fvcore: Rule
    ptflops: Rule
    thop: Rule
    why: str


#: torch module classes that ops emit, and how each tool counts one call of them. Keyed by the
#: tool's own unit (a module class: thop and ptflops hook module types, fvcore sees the aten ops
#: their forward runs), never by an archspec op: a new op that emits one of these is counted with
#: no change here. A class missing here is reported as not modelled.
TORCH_CLASSES: dict[str, ToolRule] = {
    "Conv2d": ToolRule(
        fvcore=lambda c: c.counts.macs, ptflops=lambda c: c.counts.macs + (c.n_out if c.bias else 0),
        thop=lambda c: c.counts.macs,
        why="fvcore aten::_convolution and thop count the MACs; ptflops adds one per output element "
            "for the bias"),
    "Linear": ToolRule(
        fvcore=lambda c: c.counts.macs, ptflops=lambda c: c.counts.macs + (c.n_out if c.bias else 0),
        thop=lambda c: c.counts.macs,
        why="fvcore aten::linear and thop count the MACs; ptflops adds one per output element for the bias"),
    "BatchNorm2d": ToolRule(
        fvcore=lambda c: c.n_in * (2 if c.affine else 1), ptflops=lambda c: c.n_in * (2 if c.affine else 1),
        thop=lambda c: 2 * c.n_in * (2 if c.affine else 1),
        why="fvcore (eval aten::batch_norm) and ptflops: 1 per element, 2 with an affine; thop: 2, 4 "
            "with an affine"),
    "LayerNorm": ToolRule(
        fvcore=lambda c: c.n_in * (5 if c.affine else 4), ptflops=lambda c: c.n_in,
        thop=lambda c: 2 * c.n_in * (2 if c.affine else 1),
        why="fvcore aten::layer_norm: 4 per element, 5 with an affine; ptflops: 1 (its BN hook reads "
            "`affine`, which LayerNorm lacks); thop: 2, 4 with an affine"),
    "ReLU": ToolRule(
        fvcore=_zero, ptflops=lambda c: 2 * c.n_out, thop=_zero,
        why="fvcore ignores aten::relu; ptflops counts the module (1 per element) and again the "
            "F.relu it calls (patched); thop's hook is zero_ops"),
    "ReLU6": ToolRule(
        fvcore=_zero, ptflops=lambda c: c.n_out, thop=_zero,
        why="ptflops: the module hook, 1 per element (F.hardtanh is not patched); fvcore: aten::hardtanh "
            "has no handle; thop: zero_ops"),
    "LeakyReLU": ToolRule(
        fvcore=_zero, ptflops=lambda c: c.n_out, thop=_zero,
        why="ptflops: the module hook, 1 per element (F.leaky_relu is not patched); thop's count_relu "
            "returns 0; fvcore: no handle"),
    "GELU": ToolRule(
        fvcore=_zero, ptflops=lambda c: 2 * c.n_out, thop=_zero,
        why="ptflops: the module hook and the patched F.gelu, 1 per element each; fvcore: aten::gelu has "
            "no handle; thop: not in register_hooks"),
    "SiLU": ToolRule(
        fvcore=_zero, ptflops=lambda c: c.n_out, thop=_zero,
        why="ptflops: not in MODULES_MAPPING, but its forward calls the patched F.silu (1 per element); "
            "fvcore: no handle; thop: not in register_hooks"),
    "Hardswish": ToolRule(fvcore=_zero, ptflops=_zero, thop=_zero,
                          why="in no tool's set (F.hardswish is not patched by ptflops)"),
    "Hardsigmoid": ToolRule(fvcore=_zero, ptflops=_zero, thop=_zero,
                            why="in no tool's set (F.hardsigmoid is not patched by ptflops)"),
    "Sigmoid": ToolRule(fvcore=_zero, ptflops=_zero, thop=_zero,
                        why="in no tool's set (torch.sigmoid is not patched by ptflops)"),
    "Tanh": ToolRule(fvcore=_zero, ptflops=_zero, thop=_zero,
                     why="in no tool's set (torch.tanh is not patched by ptflops)"),
    "Softmax": ToolRule(
        fvcore=_zero, ptflops=lambda c: c.n_in, thop=_thop_softmax,
        why="ptflops: the patched F.softmax, 1 per element; thop: exp, sum, divide: 3 per element less "
            "1 per row; fvcore: aten::softmax has no handle"),
    "MaxPool2d": ToolRule(
        fvcore=_zero, ptflops=lambda c: 2 * c.n_in, thop=_zero,
        why="ptflops: the module hook and the patched F.max_pool2d, 1 per input element each; fvcore: "
            "aten::max_pool2d has no handle; thop: zero_ops"),
    "AvgPool2d": ToolRule(
        fvcore=_zero, ptflops=lambda c: 2 * c.n_in, thop=lambda c: c.n_out,
        why="ptflops: the module hook and the patched F.avg_pool2d, 1 per input element each; thop: 1 "
            "per output element; fvcore: aten::avg_pool2d has no handle"),
    "AdaptiveAvgPool2d": ToolRule(
        fvcore=lambda c: c.n_in, ptflops=lambda c: 2 * c.n_in, thop=_thop_adaptive_avg,
        why="fvcore aten::adaptive_avg_pool2d: 1 per input element; ptflops: the module hook and the "
            "patched F.adaptive_avg_pool2d, 1 per input element each; thop: (kernel + 1) per output "
            "element"),
    "Dropout": ToolRule(fvcore=_zero, ptflops=_zero, thop=_zero,
                        why="the identity in eval; thop: zero_ops; ptflops, fvcore: not counted"),
    "Identity": ToolRule(fvcore=_zero, ptflops=_zero, thop=_zero, why="no computation"),
    "Flatten": ToolRule(fvcore=_zero, ptflops=_zero, thop=_zero,
                        why="a view: fvcore ignores aten::flatten; in neither module set"),
}

#: what a functional op's code or a helper's source may call that some tool counts: such code is
#: not assumed to count zero (the op declares ``tool_counts``, or it is reported as not modelled)
_COUNTED_CALL = re.compile(
    r"\bnn\.(?!functional\b)\w+\(|conv|linear|matmul|\bmm\(|bmm|einsum|addmm|@|_norm|interpolate|"
    r"upsample|pool|grid_sample|relu|gelu|silu|\belu|softmax|\.mul\(|\.add\(|torch\.mul|torch\.add")

_MODULE_CLASS = re.compile(r"^(?:nn\.)?(\w+)\(")


@dataclass(frozen=True)
class NodeCount:
    """One node under one tool: its count, or None with the reason it is not modelled."""

    value: int | None
    rule: str


def tool_count(tool: str, op: str, attrs, ins: list[Shape], out: Shape) -> NodeCount:
    """What ``tool`` reports for one application of ``op`` at batch 1."""
    opdef = REGISTRY[op]
    if opdef.tool_counts is not None:
        declared = opdef.tool_counts(attrs, ins, out)
        if tool in declared:
            return NodeCount(int(declared[tool]), f"declared on the op '{op}' (OpDef.tool_counts)")
    counts = opdef.count(attrs, ins, out)
    ctx = Ctx(ins, out, counts)
    emit = opdef.emit(attrs, ins, out)
    helpers = {h.name: h for h in emit.helpers}
    if emit.module is not None:
        m = _MODULE_CLASS.match(emit.module)
        cls = m.group(1) if m else emit.module
        if emit.module.startswith("nn.") and cls in TORCH_CLASSES:
            rule = TORCH_CLASSES[cls]
            return NodeCount(getattr(rule, tool)(ctx), f"nn.{cls}: {rule.why}")
        if cls in helpers and not _COUNTED_CALL.search(helpers[cls].source.split("\n", 1)[1]):
            return NodeCount(0, f"{cls} (a helper archspec writes): in no tool's module set, and its "
                                "code calls nothing a tool counts")
        return NodeCount(None, f"'{op}' emits {emit.module.split('(')[0]}, which no rule of "
                               f"archspec.analysis.conventions covers for {tool}; declare "
                               "OpDef.tool_counts on the op")
    code = " ".join([emit.call or ""] + [h.source for h in emit.helpers])
    if counts.macs == 0 and not _COUNTED_CALL.search(code):
        return NodeCount(0, "functional code (element-wise, indexing, concatenation): no tool counts it "
                            "(fvcore has no handle for aten::add/mul/cat; ptflops patches torch.add and "
                            "torch.mul, not the + and * operators; thop counts modules only)")
    return NodeCount(None, f"'{op}' emits functional code that {tool} may count ({emit.call!r}); "
                           "declare OpDef.tool_counts on the op")


@dataclass
class Tally:
    """A network under one convention: the total (None when a node is not modelled), the total
    with the training-time aux outputs, each node's count, and what is not modelled."""

    convention: Convention
    total: int | float | None
    total_with_aux: int | float | None
    layers: dict[str, int | float | None] = field(default_factory=dict)
    not_modelled: list[tuple[str, str, str]] = field(default_factory=list)  # (layer, op, reason)


def _from_macs(name: str, macs: int) -> int | float:
    if name == "flops":
        return 2 * macs
    if name == "torchvision":
        return round(macs / 1e9, 3)
    return macs


def tally(graph: Graph, stats: NetStats, name: str) -> Tally:
    """The network's totals (and per-layer counts) under convention ``name``."""
    conv = CONVENTIONS[name]
    if name not in TOOLS:
        layers = {ls.name: _from_macs(name, ls.macs) for ls in stats.layers}
        return Tally(conv, _from_macs(name, stats.macs), _from_macs(name, stats.macs_with_aux), layers)
    owner = {nid for a in graph.aux.values() for nid in a.nodes}
    layers: dict[str, int | None] = {}
    missing: list[tuple[str, str, str]] = []
    for node in graph.nodes():
        nc = tool_count(name, node.op, node.attrs, node.in_shapes, node.shape)
        layers[node.id] = nc.value
        if nc.value is None:
            missing.append((node.id, node.op, nc.rule))
    main = [v for k, v in layers.items() if k not in owner]
    total = None if any(v is None for v in main) else sum(main)
    with_aux = None if missing else sum(layers.values())
    return Tally(conv, total, with_aux, layers, missing)


def convention_value(graph: Graph, stats: NetStats, name: str) -> int | float | None:
    """Shorthand: the inference total under convention ``name``."""
    return tally(graph, stats, name).total


def format_value(name: str, value: int | float | None, exact: bool, human: Callable) -> str:
    """A table cell: 'n/a' when not modelled, GMACs to 3 decimals for torchvision."""
    if value is None:
        return "n/a"
    if name == "torchvision":
        return f"{value:.3f}"
    return str(value) if exact else human(value)
