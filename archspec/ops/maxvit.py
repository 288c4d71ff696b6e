"""The ops of MaxViT's multi-axis attention (Tu et al. 2022, §3.2), each declared once.

MaxViT cuts a C×H×W map into non-overlapping p×p windows, attends within each window (block
attention) or, after swapping the two window axes, across windows (grid attention), and puts the map
back together. Between the cut and the reassembly the map is a channels-last tensor of G windows of
P tokens, ``G×P×C`` (a :class:`~archspec.ops.registry.ChannelsLast` shape), on which ``linear``,
``layernorm``, ``gelu``, ``dropout``, ``stochastic_depth``, ``add`` and ``permute`` (the grid swap)
work as they are. The three ops here compute what torchvision's ``WindowPartition``,
``WindowDepartition`` and ``RelativePositionalMultiHeadAttention`` (torchvision/models/maxvit.py)
compute; the generated file defines them itself (registry ``Helper``), importing only torch.
"""

from __future__ import annotations

import math
from typing import Optional

from pydantic import Field

from .registry import (Attrs, ChannelsLast, Counts, Emit, Helper, OpDef, OpError, Pos, PosPair, Saved, Shape,
                       TrainContext, TrainCost, Window, is_channels_last, pair, register, train_new)

__all__: list[str] = []  # the ops are reached through the registry



def _isqrt(n: int) -> int | None:
    """The integer square root of ``n`` if ``n`` is a perfect square, else None."""
    r = math.isqrt(int(n))
    return r if r * r == int(n) else None


def _need_windows(op: str, shape: Shape) -> None:
    """``shape`` must be G×P×C windows of tokens (channels last, rank 3)."""
    if not is_channels_last(shape) or len(shape) != 3:
        what = ("the C×H×W map" if len(shape) == 3 else
                "the channels-last map" if is_channels_last(shape) else "the shape")
        raise OpError(f"'{op}' needs G×P×C windows of tokens (channels last), got {what} {list(shape)}",
                      code="layout",
                      hint="cut the map into windows first: {window_partition: p} turns C×H×W into "
                           "(H/p·W/p)×(p·p)×C")


# ----------------------------------------------------------------------------- window_partition
class WindowPartitionAttrs(Attrs):
    """Cut a C×H×W map into non-overlapping size×size windows of tokens."""

    size: Pos = Field(description="the window's side p in pixels: p must divide H and W (MaxViT's "
                                  "block attention: the partition size, 7; its grid attention: H / 7, "
                                  "so that the grid is 7×7)")


WINDOW_PARTITION = Helper("WindowPartition", '''class WindowPartition(nn.Module):
    """Partition an N×C×H×W map into non-overlapping p×p windows: N×(H/p·W/p)×(p·p)×C, windows in
    row-major order, the pixels of each window in row-major order (torchvision's MaxViT)."""

    def forward(self, x: Tensor, p: int) -> Tensor:
        B, C, H, W = x.shape
        x = x.reshape(B, C, H // p, p, W // p, p)
        x = x.permute(0, 2, 4, 3, 5, 1)
        return x.reshape(B, (H // p) * (W // p), p * p, C)''')


