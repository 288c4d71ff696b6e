"""The ops of token sequences (Vision Transformer), each declared once.

A token sequence has the shape ``(T, D)`` without the batch dimension: ``T`` tokens of width ``D``.
``to_tokens`` turns a patch-embedded ``C×H×W`` map into one; ``linear`` and ``dropout`` work on it
as they are. Every entry states its shape rule and its counts in its docstring; ``archspec ops``
lists them and docs/spec.md is written from the same text.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .registry import (Attrs, Counts, Emit, Helper, NoAttrs, NonNeg, OpDef, OpError, Pos, Prob, Saved, Shape,
                       TrainContext, TrainCost, Window, is_channels_last, numel, register, train_slice,
                       train_view)

__all__: list[str] = []  # the ops are reached through the registry




def _need_tokens(op: str, shape: Shape) -> None:
    if len(shape) != 2:
        raise OpError(f"'{op}' needs a T×D token sequence, got shape {list(shape)}", code="rank",
                      hint="turn the patch grid into tokens first (to_tokens after the patch conv)")


# ------------------------------------------------------------------------------------ to_tokens
def _to_tokens_infer(a: NoAttrs, ins: list[Shape]) -> Shape:
    x = ins[0]
    if len(x) != 3 or is_channels_last(x):
        raise OpError(f"'to_tokens' needs a C×H×W feature map, got shape {list(x)}"
                      + (" (channels last)" if is_channels_last(x) else ""), code="rank",
                      hint="to_tokens follows the patch-embedding conv")
    return (x[1] * x[2], x[0])


register(OpDef(
    name="to_tokens", attrs=NoAttrs, family="shape",
    doc="Patch grid to token sequence: C×H×W -> (H·W, C), patches in row-major order (ViT Eq. 1: "
        "the patch embeddings x_p^i E). No parameters; MACs 0.",
    infer=_to_tokens_infer,
    emit=lambda a, i, o: Emit(call="{0}.flatten(2).transpose(1, 2)"),
    window=lambda a, i: Window(global_=True), train=train_view,
))


# ---------------------------------------------------------------------------------- class_token
def _class_token_infer(a: NoAttrs, ins: list[Shape]) -> Shape:
    _need_tokens("class_token", ins[0])
    return (ins[0][0] + 1, ins[0][1])


def _class_token_count(a: NoAttrs, ins: list[Shape], out: Shape) -> Counts:
    return Counts(params=ins[0][1], weights=ins[0][1])


register(OpDef(
    name="class_token", attrs=NoAttrs, family="token",
    doc="Prepend a learnable class token (ViT Eq. 1: z_0^0 = x_class): (T, D) -> (T+1, D). "
        "params = D (a parameter tensor, initialised to zeros); MACs 0.",
    infer=_class_token_infer, count=_class_token_count,
    # torch.cat saves nothing; with the fp32 token it promotes a bf16 sequence to fp32
    train=lambda a, i, o, ctx: TrainCost("f32"),
    emit=lambda a, i, o: Emit(param=f"nn.Parameter(torch.zeros(1, 1, {i[0][1]}))",
                              call="torch.cat([{self}.expand({0}.shape[0], -1, -1), {0}], dim=1)"),
))


# -------------------------------------------------------------------------------- pos_embedding
class PosEmbeddingAttrs(Attrs):
    """A learnable position embedding, one vector per token, added to the tokens."""

    std: Annotated[float, Field(ge=0.0)] = Field(
        0.02, description="standard deviation of its normal initialisation")


def _pos_infer(a: PosEmbeddingAttrs, ins: list[Shape]) -> Shape:
    _need_tokens("pos_embedding", ins[0])
    return ins[0]


def _pos_count(a: PosEmbeddingAttrs, ins: list[Shape], out: Shape) -> Counts:
    return Counts(params=numel(ins[0]), weights=numel(ins[0]))


def _pos_emit(a: PosEmbeddingAttrs, ins: list[Shape], out: Shape) -> Emit:
    t, d = ins[0]
    return Emit(param=f"nn.Parameter(torch.empty(1, {t}, {d}).normal_(std={a.std!r}))",
                call="{0} + {self}")


register(OpDef(
    name="pos_embedding", attrs=PosEmbeddingAttrs, family="token",
    doc="Add a learnable position embedding (ViT Eq. 1: + E_pos): (T, D) -> (T, D). params = T·D "
        "(a parameter tensor, initialised N(0, std²)); MACs 0 (an addition).",
    infer=_pos_infer, count=_pos_count, emit=_pos_emit, positional=("std",),
    train=lambda a, i, o, ctx: TrainCost("f32"),  # x + the fp32 embedding: saves nothing, promotes
))


# ------------------------------------------------------------------------------------ layernorm
class LayerNormAttrs(Attrs):
    """Layer normalisation over the last dimension, or over the channels of a feature map."""

    eps: Annotated[float, Field(gt=0)] = Field(1e-5, description="added to the variance")
    affine: bool = Field(True, description="learn a scale and a shift per feature")
    over: Literal["last", "channels"] = Field(
        "last", description="'last': the last dimension (D of a T×D sequence, a vector); 'channels': "
                            "the C channels of each position of a C×H×W map (ConvNeXt's LayerNorm2d), "
                            "D of a sequence")


def _ln_infer(a: LayerNormAttrs, ins: list[Shape]) -> Shape:
    if len(ins[0]) >= 3 and not is_channels_last(ins[0]) and a.over == "last":
        raise OpError(f"'layernorm' normalises the last dimension of a T×D token sequence or a vector; on "
                      f"the C×H×W map {list(ins[0])} that would be the width W, which is not what a "
                      f"normalisation means", code="rank",
                      hint="choose the axes: to_tokens first for a T×D sequence (ViT), flatten first "
                           "for one vector, {layernorm: {over: channels}} for the C channels of each "
                           "position of the map (ConvNeXt's LayerNorm2d), or {permute: [0, 2, 3, 1]} "
                           "first for a channels-last map whose last axis is C (Swin)")
    return ins[0]


def _ln_features(ins: list[Shape]) -> int:
    """The dimension it normalises: C of a C×H×W map (over: channels), else the last one (D of
    tokens, C of a channels-last map)."""
    return ins[0][0] if _chw(ins[0]) else ins[0][-1]


def _chw(shape: Shape) -> bool:
    """A channels-first C×H×W map (not tokens, a vector or a channels-last map)?"""
    return len(shape) == 3 and not is_channels_last(shape)


def _ln_count(a: LayerNormAttrs, ins: list[Shape], out: Shape) -> Counts:
    d = _ln_features(ins)
    return Counts(params=2 * d if a.affine else 0, weights=d if a.affine else 0)


LAYER_NORM_2D = Helper("LayerNorm2d", '''class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of each position of an N×C×H×W map, as torchvision's ConvNeXt
    LayerNorm2d: channels last, layer_norm over C, channels first again."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)''')


def _ln_emit(a: LayerNormAttrs, ins: list[Shape], out: Shape) -> Emit:
    args = [str(_ln_features(ins))]
    if a.eps != 1e-5:
        args.append(f"eps={a.eps!r}")
    if not a.affine:
        args.append("elementwise_affine=False")
    if _chw(ins[0]):
        return Emit(module=f"LayerNorm2d({', '.join(args)})", helpers=(LAYER_NORM_2D,))
    return Emit(module=f"nn.LayerNorm({', '.join(args)})")


def _ln_tool_counts(a: LayerNormAttrs, ins: list[Shape], out: Shape) -> dict[str, int]:
    """LayerNorm2d (over: channels on a C×H×W map), as other counters see it
    (archspec.analysis.conventions): fvcore counts its aten::layer_norm, 4 per element, 5 with an
    affine; ptflops and thop match module types exactly, and LayerNorm2d is not nn.LayerNorm: 0. An
    nn.LayerNorm (every other case) is counted from what it emits."""
    if not _chw(ins[0]):
        return {}
    return {"fvcore": numel(ins[0]) * (5 if a.affine else 4), "ptflops": 0, "thop": 0}


def _ln_train(a: LayerNormAttrs, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
    """native_layer_norm saves its input (LayerNorm2d: the permuted view of it) and the mean and
    1/std of every row (fp32). CUDA autocast runs layer_norm in fp32 (a cast copy of a bf16 input,
    an fp32 output); the CPU's in the input's dtype."""
    rows = ctx.batch * numel(ins[0]) // _ln_features(ins)
    dt = "f32" if ctx.amp and ctx.device == "cuda" else ctx.in_dtypes[0]
    return TrainCost(dt, saves=(Saved("cast", 0, dtype=dt), Saved("new", numel=rows), Saved("new", numel=rows)))


register(OpDef(
    name="layernorm", attrs=LayerNormAttrs, family="norm", train=_ln_train,
    doc="Layer normalisation over the last dimension D (ViT's LN). Shape unchanged. params = 2·D "
        "(scale and shift); weights = D; MACs 0. On a C×H×W map the axis would be a guess (W), so "
        "it is an error unless over: channels asks for the C channels of each position (ConvNeXt's "
        "LayerNorm2d; params = 2·C). On a channels-last map (after permute) the last axis is C: "
        "nn.LayerNorm(C), either way.",
    infer=_ln_infer, count=_ln_count, emit=_ln_emit, positional=("eps",), tool_counts=_ln_tool_counts,
))


# ------------------------------------------------------------------------------- self_attention
class SelfAttentionAttrs(Attrs):
    """Multi-head self-attention over a token sequence (nn.MultiheadAttention, batch first)."""

    heads: Pos = Field(description="attention heads k; each attends with D/k dimensions")
    dropout: Prob = Field(0.0, description="dropout on the attention weights (training only)")


def _sa_infer(a: SelfAttentionAttrs, ins: list[Shape]) -> Shape:
    _need_tokens("self_attention", ins[0])
    d = ins[0][1]
    if d % a.heads:
        raise OpError(f"{a.heads} heads do not divide the token width D={d}", attr="heads",
                      code="channel_mismatch", hint="D must be a multiple of heads (ViT-B: 768 = 12·64)")
    return ins[0]


def _sa_count(a: SelfAttentionAttrs, ins: list[Shape], out: Shape) -> Counts:
    t, d = ins[0]
    return Counts(params=4 * d * d + 4 * d, weights=4 * d * d,
                  macs=3 * t * d * d + t * t * d + t * t * d + t * d * d)


def _sa_tool_counts(a: SelfAttentionAttrs, ins: list[Shape], out: Shape) -> dict[str, int]:
    """What other counters report for nn.MultiheadAttention (archspec.analysis.conventions): fvcore
    sees the in and out projections (aten::linear) and no handle for scaled_dot_product_attention;
    ptflops applies its multihead_attention_counter_hook (Q scaling, projections with biases,
    QKᵀ, softmax, AV); thop has no rule for it, and its out_proj is a
    NonDynamicallyQuantizableLinear, not the nn.Linear thop's table names."""
    t, d = ins[0]
    hd = d // a.heads
    return {"fvcore": 4 * t * d * d,
            "ptflops": t * d + 3 * t * d * d + 3 * t * d + a.heads * (2 * t * t * hd + t * t) + t * d * (d + 1),
            "thop": 0}


