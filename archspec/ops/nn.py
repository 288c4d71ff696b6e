"""The ops of convolutional networks, each declared once.

Every entry states its shape rule and its counts in its docstring; ``archspec ops`` lists them and
docs/spec.md is written from the same text.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Optional, Union

from pydantic import Field

from .registry import (
    ZERO,
    Attrs,
    NoAttrs,
    NonNeg,
    NonNegPair,
    Pos,
    PosPair,
    Prob,
    Counts,
    Saved,
    TrainContext,
    TrainCost,
    Emit,
    Helper,
    OpDef,
    OpError,
    Shape,
    Window,
    channel_axis,
    fmt_pair,
    is_channels_last,
    is_symbolic,
    like,
    numel,
    pair,
    register,
    train_new,
    train_slice,
    train_view,
)

__all__: list[str] = []  # the ops are reached through the registry



def _kwargs(pos: list[str], kw: dict[str, object], defaults: dict[str, object]) -> str:
    """``a, b, key=value`` with keyword arguments equal to PyTorch's defaults left out."""
    parts = list(pos)
    for k, v in kw.items():
        if k in defaults and defaults[k] == v and not is_symbolic(v):
            continue
        parts.append(f"{k}={v}")
    return ", ".join(parts)


def _need_rank(op: str, shape: Shape, rank: int, what: str = "a C×H×W feature map") -> None:
    if is_channels_last(shape):
        raise OpError(f"'{op}' needs {what}, got the channels-last map {list(shape)} (channels last)",
                      code="layout", hint="permute it back to channels first before it: "
                                          "{permute: [0, 3, 1, 2]}")
    if len(shape) != rank:
        hint = None
        if rank == 3 and len(shape) == 1:
            hint = "flatten only before the fully-connected layers"
        elif rank == 3 and len(shape) == 2:
            hint = "the input is a T×D token sequence (after to_tokens); feature-map ops come before it"
        raise OpError(f"'{op}' needs {what}, got shape {list(shape)}", code="rank", hint=hint)