def _partition_infer(a: WindowPartitionAttrs, ins: list[Shape]) -> Shape:
    x = ins[0]
    if len(x) != 3 or is_channels_last(x):
        raise OpError(f"'window_partition' needs a C×H×W feature map, got "
                      f"{'the channels-last map ' if is_channels_last(x) else 'shape '}{list(x)}",
                      code="layout" if is_channels_last(x) else "rank",
                      hint="window_partition cuts a channels-first map; permute it back first: "
                           "{permute: [0, 3, 1, 2]}" if is_channels_last(x) else None)
    c, h, w = x
    p = a.size
    if h % p or w % p:
        raise OpError(f"windows of {p}×{p} do not tile the {h}×{w} map: {p} does not divide "
                      f"{'the height ' + str(h) if h % p else 'the width ' + str(w)}", attr="size",
                      code="shape_error",
                      hint="the window size must divide H and W (MaxViT-T at 224×224: maps of 56, 28, "
                           "14 and 7, windows of 7)")
    return ChannelsLast(((h // p) * (w // p), p * p, c))


register(OpDef(
    name="window_partition", attrs=WindowPartitionAttrs, family="shape", positional=("size",),
    doc="Cut a C×H×W map into non-overlapping p×p windows (MaxViT's WindowPartition): C×H×W -> "
        "channels-last G×P×C with G = (H/p)·(W/p) windows in row-major order and P = p·p tokens each; "
        "p must divide H and W. No parameters; MACs 0.",
    infer=_partition_infer, train=train_new,  # reshape, permute, reshape: a copy, nothing saved
    emit=lambda a, i, o: Emit(module="WindowPartition()", call=f"{{self}}({{0}}, {a.size})",
                              helpers=(WINDOW_PARTITION,)),
))


# --------------------------------------------------------------------------- window_departition
class WindowDepartitionAttrs(Attrs):
    """Put G×P×C windows back together into a C×H×W map."""

    size: Optional[Pos] = Field(None, description="the window's side p: P = p·p (default: √P)")
    grid: Optional[PosPair] = Field(
        None, description="windows per column and per row, [H/p, W/p] (g or [gh, gw]): gh·gw = G; "
                          "default: a square grid, √G × √G")


WINDOW_DEPARTITION = Helper("WindowDepartition", '''class WindowDepartition(nn.Module):
    """Put N×G×(p·p)×C windows back together into an N×C×(gh·p)×(gw·p) map, G = gh·gw: the
    inverse of WindowPartition (torchvision's MaxViT)."""

    def forward(self, x: Tensor, p: int, h_partitions: int, w_partitions: int) -> Tensor:
        B, G, PP, C = x.shape
        x = x.reshape(B, h_partitions, w_partitions, p, p, C)
        x = x.permute(0, 5, 1, 3, 2, 4)
        return x.reshape(B, C, h_partitions * p, w_partitions * p)''')


def _departition_geom(a: WindowDepartitionAttrs, x: Shape) -> tuple[int, int, int]:
    """(p, gh, gw) of windows ``x``, from the attributes or, where they are left out, the shape."""
    g, pp, c = x
    p = a.size
    if p is None:
        p = _isqrt(pp)
        if p is None:
            raise OpError(f"{pp} tokens per window is not a square p·p, so the window size cannot be "
                          f"inferred", attr="size", code="shape_error",
                          hint="window_departition puts back what window_partition cut: give size: p")
    elif p * p != pp:
        raise OpError(f"windows of {p}×{p} hold {p * p} tokens, but the input has {pp} per window "
                      f"({list(x)})", attr="size", code="shape_error",
                      hint="size is the p of the window_partition this departition undoes")
    if a.grid is None:
        s = _isqrt(g)
        if s is None:
            raise OpError(f"{g} windows do not form a square grid, so the grid cannot be inferred",
                          attr="grid", code="shape_error",
                          hint="give the grid: grid: [H / p, W / p]")
        return p, s, s
    gh, gw = pair(a.grid)
    if gh * gw != g:
        raise OpError(f"a grid of {gh}×{gw} windows is {gh * gw} windows, but the input has {g} "
                      f"({list(x)})", attr="grid", code="shape_error",
                      hint="grid is [H / p, W / p] of the map that window_partition cut")
    return p, gh, gw


def _departition_infer(a: WindowDepartitionAttrs, ins: list[Shape]) -> Shape:
    _need_windows("window_departition", ins[0])
    p, gh, gw = _departition_geom(a, ins[0])
    return (ins[0][2], gh * p, gw * p)


def _departition_emit(a: WindowDepartitionAttrs, ins: list[Shape], out: Shape) -> Emit:
    p, gh, gw = _departition_geom(a, ins[0])
    return Emit(module="WindowDepartition()", call=f"{{self}}({{0}}, {p}, {gh}, {gw})",
                helpers=(WINDOW_DEPARTITION,))


register(OpDef(
    name="window_departition", attrs=WindowDepartitionAttrs, family="shape", positional=("size", "grid"),
    doc="Put channels-last G×P×C windows back together into a map (MaxViT's WindowDepartition, the "
        "inverse of window_partition): -> C×(gh·p)×(gw·p), P = p·p, G = gh·gw. size (p) and grid "
        "([gh, gw]) default to √P and a square √G×√G grid. No parameters; MACs 0.",
    infer=_departition_infer, emit=_departition_emit, train=train_new,
))


# ------------------------------------------------------------------- relative_position_attention
class RelativePositionAttentionAttrs(Attrs):
    """Multi-head self-attention within each window, with a learned relative position bias."""

    head_dim: Pos = Field(description="features per head: heads = C / head_dim (MaxViT: 32)")
    max_seq_len: Optional[Pos] = Field(
        None, description="tokens per window P = s·s (the bias table covers (2s−1)² offsets); "
                          "default: P of the input")


RELATIVE_POSITION_ATTENTION = Helper("RelativePositionalMultiHeadAttention", '''class RelativePositionalMultiHeadAttention(nn.Module):
    """Multi-head self-attention within each of G windows of P = s·s tokens, N×G×P×C -> N×G×P×C,
    with a learned bias per head and relative offset of two tokens of the s×s window (torchvision's
    MaxViT; the keys are scaled by C ** -0.5, C the feature width, not the head width)."""

    def __init__(self, feat_dim: int, head_dim: int, max_seq_len: int) -> None:
        super().__init__()
        if feat_dim % head_dim != 0:
            raise ValueError(f"feat_dim: {feat_dim} must be divisible by head_dim: {head_dim}")
        self.n_heads = feat_dim // head_dim
        self.head_dim = head_dim
        self.size = int(max_seq_len**0.5)
        self.max_seq_len = max_seq_len
        self.to_qkv = nn.Linear(feat_dim, self.n_heads * self.head_dim * 3)
        self.scale_factor = feat_dim**-0.5
        self.merge = nn.Linear(self.head_dim * self.n_heads, feat_dim)
        self.relative_position_bias_table = nn.Parameter(
            torch.empty(((2 * self.size - 1) * (2 * self.size - 1), self.n_heads), dtype=torch.float32)
        )
        self.register_buffer("relative_position_index", self.relative_position_index_of(self.size))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    @staticmethod
    def relative_position_index_of(size: int) -> Tensor:
        """(s·s)×(s·s): for two tokens of an s×s window, the row of the bias table of their offset."""
        coords = torch.stack(torch.meshgrid([torch.arange(size), torch.arange(size)], indexing="ij"))
        coords_flat = torch.flatten(coords, 1)
        relative_coords = coords_flat[:, :, None] - coords_flat[:, None, :]
        relative_coords = relative_coords.permute(1, 2, 0).contiguous()
        relative_coords[:, :, 0] += size - 1
        relative_coords[:, :, 1] += size - 1
        relative_coords[:, :, 0] *= 2 * size - 1
        return relative_coords.sum(-1)

    def get_relative_positional_bias(self) -> Tensor:
        bias_index = self.relative_position_index.view(-1)
        relative_bias = self.relative_position_bias_table[bias_index].view(self.max_seq_len, self.max_seq_len, -1)
        relative_bias = relative_bias.permute(2, 0, 1).contiguous()
        return relative_bias.unsqueeze(0)

    def forward(self, x: Tensor) -> Tensor:
        B, G, P, D = x.shape
        H, DH = self.n_heads, self.head_dim
        qkv = self.to_qkv(x)
        q, k, v = torch.chunk(qkv, 3, dim=-1)
        q = q.reshape(B, G, P, H, DH).permute(0, 1, 3, 2, 4)
        k = k.reshape(B, G, P, H, DH).permute(0, 1, 3, 2, 4)
        v = v.reshape(B, G, P, H, DH).permute(0, 1, 3, 2, 4)
        k = k * self.scale_factor
        dot_prod = torch.einsum("B G H I D, B G H J D -> B G H I J", q, k)
        dot_prod = nn.functional.softmax(dot_prod + self.get_relative_positional_bias(), dim=-1)
        out = torch.einsum("B G H I J, B G H J D -> B G H I D", dot_prod, v)
        out = out.permute(0, 1, 3, 2, 4).reshape(B, G, P, D)
        return self.merge(out)''')


def _rpa_geom(a: RelativePositionAttentionAttrs, x: Shape) -> tuple[int, int, int]:
    """(heads, s, P) of the attention over windows ``x``."""
    _need_windows("relative_position_attention", x)
    g, p, c = x
    if c % a.head_dim:
        raise OpError(f"head_dim {a.head_dim} does not divide the {c} channels (heads = C / head_dim)",
                      attr="head_dim", code="channel_mismatch",
                      hint="C must be a multiple of head_dim (MaxViT: 64, 128, 256, 512 with head_dim 32)")
    n = p if a.max_seq_len is None else a.max_seq_len
    if n != p:
        raise OpError(f"max_seq_len {n} is not the {p} tokens per window of the input {list(x)}",
                      attr="max_seq_len", code="shape_error",
                      hint="max_seq_len is the partition size squared (7² = 49 in MaxViT)")
    s = _isqrt(n)
    if s is None:
        raise OpError(f"{n} tokens per window is not a square window s·s: the relative position bias "
                      f"needs one", attr="max_seq_len", code="shape_error",
                      hint="windows come from window_partition (p·p tokens), or from the grid swap of "
                           "its output")
    return c // a.head_dim, s, n


def _rpa_infer(a: RelativePositionAttentionAttrs, ins: list[Shape]) -> Shape:
    _rpa_geom(a, ins[0])
    return ins[0]


def _rpa_count(a: RelativePositionAttentionAttrs, ins: list[Shape], out: Shape) -> Counts:
    heads, s, n = _rpa_geom(a, ins[0])
    g, p, c = ins[0]
    table = (2 * s - 1) ** 2 * heads
    return Counts(params=4 * c * c + 4 * c + table, weights=4 * c * c + table,
                  macs=3 * g * p * c * c + 2 * g * p * p * c + g * p * c * c)


def _rpa_tool_counts(a: RelativePositionAttentionAttrs, ins: list[Shape], out: Shape) -> dict[str, int]:
    """What other counters report for the helper module (archspec.analysis.conventions). fvcore:
    aten::linear (to_qkv, merge) and its einsum handle for Q·Kᵀ and weights·V, which reads the
    "Optimized FLOP count" that numpy.einsum_path prints (2·MACs + 1, to 4 significant digits) and
    halves it: the MACs, rounded that way. thop: the two nn.Linear children. ptflops: the nn.Linear children
    with their biases and F.softmax over the heads·P×P logits of every window (torch.einsum is not
    among the ops it patches)."""
    heads, s, n = _rpa_geom(a, ins[0])
    g, p, c = ins[0]
    linears = 4 * g * p * c * c
    einsum = math.floor(float(f"{2 * g * p * p * c + 1:.3e}") / 2)  # fvcore's einsum_flop_jit
    return {"fvcore": linears + 2 * einsum, "thop": linears,
            "ptflops": linears + 4 * g * p * c + g * heads * p * p}


def _rpa_emit(a: RelativePositionAttentionAttrs, ins: list[Shape], out: Shape) -> Emit:
    heads, s, n = _rpa_geom(a, ins[0])
    n_text = str(a.max_seq_len) if a.max_seq_len is not None else str(n)
    return Emit(module=f"RelativePositionalMultiHeadAttention({ins[0][2]}, {a.head_dim}, {n_text})",
                helpers=(RELATIVE_POSITION_ATTENTION,))


def _rpa_train(a: RelativePositionAttentionAttrs, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
    """to_qkv (saves its input), the two einsums as batched matmuls (their operands are copies:
    Q, K·scale, V; the attention weights are softmax's output, fp32 since the fp32 bias table is
    added, and autocast's bf16 copy of it), the bias table's index (a buffer), merge (saves its
    input, a copy). Backward: the projections as linear layers, each matmul's two operands."""
    heads, s, n = _rpa_geom(a, ins[0])
    g, p, c = ins[0]
    b, low = ctx.batch, ctx.low
    u, att = b * g * p * c, b * g * heads * p * p
    qkv, mm, merge = b * 3 * g * p * c * c, b * g * p * p * c, b * g * p * c * c
    saves = [Saved("cast", 0, dtype=low), Saved("weight", numel=3 * c * c, dtype="bf16"),
             Saved("new", numel=u, dtype=low), Saved("new", numel=u, dtype=low),
             Saved("buffer", numel=p * p, dtype="i64"), Saved("new", numel=att)]
    if ctx.amp:
        saves.append(Saved("new", numel=att, dtype="bf16"))
    saves += [Saved("new", numel=u, dtype=low), Saved("new", numel=u, dtype=low),
              Saved("weight", numel=c * c, dtype="bf16")]
    return TrainCost(low, fwd=2 * (qkv + 2 * mm + merge), bwd_input=2 * qkv,
                     bwd_weight=2 * qkv + 2 * 2 * 2 * mm + 2 * 2 * merge, saves=tuple(saves))


register(OpDef(
    name="relative_position_attention", train=_rpa_train, attrs=RelativePositionAttentionAttrs, family="attention",
    tags=frozenset({"weighted"}), positional=("head_dim", "max_seq_len"),
    doc="Multi-head self-attention within each window with a learned relative position bias (MaxViT "
        "§3.2, torchvision's RelativePositionalMultiHeadAttention): on channels-last G×P×C windows "
        "of P = s·s tokens, softmax(Q·(K·C^−½)ᵀ + B)V per head, heads = C / head_dim, B from a "
        "(2s−1)²×heads table; shape unchanged. params = 4·C² + 4·C (to_qkv and merge, with biases) "
        "+ (2s−1)²·heads (the table; the index is a buffer); MACs = 3·G·P·C² (QKV) + G·P²·C (QKᵀ) "
        "+ G·P²·C (weights × V) + G·P·C² (merge).",
    infer=_rpa_infer, count=_rpa_count, emit=_rpa_emit, tool_counts=_rpa_tool_counts,
    window=lambda a, i: Window(global_=True),
))
