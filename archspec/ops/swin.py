"""The ops of the Swin Transformer (Liu et al. 2021; V2: Liu et al. 2022), each declared once.

Swin keeps its maps channels-last (H×W×C, a :class:`~archspec.ops.registry.ChannelsLast` shape)
from the patch embedding to the head. Three ops read such a map:

* ``shifted_window_attention``: multi-head self-attention inside non-overlapping windows, the
  windows shifted by half a window on every second block (W-MSA / SW-MSA, §3.2), with a learned
  relative position bias — torchvision's ``ShiftedWindowAttention``;
* ``shifted_window_attention_v2``: the same with V2's scaled cosine attention and continuous
  position bias (a small MLP over log-spaced relative coordinates) — ``ShiftedWindowAttentionV2``;
* ``space_to_depth``: the parameter-free half of patch merging (§3.1): pad to even H and W, gather
  each 2×2 patch into 4·C channels. torchvision's ``PatchMerging`` is this, a LayerNorm and a
  Linear(4C, 2C, bias=False) (V2: the Linear first, then the LayerNorm over 2C), written as a block.

The attention ops are emitted as helper classes written into the generated file (torch only), with
torchvision's children, parameters and buffers, so that its state_dict loads strictly.
"""

from __future__ import annotations

from pydantic import Field

from .registry import (Attrs, ChannelsLast, Counts, Emit, Helper, NoAttrs, NonNeg, NonNegPair, OpDef, OpError,
                       Pos, PosPair, Prob, Saved, Shape, TrainContext, TrainCost, Window, is_channels_last,
                       is_symbolic, pair, register, train_new)

__all__: list[str] = []  # the ops are reached through the registry


#: the hidden width of V2's continuous position bias MLP (torchvision's cpb_mlp: Linear(2, 512))
CPB_HIDDEN = 512



def _need_channels_last(op: str, x: Shape) -> None:
    if not is_channels_last(x) or len(x) != 3:
        what = "the C×H×W map" if len(x) == 3 else ("the T×D token sequence" if len(x) == 2 else "the shape")
        raise OpError(f"'{op}' needs a channels-last H×W×C map, got {what} {list(x)}", code="layout",
                      hint="Swin keeps its maps channels-last: {permute: [0, 2, 3, 1]} after the patch "
                           "embedding conv turns C×H×W into H×W×C")


# ------------------------------------------------------------------------ shifted_window_attention
class WindowAttentionAttrs(Attrs):
    """Multi-head self-attention inside (shifted) windows of a channels-last map."""

    heads: Pos = Field(description="attention heads; each attends with C/heads dimensions")
    window: PosPair = Field(description="window size: w or [wh, ww] (Swin: 7, V2: 8)")
    shift: NonNegPair = Field(0, description="cyclic shift of the windows: s or [sh, sw], below the "
                                             "window (Swin: 0 on even blocks, window // 2 on odd ones)")
    attention_dropout: Prob = Field(0.0, description="dropout on the attention weights (training only)")
    dropout: Prob = Field(0.0, description="dropout on the output projection (training only)")
    qkv_bias: bool = Field(True, description="the Q, K, V projection has a bias")
    proj_bias: bool = Field(True, description="the output projection has a bias")