def _sa_emit(a: SelfAttentionAttrs, ins: list[Shape], out: Shape) -> Emit:
    args = [str(ins[0][1]), str(a.heads)]
    if a.dropout or hasattr(a.dropout, "expr"):  # a rate given by name is written by name
        args.append(f"dropout={a.dropout!r}")
    args.append("batch_first=True")
    return Emit(module=f"nn.MultiheadAttention({', '.join(args)})",
                call="{self}({0}, {0}, {0}, need_weights=False)[0]")


def _sa_train(a: SelfAttentionAttrs, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
    """nn.MultiheadAttention (batch first, need_weights=False) in training: the in-projection of
    the transposed input (a copy, saved), Q, K, V (one storage of 3·T·D), SDPA's output and
    logsumexp (fp32, heads·T), the out-projection reading SDPA's output. FLOPs: the projections as
    linear layers; SDPA as torch counts its fused kernels, forward 2 batched matmuls, backward 5
    (Q·Kᵀ is recomputed)."""
    t, d = ins[0]
    b, u, low = ctx.batch, ctx.batch * t * d, ctx.low
    proj, attn = b * 3 * t * d * d, b * 2 * t * t * d  # in-projection and SDPA MACs; out-projection: b·t·d²
    return TrainCost(
        low, fwd=2 * (proj + attn + b * t * d * d), bwd_input=2 * proj,
        bwd_weight=2 * proj + 5 * b * 2 * t * t * d + 2 * 2 * b * t * d * d,
        saves=(Saved("new", numel=u, dtype=low), Saved("weight", numel=3 * d * d, dtype="bf16"),
               Saved("new", numel=3 * u, dtype=low), Saved("new", numel=b * a.heads * t),
               Saved("new", numel=u, dtype=low), Saved("weight", numel=d * d, dtype="bf16")))


register(OpDef(
    name="self_attention", attrs=SelfAttentionAttrs, family="attention", tags=frozenset({"weighted"}),
    train=_sa_train,
    doc="Multi-head self-attention (ViT's MSA, Eq. 2): softmax(QKᵀ/√(D/k))V over k heads, then "
        "an output projection. Shape (T, D) unchanged. params = 4·D² + 4·D (Q, K, V and output "
        "projections with biases); MACs = 3·T·D² (QKV) + T²·D (scores) + T²·D (weighted sum) + "
        "T·D² (output projection).",
    infer=_sa_infer, count=_sa_count, emit=_sa_emit, positional=("heads",), tool_counts=_sa_tool_counts,
    window=lambda a, i: Window(global_=True),
))


# ---------------------------------------------------------------------------------------- token
class TokenAttrs(Attrs):
    """One token of the sequence."""

    index: NonNeg = Field(0, description="which token (0: the class token)")


def _token_infer(a: TokenAttrs, ins: list[Shape]) -> Shape:
    _need_tokens("token", ins[0])
    if a.index >= ins[0][0]:
        raise OpError(f"token {a.index} is out of range: the sequence has {ins[0][0]} tokens",
                      attr="index", code="shape_error")
    return (ins[0][1],)


register(OpDef(
    name="token", attrs=TokenAttrs, family="shape",
    doc="Take one token of the sequence (ViT Eq. 4: y = LN(z_L^0) reads the class token): (T, D) -> "
        "(D,). No parameters; MACs 0.",
    infer=_token_infer,
    emit=lambda a, i, o: Emit(call=f"{{0}}[:, {a.index}]"), train=train_slice,
    positional=("index",),
))