def _spatial_out(op: str, size: int, k: int, s: int, p: int, d: int, ceil: bool, axis: str) -> int:
    """PyTorch's output size rule for conv and pooling along one axis."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    if out <= 0 or span < 0:
        raise OpError(
            f"output {axis} collapses to {max(out, 0) if span >= 0 else span // s + 1}: input {axis} {size} "
            f"is smaller than the {k}×{k} window (padding {p}, dilation {d})",
            attr="kernel", code="collapsed_shape",
            hint="the input is too small for this many downsampling steps; check input: or the strides")
    return out


# --------------------------------------------------------------------------------------------- conv
class ConvAttrs(Attrs):
    """2-D convolution."""

    out: Pos = Field(description="output channels")
    kernel: PosPair = Field(description="kernel size: k or [kh, kw]")
    stride: PosPair = Field(1, description="stride: s or [sh, sw]")
    padding: Union[NonNegPair, Literal["same", "valid"]] = Field(
        0, description="zero padding per side: p, [ph, pw], 'same' ((k-1)·d/2) or 'valid' (0)")
    dilation: PosPair = Field(1, description="dilation")
    groups: Pos = Field(1, description="groups: input and output channels split into this many towers")
    bias: bool = Field(True, description="add a learned bias")


def _conv_geom(a: ConvAttrs) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    k, s, d = pair(a.kernel), pair(a.stride), pair(a.dilation)
    if a.padding == "valid":
        p = (0, 0)
    elif a.padding == "same":
        if any(d[i] * (k[i] - 1) % 2 for i in range(2)):
            raise OpError(f"padding 'same' needs an odd kernel, got {list(k)}", attr="padding",
                          hint="give the padding as numbers, e.g. padding: [0, 1]")
        p = (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
    else:
        p = pair(a.padding)
    return k, s, p, d


def _conv_infer(a: ConvAttrs, ins: list[Shape]) -> Shape:
    (x,) = ins
    _need_rank("conv", x, 3)
    c, h, w = x
    if c % a.groups:
        raise OpError(f"groups={a.groups} does not divide the {c} input channels", attr="groups",
                      code="channel_mismatch")
    if a.out % a.groups:
        raise OpError(f"groups={a.groups} does not divide out={a.out}", attr="groups",
                      code="channel_mismatch")
    k, s, p, d = _conv_geom(a)
    return (a.out, _spatial_out("conv", h, k[0], s[0], p[0], d[0], False, "height"),
            _spatial_out("conv", w, k[1], s[1], p[1], d[1], False, "width"))


def _conv_count(a: ConvAttrs, ins: list[Shape], out: Shape) -> Counts:
    k = pair(a.kernel)
    per_out = ins[0][0] // a.groups * k[0] * k[1]
    weights = a.out * per_out
    return Counts(params=weights + (a.out if a.bias else 0), weights=weights, macs=numel(out) * per_out)


def _conv_emit(a: ConvAttrs, ins: list[Shape], out: Shape) -> Emit:
    k, s, p, d = _conv_geom(a)
    kw = {"kernel_size": fmt_pair(k), "stride": fmt_pair(s), "padding": fmt_pair(p),
          "dilation": fmt_pair(d), "groups": a.groups, "bias": a.bias}
    return Emit(module=f"nn.Conv2d({_kwargs([str(ins[0][0]), str(a.out)], kw, _CONV_DEFAULTS)})")


def _conv_train(a: ConvAttrs, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
    """FlopCounterMode: forward 2·MACs; the input gradient (a transposed conv) 2·MACs; the weight
    gradient 2·MACs·groups (torch counts it as a conv of all C_in by all C_out channels). Saved: the
    input (autocast's bf16 copy under bf16-mixed) and the weight (its bf16 copy)."""
    c = _conv_count(a, ins, out)
    macs = ctx.batch * c.macs
    return TrainCost(ctx.low, fwd=2 * macs, bwd_input=2 * macs, bwd_weight=2 * macs * a.groups,
                     saves=(Saved("cast", 0, dtype=ctx.low), Saved("weight", numel=c.weights, dtype="bf16")))


_CONV_DEFAULTS = {"stride": "1", "padding": "0", "dilation": "1", "groups": 1, "bias": True}

register(OpDef(
    name="conv", attrs=ConvAttrs, family="conv", tags=frozenset({"weighted"}),
    doc="2-D convolution. out[h] = floor((H + 2p − d·(k−1) − 1) / s) + 1. "
        "params = out·(C/groups)·kh·kw (+ out bias); MACs = out·H'·W'·(C/groups)·kh·kw.",
    infer=_conv_infer, count=_conv_count, emit=_conv_emit, train=_conv_train,
    window=lambda a, i: Window(pair(a.kernel), pair(a.stride), pair(a.dilation)),
    positional=("out", "kernel", "stride", "padding"),
))


# ------------------------------------------------------------------------------------------ pooling
class MaxPoolAttrs(Attrs):
    """Max pooling; overlapping when stride < kernel (AlexNet's 3×3/2)."""

    kernel: PosPair = Field(description="window: k or [kh, kw]")
    stride: Optional[PosPair] = Field(None, description="stride (default: the kernel)")
    padding: NonNegPair = Field(0, description="implicit -inf padding per side")
    ceil_mode: bool = Field(False, description="round the output size up (Caffe/GoogLeNet style)")


class AvgPoolAttrs(MaxPoolAttrs):
    """Average pooling."""

    count_include_pad: bool = Field(True, description="count padded zeros in the average")


def _pool_geom(a: MaxPoolAttrs) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    k = pair(a.kernel)
    s = pair(a.stride) if a.stride is not None else k
    p = pair(a.padding)
    for i in range(2):
        if 2 * p[i] > k[i]:
            raise OpError(f"padding {p[i]} is more than half the {k[i]}-wide window", attr="padding",
                          hint="PyTorch requires padding <= kernel / 2 for pooling")
    return k, s, p


def _pool_infer(name: str):
    def infer(a: MaxPoolAttrs, ins: list[Shape]) -> Shape:
        (x,) = ins
        _need_rank(name, x, 3)
        k, s, p = _pool_geom(a)
        return (x[0], _spatial_out(name, x[1], k[0], s[0], p[0], 1, a.ceil_mode, "height"),
                _spatial_out(name, x[2], k[1], s[1], p[1], 1, a.ceil_mode, "width"))
    return infer


def _pool_emit(cls: str, extra: tuple[str, ...] = ()):
    def emit(a: MaxPoolAttrs, ins: list[Shape], out: Shape) -> Emit:
        k, s, p = _pool_geom(a)
        kw = {"kernel_size": fmt_pair(k), "stride": fmt_pair(s), "padding": fmt_pair(p),
              "ceil_mode": a.ceil_mode}
        for e in extra:
            kw[e] = getattr(a, e)
        defaults = {"padding": "0", "ceil_mode": False, "count_include_pad": True}
        return Emit(module=f"nn.{cls}({_kwargs([], kw, defaults)})")
    return emit


def _pool_window(a: MaxPoolAttrs, ins: list[Shape]) -> Window:
    k, s, _ = _pool_geom(a)
    return Window(k, s)


def _maxpool_train(a: MaxPoolAttrs, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
    """Saved: the input and the int64 indices of the maxima (max_pool2d_with_indices)."""
    return TrainCost(ctx.in_dtypes[0], saves=(Saved("in", 0), Saved("new", numel=ctx.batch * numel(out), dtype="i64")))


def _saves_input(a, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
    """A new output; the backward reads the input (avg_pool2d, _adaptive_avg_pool2d, gelu ...)."""
    return TrainCost(ctx.in_dtypes[0], saves=(Saved("in", 0),))


def _saves_output(a, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
    """A new output that the backward reads (tanh, sigmoid)."""
    return TrainCost(ctx.in_dtypes[0], saves=(Saved("out"),))


def _inplace_saves_output(a, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
    """In place (nn.ReLU(inplace=True) ...): the input's storage, whose new values the backward
    reads."""
    return TrainCost(ctx.in_dtypes[0], alias=0, saves=(Saved("out"),))


_POOL_DOC = ("out[h] = floor_or_ceil((H + 2p − k) / s) + 1 (PyTorch's rule, ceil_mode never starts a "
             "window in the padding). No parameters; MACs 0 (only conv/linear/matmul count).")

register(OpDef(
    name="maxpool", attrs=MaxPoolAttrs, family="pool", doc="Max pooling. " + _POOL_DOC,
    infer=_pool_infer("maxpool"), emit=_pool_emit("MaxPool2d"), window=_pool_window, train=_maxpool_train,
    positional=("kernel", "stride", "padding"),
))
register(OpDef(
    name="avgpool", attrs=AvgPoolAttrs, family="pool", doc="Average pooling. " + _POOL_DOC,
    infer=_pool_infer("avgpool"), emit=_pool_emit("AvgPool2d", ("count_include_pad",)),
    window=_pool_window, positional=("kernel", "stride", "padding"), train=_saves_input,
))



def _global_pool_infer(a: NoAttrs, ins: list[Shape]) -> Shape:
    _need_rank("global_avgpool", ins[0], 3)
    return (ins[0][0], 1, 1)


register(OpDef(
    name="global_avgpool", attrs=NoAttrs, family="pool",
    doc="Global average pooling: C×H×W -> C×1×1 (NIN, GoogLeNet, ResNet). No parameters, MACs 0.",
    infer=_global_pool_infer,
    emit=lambda a, i, o: Emit(module="nn.AdaptiveAvgPool2d((1, 1))"),
    window=lambda a, i: Window(global_=True),
    train=train_new,  # x.mean((-2, -1), keepdim=True): its backward needs only the shape
))


class AdaptivePoolAttrs(Attrs):
    """Adaptive average pooling to a fixed output size."""

    output: PosPair = Field(description="output size: s or [h, w]")


def _adaptive_infer(a: AdaptivePoolAttrs, ins: list[Shape]) -> Shape:
    _need_rank("adaptive_avgpool", ins[0], 3)
    oh, ow = pair(a.output)
    return (ins[0][0], oh, ow)


def _adaptive_window(a: AdaptivePoolAttrs, ins: list[Shape]) -> Window:
    (_, h, w), (oh, ow) = ins[0], pair(a.output)
    return Window((math.ceil(h / oh), math.ceil(w / ow)), (max(1, h // oh), max(1, w // ow)))


register(OpDef(
    name="adaptive_avgpool", attrs=AdaptivePoolAttrs, family="pool",
    doc="Adaptive average pooling: C×H×W -> C×h×w (torchvision's AlexNet/VGG use 6×6 and 7×7; an "
        "identity when the input already has that size). No parameters, MACs 0.",
    infer=_adaptive_infer,
    emit=lambda a, i, o: Emit(module=f"nn.AdaptiveAvgPool2d(({pair(a.output)[0]}, {pair(a.output)[1]}))"),
    window=_adaptive_window, positional=("output",),
    # _adaptive_avg_pool2d saves its input; to 1×1 it is x.mean((-2, -1)), which saves nothing
    train=lambda a, i, o, ctx: (train_new if pair(a.output) == (1, 1) else _saves_input)(a, i, o, ctx),
))


# ------------------------------------------------------------------------------------ normalisation
class BatchNormAttrs(Attrs):
    """Batch normalisation over channels."""

    eps: Annotated[float, Field(gt=0)] = Field(1e-5, description="added to the variance")
    momentum: Annotated[float, Field(ge=0, le=1)] = Field(0.1, description="running-stat momentum")
    affine: bool = Field(True, description="learn a scale and a shift per channel")


def _bn_count(a: BatchNormAttrs, ins: list[Shape], out: Shape) -> Counts:
    c = ins[0][0]
    return Counts(params=2 * c if a.affine else 0, weights=c if a.affine else 0)


def _bn_emit(a: BatchNormAttrs, ins: list[Shape], out: Shape) -> Emit:
    cls = "BatchNorm2d" if len(ins[0]) == 3 else "BatchNorm1d"
    kw = {"eps": a.eps, "momentum": a.momentum, "affine": a.affine}
    return Emit(module=f"nn.{cls}({_kwargs([str(ins[0][0])], kw, {'eps': 1e-5, 'momentum': 0.1, 'affine': True})})")


def _bn_infer(a: BatchNormAttrs, ins: list[Shape]) -> Shape:
    if is_channels_last(ins[0]):
        _need_rank("bn", ins[0], 3)
    if len(ins[0]) not in (1, 3):
        raise OpError(f"'bn' needs C×H×W or a vector, got shape {list(ins[0])}", code="rank")
    return ins[0]


def _bn_train(a: BatchNormAttrs, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
    """Saved (_batch_norm_with_update): the input, the running mean and variance (buffers), and the
    batch's mean and inverse std (fp32, C each); cuDNN's reserve space is not modelled."""
    c = ins[0][0]
    return TrainCost(ctx.in_dtypes[0], saves=(Saved("in", 0), Saved("buffer", numel=c), Saved("buffer", numel=c),
                                             Saved("new", numel=c), Saved("new", numel=c)))


register(OpDef(
    name="bn", attrs=BatchNormAttrs, family="norm", train=_bn_train,
    doc="Batch normalisation. Shape unchanged. params = 2·C (scale γ and shift β; the running mean "
        "and variance are buffers, not parameters); weights = C (γ); MACs 0.",
    infer=_bn_infer, count=_bn_count, emit=_bn_emit,
))


class LRNAttrs(Attrs):
    """Local response normalisation across channels, in the AlexNet paper's notation."""

    size: Pos = Field(5, description="n: adjacent channels summed over")
    alpha: float = Field(1e-4, description="α as in the AlexNet paper (PyTorch's alpha is α·n)")
    beta: float = Field(0.75, description="β")
    k: float = Field(2.0, description="k")


def _lrn_emit(a: LRNAttrs, ins: list[Shape], out: Shape) -> Emit:
    return Emit(module=f"nn.LocalResponseNorm({a.size}, alpha={a.alpha * a.size!r}, beta={a.beta!r}, k={a.k!r})")


def _lrn_tool_counts(a: LRNAttrs, ins: list[Shape], out: Shape) -> dict[str, int]:
    """What other counters report for nn.LocalResponseNorm (archspec.analysis.conventions): ptflops
    counts what F.local_response_norm calls that it patches: x.mul(x), .mul(alpha), .add(k), one per
    element each, and avg_pool3d over the squares padded to C + n − 1 channels, one per element of its
    input; fvcore has a handle for none of its aten ops and thop no rule for the module."""
    c, h, w = ins[0]
    return {"fvcore": 0, "ptflops": 3 * numel(ins[0]) + (c + a.size - 1) * h * w, "thop": 0}


def _lrn_train(a: LRNAttrs, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
    """F.local_response_norm: x·x, padded over channels, avg_pool3d, ·α + k, pow β, x / that.
    Saved: the input, the padded squares (C + n − 1 channels), the base and the result of the pow.
    Under autocast the CPU runs avg_pool3d in fp32, CUDA runs pow in fp32: the rest follows."""
    c, h, w = ins[0]
    full = ctx.batch * c * h * w
    padded = ctx.batch * (c + a.size - 1) * h * w
    dt = ctx.in_dtypes[0]
    if ctx.amp and dt == "bf16":
        if ctx.device == "cpu":
            return TrainCost("f32", saves=(Saved("in", 0), Saved("new", numel=padded, dtype="f32"),
                                          Saved("new", numel=full, dtype="f32"), Saved("new", numel=full, dtype="f32")))
        return TrainCost("f32", saves=(Saved("in", 0), Saved("new", numel=padded, dtype="bf16"),
                                      Saved("new", numel=full, dtype="f32"), Saved("new", numel=full, dtype="f32")))
    return TrainCost(dt, saves=(Saved("in", 0), Saved("new", numel=padded, dtype=dt),
                               Saved("new", numel=full, dtype=dt), Saved("new", numel=full, dtype=dt)))


register(OpDef(
    name="lrn", attrs=LRNAttrs, family="norm", train=_lrn_train,
    doc="Local response normalisation (AlexNet §3.3): b = a / (k + α·Σ a²)^β over n neighbouring "
        "channels. Shape unchanged; no parameters; MACs 0.",
    infer=lambda a, ins: (_need_rank("lrn", ins[0], 3), ins[0])[1], emit=_lrn_emit,
    positional=("size",), tool_counts=_lrn_tool_counts,
))


# -------------------------------------------------------------------------------------- activations
def _activation(name: str, module: str, doc: str, attrs: type[Attrs] = NoAttrs,
                positional: tuple[str, ...] = (), train=_saves_input) -> None:
    register(OpDef(
        name=name, attrs=attrs, family="act", doc=doc + " Shape unchanged; no parameters; MACs 0.",
        infer=lambda a, ins: ins[0], train=train,
        emit=lambda a, i, o: Emit(module=module.format(a=a)), positional=positional,
    ))


class LeakyAttrs(Attrs):
    """Leaky ReLU."""

    negative_slope: float = Field(0.01, description="slope for x < 0")


class SoftmaxAttrs(Attrs):
    """Softmax over the channel / class dimension."""


class GeluAttrs(Attrs):
    """GELU, exact or with the tanh approximation."""

    approximate: Literal["none", "tanh"] = Field(
        "none", description="'none': x·Φ(x) exactly; 'tanh': Hendrycks & Gimpel's tanh approximation")


def _inplace_saves_copy(a, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
    """In place, with a backward that reads the input from before (silu_, hardtanh_ of ReLU6): the
    input's storage, and autograd keeps a copy of the old values."""
    return TrainCost(ctx.in_dtypes[0], alias=0,
                     saves=(Saved("new", numel=ctx.batch * numel(ins[0]), dtype=ctx.in_dtypes[0]),))


def _softmax_train(a, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
    """Saves its output; CUDA autocast runs softmax in fp32 (the CPU in the input's dtype)."""
    dt = "f32" if ctx.amp and ctx.device == "cuda" else ctx.in_dtypes[0]
    return TrainCost(dt, saves=(Saved("out"),))


_activation("relu", "nn.ReLU(inplace=True)", "Rectified linear unit max(0, x).", train=_inplace_saves_output)
_activation("relu6", "nn.ReLU6(inplace=True)", "ReLU capped at 6: min(max(0, x), 6) (MobileNetV2).",
            train=_inplace_saves_copy)
_activation("hardswish", "nn.Hardswish()", "Hard swish x·relu6(x + 3)/6 (MobileNetV3).")
_activation("hardsigmoid", "nn.Hardsigmoid()", "Hard sigmoid relu6(x + 3)/6 (MobileNetV3's SE gate).")
_activation("silu", "nn.SiLU(inplace=True)", "SiLU / swish x·sigmoid(x) (EfficientNet).", train=_inplace_saves_copy)
_activation("tanh", "nn.Tanh()", "Hyperbolic tangent.", train=_saves_output)
_activation("sigmoid", "nn.Sigmoid()", "Logistic sigmoid.", train=_saves_output)
register(OpDef(
    name="gelu", attrs=GeluAttrs, family="act",
    doc="Gaussian error linear unit x·Φ(x); approximate: tanh for the tanh form. Shape unchanged; no "
        "parameters; MACs 0.",
    infer=lambda a, ins: ins[0], positional=("approximate",), train=_saves_input,
    emit=lambda a, i, o: Emit(module="nn.GELU()" if a.approximate == "none" else
                              f"nn.GELU(approximate={a.approximate!r})"),
))
_activation("leaky_relu", "nn.LeakyReLU({a.negative_slope!r}, inplace=True)", "Leaky ReLU.",
            LeakyAttrs, ("negative_slope",), train=_inplace_saves_output)
_activation("softmax", "nn.Softmax(dim=1)", "Softmax over classes (dim 1 of the batch).", SoftmaxAttrs,
            train=_softmax_train)


# --------------------------------------------------------------------------------- regularisation
class DropoutAttrs(Attrs):
    """Dropout."""

    p: Prob = Field(0.5, description="probability of zeroing a unit during training")


def _dropout_train(a: DropoutAttrs, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
    """p = 0: the input itself. CUDA (native_dropout) saves a bool mask; the CPU multiplies by a
    noise tensor of the input's dtype, which the product saves."""
    if a.p == 0:
        return TrainCost(ctx.in_dtypes[0], alias=0, grad_view=True)
    n = ctx.batch * numel(ins[0])
    mask = Saved("new", numel=n, dtype="bool" if ctx.device == "cuda" else ctx.in_dtypes[0])
    return TrainCost(ctx.in_dtypes[0], saves=(mask,))


register(OpDef(
    name="dropout", attrs=DropoutAttrs, family="reg", train=_dropout_train,
    doc="Dropout (training only). Shape unchanged; no parameters; MACs 0.",
    infer=lambda a, ins: ins[0],
    emit=lambda a, i, o: Emit(module=f"nn.Dropout(p={a.p!r})"), positional=("p",),
))


class StochasticDepthAttrs(Attrs):
    """Stochastic depth (Huang et al. 2016), as torchvision.ops.StochasticDepth."""

    p: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        description="probability of dropping the input during training (torchvision's "
                    "stochastic_depth_prob)")
    mode: Literal["row", "batch"] = Field(
        "row", description="'row': each sample of the batch is dropped on its own; 'batch': the "
                           "whole batch is dropped or kept at once")


STOCHASTIC_DEPTH = Helper("StochasticDepth", '''class StochasticDepth(nn.Module):
    """Stochastic depth (Huang et al., 2016), as torchvision.ops.StochasticDepth: in training, zero
    the input of each sample ('row') or of the whole batch ('batch') with probability p and scale
    what survives by 1 / (1 - p); the identity in eval mode."""

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival_rate = 1.0 - self.p
        if self.mode == "row":
            size = [x.shape[0]] + [1] * (x.ndim - 1)  # one draw per sample
        else:
            size = [1] * x.ndim  # one draw for the batch
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival_rate)
        if survival_rate > 0.0:
            noise.div_(survival_rate)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"''')

def _stochastic_depth_train(a: StochasticDepthAttrs, ins: list[Shape], out: Shape,
                            ctx: TrainContext) -> TrainCost:
    """p = 0: the input itself; else x * noise, which saves the noise (one value per sample, or
    one for the batch)."""
    if a.p == 0:
        return TrainCost(ctx.in_dtypes[0], alias=0, grad_view=True)
    n = ctx.batch if a.mode == "row" else 1
    return TrainCost(ctx.in_dtypes[0], saves=(Saved("new", numel=n, dtype=ctx.in_dtypes[0]),))


register(OpDef(
    name="stochastic_depth", attrs=StochasticDepthAttrs, family="reg", train=_stochastic_depth_train,
    doc="Stochastic depth (Huang et al. 2016; torchvision.ops.StochasticDepth): in training, zeroes "
        "the whole input of each sample (mode row) or of the whole batch (mode batch) with "
        "probability p and scales the rest by 1/(1 − p); the identity in eval mode. Shape "
        "unchanged; no parameters; MACs 0.",
    infer=lambda a, ins: ins[0], positional=("p", "mode"),
    emit=lambda a, i, o: Emit(module=f"StochasticDepth({a.p!r}, {a.mode!r})", helpers=(STOCHASTIC_DEPTH,)),
))


# ------------------------------------------------------------------------------------ layer_scale
class LayerScaleAttrs(Attrs):
    """A learnable scale per channel (CaiT's and ConvNeXt's layer scale)."""

    init: float = Field(1e-6, description="the initial value of every scale (ConvNeXt: 1e-6)")


def _layer_scale_infer(a: LayerScaleAttrs, ins: list[Shape]) -> Shape:
    if len(ins[0]) not in (1, 2, 3) and not is_channels_last(ins[0]):
        raise OpError(f"'layer_scale' needs a C×H×W map, a T×D token sequence or a vector, got shape "
                      f"{list(ins[0])}", code="rank")
    return ins[0]


def _layer_scale_channels(ins: list[Shape]) -> int:
    """The channels it scales: C of a C×H×W map, D of tokens, the features of a vector, the last
    axis of a channels-last map."""
    return ins[0][channel_axis(ins[0])]


def _layer_scale_count(a: LayerScaleAttrs, ins: list[Shape], out: Shape) -> Counts:
    c = _layer_scale_channels(ins)
    return Counts(params=c, weights=c)


def _layer_scale_emit(a: LayerScaleAttrs, ins: list[Shape], out: Shape) -> Emit:
    chw = len(ins[0]) == 3 and not is_channels_last(ins[0])
    shape = f"{_layer_scale_channels(ins)}, 1, 1" if chw else f"{_layer_scale_channels(ins)}"
    return Emit(param=f"nn.Parameter(torch.ones({shape}) * {a.init!r})", call="{self} * {0}")


register(OpDef(
    name="layer_scale", attrs=LayerScaleAttrs, family="scale",
    doc="Multiply by a learnable scale per channel, every one initialised to init (ConvNeXt's "
        "layer_scale, CaiT's LayerScale): a C×1×1 parameter on a C×H×W map, a D-vector on T×D "
        "tokens. Shape unchanged. params = C (a parameter tensor); MACs 0.",
    infer=_layer_scale_infer, count=_layer_scale_count, emit=_layer_scale_emit, positional=("init",),
    # scale * x: the product keeps x for the scale's gradient; an fp32 scale promotes a bf16 x
    train=lambda a, i, o, ctx: TrainCost("f32", saves=(Saved("in", 0),)),
))


# ------------------------------------------------------------------------------------ shape and FC
def _flatten_infer(a: NoAttrs, ins: list[Shape]) -> Shape:
    return (numel(ins[0]),)


register(OpDef(
    name="flatten", attrs=NoAttrs, family="shape",
    doc="Flatten C×H×W to a vector of C·H·W. No parameters; MACs 0.",
    infer=_flatten_infer,
    emit=lambda a, i, o: Emit(module="nn.Flatten(1)", call="torch.flatten({0}, 1)"),
    window=lambda a, i: Window(global_=True), train=train_view,
))


class LinearAttrs(Attrs):
    """Fully-connected layer over the last dimension."""

    out: Pos = Field(description="output features")
    bias: bool = Field(True, description="add a learned bias")


def _linear_infer(a: LinearAttrs, ins: list[Shape]) -> Shape:
    x = ins[0]
    if len(x) >= 3 and not is_channels_last(x):
        raise OpError(f"'linear' needs a vector, got the feature map {list(x)}", code="rank",
                      hint="put flatten (or global_avgpool, flatten) before the first linear layer; "
                           "for a linear layer over the channels of each position, permute the map "
                           "to channels-last first: {permute: [0, 2, 3, 1]}")
    return like(x, tuple(x[:-1]) + (a.out,))


def _linear_count(a: LinearAttrs, ins: list[Shape], out: Shape) -> Counts:
    fan_in = ins[0][-1]
    weights = fan_in * a.out
    return Counts(params=weights + (a.out if a.bias else 0), weights=weights, macs=numel(out) * fan_in)


def _linear_train(a: LinearAttrs, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
    """(add)mm: forward 2·MACs, input gradient 2·MACs, weight gradient 2·MACs. Saved: the input
    (autocast's bf16 copy) and the weight (its bf16 copy)."""
    c = _linear_count(a, ins, out)
    macs = ctx.batch * c.macs
    return TrainCost(ctx.low, fwd=2 * macs, bwd_input=2 * macs, bwd_weight=2 * macs,
                     saves=(Saved("cast", 0, dtype=ctx.low), Saved("weight", numel=c.weights, dtype="bf16")))


register(OpDef(
    name="linear", attrs=LinearAttrs, family="linear", tags=frozenset({"weighted"}), train=_linear_train,
    doc="Fully-connected layer over the last dimension: (…, D) -> (…, out), on a vector, T×D tokens "
        "or a channels-last map (H×W×C: a 1×1 conv written as nn.Linear, ConvNeXt's and Swin's MLP). "
        "params = D·out (+ out bias); MACs = (rows)·D·out.",
    infer=_linear_infer, count=_linear_count,
    emit=lambda a, i, o: Emit(module=f"nn.Linear({_kwargs([str(i[0][-1]), str(a.out)], {'bias': a.bias}, {'bias': True})})"),
    window=lambda a, i: Window(global_=True) if len(i[0]) == 1 else None,
    positional=("out",),
))

class ChannelShuffleAttrs(Attrs):
    """ShuffleNet's channel shuffle."""

    groups: Pos = Field(description="g: the channels, read as g groups of C/g, are interleaved")


def _shuffle_infer(a: ChannelShuffleAttrs, ins: list[Shape]) -> Shape:
    (x,) = ins
    _need_rank("channel_shuffle", x, 3)
    if x[0] % a.groups:
        raise OpError(f"groups={a.groups} does not divide the {x[0]} input channels", attr="groups",
                      code="channel_mismatch",
                      hint="the shuffle reads the channels as groups × (C/groups): choose groups "
                           "that divide C (ShuffleNetV2 shuffles 2 after its concat)")
    return x


CHANNEL_SHUFFLE = Helper("channel_shuffle", '''def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """ShuffleNet's channel shuffle (torchvision.models.shufflenetv2.channel_shuffle): the channels,
    read as groups × (C / groups), are transposed, so that each group sees every other group."""
    batch_size, num_channels, height, width = x.size()
    x = x.view(batch_size, groups, num_channels // groups, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batch_size, num_channels, height, width)''')

register(OpDef(
    name="channel_shuffle", attrs=ChannelShuffleAttrs, family="shape",
    doc="Channel shuffle (ShuffleNet): view C×H×W as g×(C/g)×H×W, transpose the first two axes, "
        "reshape back, so channel j·(C/g) + i moves to i·g + j. Shape unchanged; g must divide C. "
        "No parameters; MACs 0.",
    infer=_shuffle_infer, positional=("groups",), train=train_new,
    emit=lambda a, i, o: Emit(call=f"channel_shuffle({{0}}, {a.groups})", helpers=(CHANNEL_SHUFFLE,)),
))


class ChannelsAttrs(Attrs):
    """A slice of the channels, as Python writes it: start <= c < stop."""

    start: NonNeg = Field(description="the first channel taken")
    stop: Pos = Field(description="one past the last channel taken (C: up to the end)")


def _channels_infer(a: ChannelsAttrs, ins: list[Shape]) -> Shape:
    (x,) = ins
    if is_channels_last(x):
        _need_rank("channels", x, 3)
    if len(x) not in (1, 3):
        raise OpError(f"'channels' needs a C×H×W feature map or a vector, got shape {list(x)}", code="rank",
                      hint="on a T×D token sequence the channels are the last axis; slice the map "
                           "before to_tokens")
    if a.stop > x[0]:
        raise OpError(f"channels [{a.start}, {a.stop}) run past the {x[0]} input channels", attr="stop",
                      code="channel_mismatch",
                      hint=f"stop is at most C = {x[0]} (in.c in a block: [in.c // 2, in.c] is the "
                           f"second half)")
    if a.start >= a.stop:
        raise OpError(f"channels [{a.start}, {a.stop}) is empty: start must be below stop", attr="start",
                      code="shape_error", hint="write [start, stop), e.g. [0, in.c // 2] for the first half")
    return (a.stop - a.start,) + tuple(x[1:])


def _channels_emit(a: ChannelsAttrs, ins: list[Shape], out: Shape) -> Emit:
    start = "" if str(a.start) == "0" else str(a.start)
    stop = "" if str(a.stop) == str(ins[0][0]) else str(a.stop)  # the same expression: up to the end
    if " " in start + stop:  # PEP 8: a slice's colon is spaced like an operator around expressions
        bounds = f"{start} : {stop}".strip()
    else:
        bounds = f"{start}:{stop}"
    return Emit(call=f"{{0}}[:, {bounds}]")


register(OpDef(
    name="channels", attrs=ChannelsAttrs, family="shape",
    doc="Channels start…stop−1 of the input, x[:, start:stop] (ShuffleNetV2's x.chunk(2, dim=1) is "
        "[0, C/2] and [C/2, C]): C×H×W -> (stop − start)×H×W; 0 <= start < stop <= C. A view, "
        "written as indexing (no module). No parameters; MACs 0.",
    infer=_channels_infer, emit=_channels_emit, positional=("start", "stop"), train=train_slice,
))

register(OpDef(
    name="identity", attrs=NoAttrs, family="shape", tags=frozenset({"alias"}),
    doc="Identity. Shape unchanged; it aliases its input, so it counts no activations.",
    infer=lambda a, ins: ins[0],
    emit=lambda a, i, o: Emit(module="nn.Identity()", call="{0}"), train=train_view,
))


# -------------------------------------------------------------------------------------------- merges
def _same_layout(op: str, ins: list[Shape]) -> None:
    for j, s in enumerate(ins[1:], 1):
        if is_channels_last(s) != is_channels_last(ins[0]):
            which = (0, j) if is_channels_last(ins[0]) else (j, 0)
            raise OpError(f"{op} of a channels-last map (branch {which[0]}) and a channels-first one "
                          f"(branch {which[1]})", code="layout",
                          hint="permute one of them first: {permute: [0, 2, 3, 1]} to channels-last, "
                               "{permute: [0, 3, 1, 2]} back")


def _add_infer(a: NoAttrs, ins: list[Shape]) -> Shape:
    first = ins[0]
    _same_layout("add", ins)
    for j, s in enumerate(ins[1:], 1):
        if s != first:
            if len(s) == len(first) and s[1:] == first[1:]:
                raise OpError(f"channel mismatch on add: branch 0 has {first[0]} channels, "
                              f"branch {j} has {s[0]}", code="channel_mismatch",
                              hint="project the shortcut (a 1×1 conv) when the channels change")
            raise OpError(f"add needs equal shapes: branch 0 is {list(first)}, branch {j} is {list(s)}",
                          code="shape_mismatch",
                          hint="downsample the shortcut with the same stride as the main path")
    return first


def _concat_infer(a: NoAttrs, ins: list[Shape]) -> Shape:
    first = ins[0]
    for s in ins:
        if is_channels_last(s):
            _need_rank("concat", s, 3, "C×H×W feature maps (it joins the channels, axis 1)")
    for j, s in enumerate(ins[1:], 1):
        if len(s) != len(first) or s[1:] != first[1:]:
            raise OpError(f"concat of different spatial sizes: branch 0 is {list(first)}, "
                          f"branch {j} is {list(s)}", code="shape_mismatch",
                          hint="give every branch the same stride and padding")
    return (sum(s[0] for s in ins),) + first[1:]


def _mul_infer(a: NoAttrs, ins: list[Shape]) -> Shape:
    x, g = ins
    _same_layout("mul", ins)
    if is_channels_last(x) and g == x:
        return x
    if g == x or (len(g) == len(x) == 3 and g[0] == x[0] and g[1:] == (1, 1)):
        return x
    if len(x) == len(g) == 3 and x[0] == g[0] and x[1:] == (1, 1):
        return g
    raise OpError(f"mul needs equal or channel-broadcastable shapes, got {list(x)} and {list(g)}",
                  code="shape_mismatch")


register(OpDef(
    name="add", attrs=NoAttrs, family="merge", inputs=(2, None),
    doc="Element-wise sum of equal shapes (residual connections). No parameters; MACs 0.",
    infer=_add_infer, emit=lambda a, i, o: Emit(call=" + ".join(f"{{{j}}}" for j in range(len(i)))),
    train=lambda a, i, o, ctx: TrainCost(ctx.wide(), grad_view=True),  # the gradient passes to both
))
register(OpDef(
    name="concat", attrs=NoAttrs, family="merge", inputs=(1, None),
    doc="Concatenation along channels; all other dimensions must agree (inception, DenseNet).",
    infer=_concat_infer,  # the inputs' gradients are slices of the output's
    train=lambda a, i, o, ctx: TrainCost(ctx.wide(), grad_view=True),
    emit=lambda a, i, o: Emit(call="torch.cat([" + ", ".join(f"{{{j}}}" for j in range(len(i))) + "], 1)"),
))
register(OpDef(
    name="mul", attrs=NoAttrs, family="merge", inputs=(2, 2),
    doc="Element-wise product; a C×1×1 gate broadcasts over H×W (squeeze-and-excitation).",
    infer=_mul_infer, emit=lambda a, i, o: Emit(call="{0} * {1}"),
    # each factor is kept for the other's gradient, when the other requires grad
    train=lambda a, i, o, ctx: TrainCost(ctx.wide(), saves=tuple(
        Saved("in", j) for j in (0, 1) if ctx.in_grad[1 - j])),
))


class PadShortcutAttrs(Attrs):
    """ResNet shortcut option A: identity, subsampled by the stride, channels zero-padded."""

    out: Pos = Field(description="output channels (>= input channels)")
    stride: Pos = Field(1, description="subsampling stride")


def _pad_infer(a: PadShortcutAttrs, ins: list[Shape]) -> Shape:
    x = ins[0]
    _need_rank("pad_shortcut", x, 3)
    if a.out < x[0]:
        raise OpError(f"pad_shortcut can only add channels: out={a.out} < {x[0]} input channels",
                      attr="out", code="channel_mismatch")
    return (a.out, -(-x[1] // a.stride), -(-x[2] // a.stride))


def _pad_emit(a: PadShortcutAttrs, ins: list[Shape], out: Shape) -> Emit:
    sub = "{0}" if a.stride == 1 else f"{{0}}[:, :, ::{a.stride}, ::{a.stride}]"
    extra = a.out - ins[0][0]
    return Emit(call=sub if extra == 0 else f"nn.functional.pad({sub}, (0, 0, 0, 0, 0, {extra}))")


register(OpDef(
    name="pad_shortcut", attrs=PadShortcutAttrs, family="shape",
    doc="ResNet shortcut option A: x[:, :, ::s, ::s] with the extra channels zero-filled. "
        "No parameters; MACs 0.",
    infer=_pad_infer, emit=_pad_emit, window=lambda a, i: Window((1, 1), (a.stride, a.stride)),
    # x[:, :, ::s, ::s] is a view; the zero channels make a new tensor (constant_pad_nd saves nothing)
    train=lambda a, i, o, ctx: (train_slice if a.out == i[0][0] else train_new)(a, i, o, ctx),
    positional=("out", "stride"),
))


class InputAttrs(Attrs):
    shape: tuple[int, ...]


register(OpDef(
    name="input", attrs=InputAttrs, family="input", internal=True, inputs=(0, 0),
    doc="The network input.", infer=lambda a, ins: tuple(a.shape), emit=lambda a, i, o: Emit(call="x"),
    train=lambda a, i, o, ctx: TrainCost("f32"),
))
