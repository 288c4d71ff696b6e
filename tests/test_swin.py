"""Issue #11: Swin Transformer (v1 and v2). The ops shifted_window_attention,
shifted_window_attention_v2 and space_to_depth, each checked against torchvision 0.29.1's own
modules (ShiftedWindowAttention, ShiftedWindowAttentionV2, PatchMerging, PatchMergingV2): strict
state_dict, equal outputs, params and FlopCounterMode MACs, on maps that need padding and where the
window covers the map (the shift is dropped). Every built spec also goes through the compiler
contract (tests/contract.py), which counts FlopCounterMode at batch 2 with V2's shared MACs paid once.
The whole builders (specs/torchvision/swin_*.yaml) are covered by the automatic torchvision tests."""

import importlib.util
import sys

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.swin_transformer import (PatchMerging, PatchMergingV2, ShiftedWindowAttention,
                                                 ShiftedWindowAttentionV2)

from archspec.ops import REGISTRY, ChannelsLast, is_channels_last

from .conftest import ROOT
from .test_ops_modern import _build, _error, _layer, _torch_only

TORCHVISION = {"shifted_window_attention": ShiftedWindowAttention,
               "shifted_window_attention_v2": ShiftedWindowAttentionV2}


def _perturbed(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` in eval mode with every parameter moved off its initial value (zero biases, the
    k-bias of V2 and logit_scale would hide mistakes)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return module.eval()


def _flops(module: torch.nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x)
    return counter.get_total_flops()


# (H, W, C, heads, window, shift): maps that need padding, windows that cover the map (the shift is
# dropped along that axis, as torchvision does), a non-square window, a shift along one axis only
CASES = [
    pytest.param(10, 10, 16, 2, [7, 7], [3, 3], id="10x10-window7-padded"),
    pytest.param(14, 14, 32, 4, [7, 7], [3, 3], id="14x14-window7"),
    pytest.param(5, 6, 16, 2, [7, 7], [3, 3], id="5x6-window7-shift-dropped"),
    pytest.param(7, 7, 8, 1, [7, 7], [3, 3], id="7x7-window7-shift-dropped"),
    pytest.param(7, 16, 8, 2, [7, 7], [3, 3], id="7x16-shift-dropped-along-h"),
    pytest.param(9, 13, 16, 4, [3, 4], [1, 2], id="9x13-window3x4"),
    pytest.param(9, 13, 16, 4, [3, 4], [0, 2], id="9x13-shift-w-only"),
    pytest.param(6, 6, 12, 3, [2, 2], [0, 0], id="6x6-no-shift"),
]


@pytest.mark.parametrize("op", sorted(TORCHVISION))
@pytest.mark.parametrize("h, w, c, heads, window, shift", CASES)
def test_window_attention_is_torchvision_s(tmp_path, op, h, w, c, heads, window, shift):
    mod, text, st = _build(tmp_path, f"""
        network:
          embed: {{permute: [0, 2, 3, 1]}}
          attn: {{{op}: {{heads: {heads}, window: {window}, shift: {shift}}}}}
        """, input=f"[{c}, {h}, {w}]")
    _torch_only(text)
    cls = "ShiftedWindowAttentionV2" if op.endswith("v2") else "ShiftedWindowAttention"
    assert text.count(f"\nclass {cls}(nn.Module):") == 1
    assert f"self.attn = {cls}({c}, {window}, {shift}, {heads})" in text
    ref = _perturbed(TORCHVISION[op](c, window, shift, heads))
    ours = mod.build().attn.eval()
    assert list(ours.state_dict()) == list(ref.state_dict())  # the same names, in the same order
    ours.load_state_dict(ref.state_dict(), strict=True)
    # the buffers it computes itself are torchvision's
    fresh = mod.build().attn
    for name, buf in TORCHVISION[op](c, window, shift, heads).named_buffers():
        assert torch.equal(fresh.get_buffer(name), buf), name
    x = torch.randn(2, h, w, c)
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))
    # counts: params exactly, MACs = FlopCounterMode / 2 at batch 1; at batch 2 the shared MACs
    # (V2's cpb_mlp) are paid once
    layer = _layer(st, "attn")
    assert layer.output == (h, w, c) and is_channels_last(layer.output)
    assert layer.params == sum(p.numel() for p in ref.parameters())
    assert _flops(ref, x[:1]) == 2 * layer.macs
    assert _flops(ref, x) == 2 * (2 * (layer.macs - layer.shared_macs) + layer.shared_macs)
    t = (2 * window[0] - 1) * (2 * window[1] - 1)
    n = -(-h // window[0]) * window[0] * -(-w // window[1]) * window[1]  # padded tokens
    shared = t * 512 * (2 + heads) if op.endswith("v2") else 0
    assert layer.macs == 4 * n * c * c + 2 * n * window[0] * window[1] * c + shared
    assert layer.shared_macs == st.shared_macs == shared


@pytest.mark.parametrize("op", sorted(TORCHVISION))
def test_window_attention_in_training_is_torchvision_s(tmp_path, op):
    """Dropout on the weights and the output: the same draws give the same result."""
    mod, _, _ = _build(tmp_path, f"""
        network:
          embed: {{permute: [0, 2, 3, 1]}}
          attn: {{{op}: {{heads: 2, window: 3, shift: 1, attention_dropout: 0.25, dropout: 0.5}}}}
        """, input="[8, 5, 7]")
    ref = _perturbed(TORCHVISION[op](8, [3, 3], [1, 1], 2, attention_dropout=0.25, dropout=0.5)).train()
    ours = mod.build().attn.train()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 5, 7, 8)
    torch.manual_seed(1)
    a = ours(x)
    torch.manual_seed(1)
    assert torch.equal(a, ref(x))


def test_window_attention_without_biases(tmp_path):
    mod, text, st = _build(tmp_path, """
        network:
          embed: {permute: [0, 2, 3, 1]}
          attn: {shifted_window_attention_v2: {heads: 2, window: [4, 4], shift: [2, 2], qkv_bias: false,
                                               proj_bias: false}}
        """, input="[8, 8, 8]")
    assert "ShiftedWindowAttentionV2(8, [4, 4], [2, 2], 2, qkv_bias=False, proj_bias=False)" in text
    ref = _perturbed(ShiftedWindowAttentionV2(8, [4, 4], [2, 2], 2, qkv_bias=False, proj_bias=False))
    ours = mod.build().attn.eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))
    assert st.params == sum(p.numel() for p in ref.parameters())


PATCH_MERGING = """
    blocks:
      PatchMerging:
        body:
          merge: space_to_depth
          norm: layernorm
          reduction: {linear: {out: 2 * in.c, bias: false}}
      PatchMergingV2:
        body:
          merge: space_to_depth
          reduction: {linear: {out: 2 * in.c, bias: false}}
          norm: layernorm
    network:
      embed: {permute: [0, 2, 3, 1]}
      v1: PatchMerging
      v2: PatchMergingV2
    """


def test_patch_merging_is_torchvision_s_on_an_odd_sized_map(tmp_path):
    mod, text, st = _build(tmp_path, PATCH_MERGING, input="[6, 7, 9]")
    _torch_only(text)
    assert text.count("\ndef space_to_depth(x: Tensor) -> Tensor:") == 1
    assert _layer(st, "v1.merge").output == ChannelsLast((4, 5, 24))  # ⌈7/2⌉×⌈9/2⌉×4C
    assert (_layer(st, "v1.merge").params, _layer(st, "v1.merge").macs) == (0, 0)
    assert _layer(st, "v1.reduction").output == (4, 5, 12)
    assert _layer(st, "v2.merge").output == (2, 3, 48)
    model = mod.build().eval()
    ref1 = _perturbed(PatchMerging(6))
    ref2 = _perturbed(PatchMergingV2(12))
    model.v1.load_state_dict(ref1.state_dict(), strict=True)
    model.v2.load_state_dict(ref2.state_dict(), strict=True)
    x = torch.randn(2, 7, 9, 6)
    with torch.no_grad():
        assert torch.equal(model.v1(x), ref1(x))
        assert torch.equal(model.v2(model.v1(x)), ref2(ref1(x)))
    assert _flops(ref1, x[:1]) == 2 * (_layer(st, "v1.reduction").macs)
    assert st.params == sum(p.numel() for p in ref1.parameters()) + sum(p.numel() for p in ref2.parameters())


@pytest.mark.parametrize("network, message, hint", [
    ("a: {shifted_window_attention: {heads: 2, window: 7}}",
     "'shifted_window_attention' needs a channels-last H×W×C map, got the C×H×W map [8, 14, 14]",
     "{permute: [0, 2, 3, 1]}"),
    ("p: {permute: [0, 2, 3, 1]}\n  a: {shifted_window_attention: {heads: 3, window: 7}}",
     "3 heads do not divide the 8 channels", "multiple of heads"),
    ("p: {permute: [0, 2, 3, 1]}\n  a: {shifted_window_attention_v2: {heads: 2, window: 7, shift: 7}}",
     "the height shift 7 is not below the window's height 7", "window // 2"),
    ("p: {permute: [0, 2, 3, 1]}\n  a: {shifted_window_attention_v2: {heads: 2, window: [1, 7]}}",
     "window - 1, which is 0 for a window height of 1", "at least 2"),
    ("p: {permute: [0, 2, 3, 1]}\n  a: {shifted_window_attention: {heads: 0, window: 7}}",
     "heads", None),
    ("a: space_to_depth", "'space_to_depth' needs a channels-last H×W×C map, got the C×H×W map",
     "{permute: [0, 2, 3, 1]}"),
    ("t: to_tokens\n  a: {shifted_window_attention: {heads: 2, window: 7}}",
     "got the T×D token sequence [196, 8]", None),
])
def test_misuse_is_one_located_error(tmp_path, network, message, hint):
    text = _error(tmp_path, f"network:\n  {network}\n", input="[8, 14, 14]")
    assert message in text
    if hint:
        assert hint in text.split("hint:", 1)[1]
    assert "Traceback" not in text


def test_registry_declares_each_op_once_with_its_rules():
    for name in ("shifted_window_attention", "shifted_window_attention_v2", "space_to_depth"):
        op = REGISTRY[name]
        assert op.doc and op.attrs.__doc__
    assert "shared_macs" in REGISTRY["shifted_window_attention_v2"].doc
    op = REGISTRY["space_to_depth"]
    assert op.infer(op.attrs(), [ChannelsLast((7, 9, 6))]) == (4, 5, 24)


def _load(stem: str):
    path = ROOT / "generated" / "torchvision" / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"gen_swin_{stem}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.pop(spec.name, None)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("stem", ["swin_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b"])
def test_generated_builder_has_torchvision_s_shifts_and_depth_rates(stem):
    """Shift [0, 0] on even blocks and window // 2 on odd ones, stochastic depth rising linearly over
    all blocks: every block's attributes are torchvision's (on the meta device: no weights)."""
    with torch.device("meta"):
        ours = _load(stem).build(init_weights=False)
        ref = torchvision.models.get_model(stem, weights=None)
    theirs = {n: m for n, m in ref.named_modules()}
    blocks = 0
    for name, m in ours.named_modules():
        if hasattr(m, "shift_size"):
            t = theirs[name]
            assert (list(m.window_size), list(m.shift_size), m.num_heads) == \
                   (t.window_size, t.shift_size, t.num_heads), name
            blocks += 1
        if name.endswith("stochastic_depth"):
            assert m.p == theirs[name].p and m.mode == theirs[name].mode, name
            assert ours.get_submodule(name + "_mlp").p == m.p
    assert blocks == sum(1 for m in ref.modules() if hasattr(m, "shift_size"))
    text = (ROOT / "generated" / "torchvision" / f"{stem}.py").read_text()
    _torch_only(text)


@pytest.mark.parametrize("stem", ["swin_t", "swin_v2_t"])
def test_init_is_torchvision_s(stem):
    """init: as torchvision's __init__: every nn.Linear trunc_normal(std 0.02) with zero biases (the
    MLP's xavier rule of SwinTransformerBlock is overwritten by SwinTransformer's loop, so its trace
    is gone in both), the bias table trunc_normal(std 0.02), logit_scale log 10, LayerNorms 1 and 0,
    the buffers equal; compared tensor by tensor (values drawn at random: by their statistics)."""
    torch.manual_seed(0)
    ours = _load(stem).build().state_dict()
    theirs = torchvision.models.get_model(stem, weights=None).state_dict()
    assert sorted(ours) == sorted(theirs)  # PatchMerging registers reduction before norm
    for name, t in theirs.items():
        o = ours[name]
        assert o.shape == t.shape and o.dtype == t.dtype, name
        if name.endswith(("relative_position_index", "relative_coords_table")) or t.numel() < 64 \
                or t.std() == 0:
            assert torch.equal(o, t), name  # buffers, constants (zeros, ones, log 10), small tensors
        else:
            assert abs(o.std() / t.std() - 1) < 0.1 and abs(o.mean() - t.mean()) < 0.01, name
            assert o.abs().max() <= 2.0 + 1e-6, name  # trunc_normal's bounds