def _geometry(a: WindowAttentionAttrs, x: Shape) -> tuple[int, int, int, int, int]:
    """(padded H, padded W, tokens per window P, relative positions T, channels C)."""
    h, w, c = x
    wh, ww = pair(a.window)
    return -(-h // wh) * wh, -(-w // ww) * ww, wh * ww, (2 * wh - 1) * (2 * ww - 1), c


def _window_attention_infer(name: str):
    def infer(a: WindowAttentionAttrs, ins: list[Shape]) -> Shape:
        x = ins[0]
        _need_channels_last(name, x)
        c = x[2]
        if c % a.heads:
            raise OpError(f"{a.heads} heads do not divide the {c} channels", attr="heads",
                          code="channel_mismatch",
                          hint="C must be a multiple of heads (Swin-T: 96 channels, 3 heads, 32 each)")
        window, shift = pair(a.window), pair(a.shift)
        for axis, wd, sd in (("height", window[0], shift[0]), ("width", window[1], shift[1])):
            if sd >= wd:
                raise OpError(f"the {axis} shift {sd} is not below the window's {axis} {wd}", attr="shift",
                              code="shape_error", hint="Swin shifts by half a window: window // 2")
            if name.endswith("_v2") and wd < 2:
                raise OpError(f"V2's continuous position bias divides the relative coordinates by window - "
                              f"1, which is 0 for a window {axis} of {wd}", attr="window",
                              code="shape_error", hint="use a window of at least 2 (SwinV2: 8)")
        return x
    return infer


def _window_attention_macs(a: WindowAttentionAttrs, ins: list[Shape]) -> int:
    """Per image: the Q, K, V and output projections over every token of the padded map, and the two
    matmuls (Q·Kᵀ and weights·V) of each window: 4·N·C² + 2·N·P·C, N = padded H·W."""
    ph, pw, p, _, c = _geometry(a, ins[0])
    n = ph * pw
    return 4 * n * c * c + 2 * n * p * c


def _window_attention_count(a: WindowAttentionAttrs, ins: list[Shape], out: Shape) -> Counts:
    _, _, _, t, c = _geometry(a, ins[0])
    weights = 4 * c * c + t * a.heads  # qkv, proj, the bias table (T × heads)
    biases = 3 * c * a.qkv_bias + c * a.proj_bias
    return Counts(params=weights + biases, weights=weights, macs=_window_attention_macs(a, ins))


def _window_attention_v2_count(a: WindowAttentionAttrs, ins: list[Shape], out: Shape) -> Counts:
    _, _, _, t, c = _geometry(a, ins[0])
    # qkv, proj, logit_scale (heads), cpb_mlp: Linear(2, 512) and Linear(512, heads, bias=False)
    weights = 4 * c * c + a.heads + 2 * CPB_HIDDEN + CPB_HIDDEN * a.heads
    biases = 3 * c * a.qkv_bias + c * a.proj_bias + CPB_HIDDEN
    shared = t * 2 * CPB_HIDDEN + t * CPB_HIDDEN * a.heads  # cpb_mlp over the T relative coordinates
    return Counts(params=weights + biases, weights=weights, macs=_window_attention_macs(a, ins) + shared,
                  shared_macs=shared)


def _window_attention_tool_counts(v2: bool):
    """What other counters report for the helper module (archspec.analysis.conventions), over the N
    padded tokens, P per window. fvcore: its aten::linear (qkv, proj) and aten::matmul (Q·Kᵀ,
    weights·V) handles, and the cpb_mlp's linears (V2): the MACs. thop: the nn.Linear children it
    hooks (V2 calls F.linear with qkv's weight, so qkv never runs as a module; the cpb_mlp's
    linears do). ptflops: the nn.Linear children with their biases, the matmuls it patches
    (Tensor.matmul: V1's Q·Kᵀ and both versions' weights·V; V2's Q·Kᵀ is the @ operator, which it
    does not see), F.softmax over the heads·P×P logits of every window, and V2's cpb_mlp (its ReLU
    twice: module hook and F.relu)."""
    def tool_counts(a: WindowAttentionAttrs, ins: list[Shape], out: Shape) -> dict[str, int]:
        ph, pw, p, t, c = _geometry(a, ins[0])
        n = ph * pw
        qkv, proj, matmuls, softmax = 3 * n * c * c, n * c * c, 2 * n * p * c, n * a.heads * p
        qkv_bias, proj_bias = 3 * n * c * a.qkv_bias, n * c * a.proj_bias
        if not v2:
            return {"fvcore": qkv + proj + matmuls, "thop": qkv + proj,
                    "ptflops": qkv + qkv_bias + proj + proj_bias + matmuls + softmax}
        cpb = t * 2 * CPB_HIDDEN + t * CPB_HIDDEN * a.heads  # Linear(2, 512), Linear(512, heads)
        cpb_extra = t * CPB_HIDDEN + 2 * t * CPB_HIDDEN  # ptflops: the first linear's bias, the ReLU twice
        return {"fvcore": qkv + proj + matmuls + cpb, "thop": proj + cpb,
                "ptflops": proj + proj_bias + matmuls // 2 + softmax + cpb + cpb_extra}
    return tool_counts


def _fmt_list(v) -> str:
    """A pair as torchvision writes window_size and shift_size (``[7, 7]``), or a block's parameter by
    its name."""
    if is_symbolic(v):
        return str(v)
    a, b = pair(v)
    return f"[{a}, {b}]"


def _window_attention_emit(helper: Helper):
    def emit(a: WindowAttentionAttrs, ins: list[Shape], out: Shape) -> Emit:
        args = [str(ins[0][-1]), _fmt_list(a.window), _fmt_list(a.shift), str(a.heads)]
        for key in ("qkv_bias", "proj_bias"):
            if not getattr(a, key) or is_symbolic(getattr(a, key)):
                args.append(f"{key}={getattr(a, key)!r}")
        for key in ("attention_dropout", "dropout"):
            if getattr(a, key) or is_symbolic(getattr(a, key)):  # a rate given by name is written by name
                args.append(f"{key}={getattr(a, key)!r}")
        return Emit(module=f"{helper.name}({', '.join(args)})", helpers=(helper,))
    return emit


def _window_attention_window(a: WindowAttentionAttrs, ins: list[Shape]) -> Window:
    # a token sees the tokens of its window: at most window − 1 away on either side
    wh, ww = pair(a.window)
    return Window((2 * wh - 1, 2 * ww - 1))


# The helper classes' source, shared by V1 and V2 (each class is self-contained in the generated
# file). __V2_INIT__, __LOGITS__ etc. are replaced below.
_SWA_SOURCE = '''class __NAME__(nn.Module):
    """__DOC__"""

    def __init__(
        self,
        dim: int,
        window_size: int | list[int],
        shift_size: int | list[int],
        num_heads: int,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        attention_dropout: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.window_size = [window_size] * 2 if isinstance(window_size, int) else list(window_size)
        self.shift_size = [shift_size] * 2 if isinstance(shift_size, int) else list(shift_size)
        self.num_heads = num_heads
        self.attention_dropout = attention_dropout
        self.dropout = dropout
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        wh, ww = self.window_size
__TABLE__
        # the row of the table for the relative position of every pair of a window's tokens
        coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij"))
        coords = torch.flatten(coords, 1)  # 2, wh·ww
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # wh·ww, wh·ww, 2
        index = (relative[:, :, 0] + wh - 1) * (2 * ww - 1) + relative[:, :, 1] + ww - 1
        self.register_buffer("relative_position_index", index.flatten())
__V2_INIT__
    def relative_position_bias(self) -> Tensor:
        """The bias added to the attention logits: 1 × heads × P × P, P = wh·ww."""
        p = self.window_size[0] * self.window_size[1]
__BIAS__

    def attention_mask(self, pad_h: int, pad_w: int, shift: list[int], x: Tensor) -> Tensor:
        """windows × P × P: -100 between tokens that the cyclic shift brought into one window from
        different regions of the map, 0 elsewhere."""
        wh, ww = self.window_size
        mask = x.new_zeros((pad_h, pad_w))
        h_slices = ((0, -wh), (-wh, -shift[0]), (-shift[0], None))
        w_slices = ((0, -ww), (-ww, -shift[1]), (-shift[1], None))
        count = 0
        for h in h_slices:
            for w in w_slices:
                mask[h[0] : h[1], w[0] : w[1]] = count
                count += 1
        mask = mask.view(pad_h // wh, wh, pad_w // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)
        mask = mask.unsqueeze(1) - mask.unsqueeze(2)
        return mask.masked_fill(mask != 0, float(-100.0)).masked_fill(mask == 0, float(0.0))

    def forward(self, x: Tensor) -> Tensor:
        B, H, W, C = x.shape
        wh, ww = self.window_size
        # pad the map to whole windows
        pad_r = (ww - W % ww) % ww
        pad_b = (wh - H % wh) % wh
        x = nn.functional.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        _, pad_h, pad_w, _ = x.shape
        # no shift along an axis that one window covers
        shift = [0 if wh >= pad_h else self.shift_size[0], 0 if ww >= pad_w else self.shift_size[1]]
        if sum(shift) > 0:
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        # partition into windows of P = wh·ww tokens
        num_windows = (pad_h // wh) * (pad_w // ww)
        p = wh * ww
        x = x.view(B, pad_h // wh, wh, pad_w // ww, ww, C)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(B * num_windows, p, C)
        # multi-head self-attention in every window
__QKV__
        qkv = qkv.reshape(B * num_windows, p, 3, self.num_heads, C // self.num_heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # 3, windows, heads, P, C / heads
        q, k, v = qkv[0], qkv[1], qkv[2]
__LOGITS__
        attn = attn + self.relative_position_bias()
        if sum(shift) > 0:
            mask = self.attention_mask(pad_h, pad_w, shift, x)
            attn = attn.view(B, num_windows, self.num_heads, p, p) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, p, p)
        attn = nn.functional.softmax(attn, dim=-1)
        attn = nn.functional.dropout(attn, p=self.attention_dropout, training=self.training)
        x = attn.matmul(v).transpose(1, 2).reshape(B * num_windows, p, C)
        x = self.proj(x)
        x = nn.functional.dropout(x, p=self.dropout, training=self.training)
        # merge the windows, undo the shift and the padding
        x = x.view(B, pad_h // wh, pad_w // ww, wh, ww, C)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(B, pad_h, pad_w, C)
        if sum(shift) > 0:
            x = torch.roll(x, shifts=(shift[0], shift[1]), dims=(1, 2))
        return x[:, :H, :W, :].contiguous()'''

_V1_PARTS = {
    "__NAME__": "ShiftedWindowAttention",
    "__DOC__": """Window multi-head self-attention with a relative position bias, on windows shifted by
    shift_size (Swin, Liu et al. 2021, §3.2), as torchvision's ShiftedWindowAttention: the
    N×H×W×C map is padded to whole windows and rolled by -shift, attention runs inside each
    window (pairs that the roll brought together are masked), and the map is rolled back and
    cropped. The shift is dropped along an axis that one window covers.""",
    "__TABLE__": """        # one learned bias per head for each of the (2·wh − 1)(2·ww − 1) relative positions
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)""",
    "__V2_INIT__": "",
    "__BIAS__": """        bias = self.relative_position_bias_table[self.relative_position_index].view(p, p, -1)
        return bias.permute(2, 0, 1).contiguous().unsqueeze(0)""",
    "__QKV__": "        qkv = self.qkv(x)",
    "__LOGITS__": """        q = q * (C // self.num_heads) ** -0.5
        attn = q.matmul(k.transpose(-2, -1))""",
}

_V2_PARTS = {
    "__NAME__": "ShiftedWindowAttentionV2",
    "__DOC__": """Swin V2's window attention (Liu et al. 2022, §3.2), as torchvision's
    ShiftedWindowAttentionV2: scaled cosine attention, cos(q, k) · exp(min(logit_scale,
    log 100)) per head, and a continuous relative position bias, 16 · sigmoid of an MLP (cpb_mlp)
    over log-spaced relative coordinates; the key's bias is kept at zero. Windows, shift, mask and
    padding as Swin V1's ShiftedWindowAttention.""",
    "__TABLE__": """        # the relative coordinates (dh, dw) of the window, scaled to [-8, 8] and log-spaced (§3.3)
        relative_h = torch.arange(-(wh - 1), wh, dtype=torch.float32)
        relative_w = torch.arange(-(ww - 1), ww, dtype=torch.float32)
        table = torch.stack(torch.meshgrid([relative_h, relative_w], indexing="ij"))
        table = table.permute(1, 2, 0).contiguous().unsqueeze(0)  # 1, 2·wh − 1, 2·ww − 1, 2
        table[:, :, :, 0] /= wh - 1
        table[:, :, :, 1] /= ww - 1
        table *= 8
        table = torch.sign(table) * torch.log2(torch.abs(table) + 1.0) / 3.0
        self.register_buffer("relative_coords_table", table)""",
    "__V2_INIT__": """        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones((num_heads, 1, 1))))
        # the MLP that maps a relative position to one bias per head
        self.cpb_mlp = nn.Sequential(
            nn.Linear(2, 512, bias=True),
            nn.ReLU(inplace=True),
            nn.Linear(512, num_heads, bias=False),
        )
        if qkv_bias:
            length = self.qkv.bias.numel() // 3
            self.qkv.bias[length : 2 * length].data.zero_()
""",
    "__BIAS__": """        table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
        bias = table[self.relative_position_index].view(p, p, -1)
        bias = bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        return 16 * torch.sigmoid(bias)""",
    "__QKV__": """        qkv_bias = self.qkv.bias
        if qkv_bias is not None:  # the key has no bias
            qkv_bias = qkv_bias.clone()
            length = qkv_bias.numel() // 3
            qkv_bias[length : 2 * length].zero_()
        qkv = nn.functional.linear(x, self.qkv.weight, qkv_bias)""",
    "__LOGITS__": """        # cosine attention, scaled per head by exp(logit_scale), at most 100 (log 100 = 4.6051...)
        q = nn.functional.normalize(q, dim=-1)
        k = nn.functional.normalize(k, dim=-1)
        attn = q @ k.transpose(-2, -1)
        logit_scale = torch.clamp(self.logit_scale, max=4.605170185988092).exp()
        attn = attn * logit_scale""",
}


def _source(parts: dict[str, str]) -> str:
    text = _SWA_SOURCE
    for key, value in parts.items():
        text = text.replace(key, value)
    return text.replace("\n\n\n", "\n\n")


SHIFTED_WINDOW_ATTENTION = Helper("ShiftedWindowAttention", _source(_V1_PARTS))
SHIFTED_WINDOW_ATTENTION_V2 = Helper("ShiftedWindowAttentionV2", _source(_V2_PARTS))

def _window_attention_train(v2: bool):
    def train(a: WindowAttentionAttrs, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
        """What the helper's forward saves, per image over the N tokens of the padded map (U = N·C
        elements, A = N·P·heads attention weights): the windows (a copy) for qkv; Q and Kᵀ (V1: Q
        scaled, Kᵀ a copy; V2: both normalised, with their norms and clamped norms, N·heads each,
        and qkv's output, 3·U, that normalize reads); the logits (V2: kept by the logit scale's
        product); the bias (V1: the table's index, a buffer; V2: the MLP's input table, its ReLU
        output T·512, the index, 16·sigmoid's output heads·P²); softmax's output (fp32: the bias
        is fp32) and autocast's bf16 copy of it; V (a copy); the projection's input (a copy)."""
        ph, pw, p, t, c = _geometry(a, ins[0])
        n, h, b, low = ph * pw, a.heads, ctx.batch, ctx.low
        u, att, r = b * n * c, b * n * p * h, b * n * h
        qkv, mm, proj = b * 3 * n * c * c, b * n * p * c, b * n * c * c
        fwd = 2 * (qkv + 2 * mm + proj)
        bwd = 2 * qkv + 2 * 2 * 2 * mm + 2 * 2 * proj
        saves = [Saved("new", numel=u, dtype=low), Saved("weight", numel=3 * c * c, dtype="bf16")]
        if v2:
            cpb_in, cpb_out = t * 2 * CPB_HIDDEN, t * CPB_HIDDEN * h
            fwd += 2 * (cpb_in + cpb_out)
            bwd += 2 * cpb_in + 2 * 2 * cpb_out  # the table is a buffer: no gradient for it
            saves += [Saved("new", numel=3 * u, dtype=low)] + [Saved("new", numel=r, dtype=low)] * 4
            saves += [Saved("new", numel=u, dtype=low), Saved("new", numel=u, dtype=low),
                      Saved("new", numel=h), Saved("new", numel=att, dtype=low),
                      Saved("new", numel=t * 2, dtype="bf16") if ctx.amp else Saved("buffer", numel=t * 2),
                      Saved("new", numel=t * CPB_HIDDEN, dtype=low),
                      Saved("weight", numel=CPB_HIDDEN * h, dtype="bf16"),
                      Saved("buffer", numel=p * p, dtype="i64"), Saved("new", numel=h * p * p, dtype=low)]
        else:
            saves += [Saved("new", numel=u, dtype=low), Saved("new", numel=u, dtype=low),
                      Saved("buffer", numel=p * p, dtype="i64")]
        saves.append(Saved("new", numel=att))
        if ctx.amp:
            saves.append(Saved("new", numel=att, dtype="bf16"))
        saves += [Saved("new", numel=u, dtype=low), Saved("new", numel=u, dtype=low),
                  Saved("weight", numel=c * c, dtype="bf16")]
        return TrainCost(low, fwd=fwd, bwd_input=2 * qkv, bwd_weight=bwd, saves=tuple(saves))
    return train


_ATTENTION_DOC = (
    "On a channels-last H×W×C map (shape unchanged): the map is padded to whole windows of "
    "wh×ww = P tokens (N = padded H·W tokens), rolled by −shift (the shift is dropped along an axis "
    "that one window covers, as torchvision does), and heads-head self-attention runs inside each "
    "window; heads must divide C, shift < window. MACs (per image) = 4·N·C² (Q, K, V and output "
    "projections over the padded tokens) + 2·N·P·C (Q·Kᵀ and weights·V in every window).")

register(OpDef(
    name="shifted_window_attention", attrs=WindowAttentionAttrs, family="attention",
    tags=frozenset({"weighted"}), positional=("heads", "window", "shift"),
    doc="Swin's (shifted) window multi-head self-attention with a relative position bias (Liu et al. "
        "2021, §3.2; torchvision's ShiftedWindowAttention, written into the generated file). "
        + _ATTENTION_DOC + " params = 4·C² (+3·C qkv bias, +C proj bias) + (2·wh − 1)(2·ww − 1)·heads "
        "(the relative position bias table; relative_position_index is a buffer).",
    infer=_window_attention_infer("shifted_window_attention"), count=_window_attention_count,
    emit=_window_attention_emit(SHIFTED_WINDOW_ATTENTION), window=_window_attention_window,
    tool_counts=_window_attention_tool_counts(v2=False),
    train=_window_attention_train(False),
))

register(OpDef(
    name="shifted_window_attention_v2", attrs=WindowAttentionAttrs, family="attention",
    tags=frozenset({"weighted"}), positional=("heads", "window", "shift"),
    doc="Swin V2's (shifted) window attention (Liu et al. 2022, §3.2; torchvision's "
        "ShiftedWindowAttentionV2, written into the generated file): scaled cosine attention with a "
        "learned logit_scale per head, and a continuous position bias from an MLP (cpb_mlp: "
        "Linear(2, 512), ReLU, Linear(512, heads, bias=False)) over the T = (2·wh − 1)(2·ww − 1) "
        "log-spaced relative coordinates; the key's bias is held at zero. " + _ATTENTION_DOC
        + " The cpb_mlp adds T·512·(2 + heads) MACs that are paid once per forward pass, whatever "
        "the batch size (shared_macs: included in macs, which are at batch 1; at batch B "
        "FlopCounterMode counts 2·(B·(macs − shared) + shared)); window ≥ 2. params = 4·C² (+3·C "
        "qkv bias, +C proj bias) + heads (logit_scale) + 3·512 + 512·heads (cpb_mlp); "
        "relative_coords_table and relative_position_index are buffers.",
    infer=_window_attention_infer("shifted_window_attention_v2"), count=_window_attention_v2_count,
    emit=_window_attention_emit(SHIFTED_WINDOW_ATTENTION_V2), window=_window_attention_window,
    tool_counts=_window_attention_tool_counts(v2=True),
    train=_window_attention_train(True),
))


# ---------------------------------------------------------------------------------- space_to_depth
SPACE_TO_DEPTH = Helper("space_to_depth", '''def space_to_depth(x: Tensor) -> Tensor:
    """Swin's patch merging without its weights (torchvision's _patch_merging_pad): pad the
    N×H×W×C map to even H and W, then put the four tokens of each 2×2 patch side by side,
    (0, 0), (1, 0), (0, 1), (1, 1): N×H/2×W/2×4C."""
    H, W, _ = x.shape[-3:]
    x = nn.functional.pad(x, (0, 0, 0, W % 2, 0, H % 2))
    x0 = x[..., 0::2, 0::2, :]
    x1 = x[..., 1::2, 0::2, :]
    x2 = x[..., 0::2, 1::2, :]
    x3 = x[..., 1::2, 1::2, :]
    return torch.cat([x0, x1, x2, x3], -1)''')


def _space_to_depth_infer(a: NoAttrs, ins: list[Shape]) -> Shape:
    x = ins[0]
    _need_channels_last("space_to_depth", x)
    h, w, c = x
    return ChannelsLast((-(-h // 2), -(-w // 2), 4 * c))


register(OpDef(
    name="space_to_depth", attrs=NoAttrs, family="shape",
    doc="Swin's patch merging without its weights (§3.1; torchvision's _patch_merging_pad): a "
        "channels-last H×W×C map is zero-padded to even H and W and each 2×2 patch becomes one "
        "token of 4·C channels, in the order (0, 0), (1, 0), (0, 1), (1, 1): ⌈H/2⌉×⌈W/2⌉×4C. "
        "torchvision's PatchMerging is this, layernorm and {linear: {out: 2·C, bias: false}} (V2: "
        "the linear, then the layernorm). No parameters; MACs 0.",
    infer=_space_to_depth_infer, train=train_new,  # pad, strided slices, cat: nothing saved
    emit=lambda a, i, o: Emit(call="space_to_depth({0})", helpers=(SPACE_TO_DEPTH,)),
    window=lambda a, i: Window((2, 2), (2, 2)),
))
