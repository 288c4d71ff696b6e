"""Issue #11: MaxViT (torchvision.models.maxvit). The window partition and departition and the
relative-position attention ops, each checked against torchvision's own module (strict state_dict,
equal outputs, params and MACs = FlopCounterMode / 2); a small MaxViT built from
specs/blocks/torchvision_maxvit.yaml against torchvision's MaxVit of the same configuration; the
stochastic depth rates and init of maxvit_t; located errors for misuse."""

import importlib.util
import math
import shutil

import pytest
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import maxvit as tv_maxvit

from archspec.analysis import analyse
from archspec.ir import lower
from archspec.load import load_networks
from archspec.ops import ChannelsLast, REGISTRY, is_channels_last

from .conftest import ROOT
from .contract import check_spec
from .test_codegen import load_module
from .test_ops_modern import _build, _error, _layer, _torch_only


def _import(path):
    spec = importlib.util.spec_from_file_location(f"archspec_maxvit_{path.parent.parent.name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _macs(module, *args) -> int:
    with FlopCounterMode(display=False) as counter:
        module(*args)
    assert counter.get_total_flops() % 2 == 0
    return counter.get_total_flops() // 2


# ----------------------------------------------------------------- window_partition / departition
def test_partition_and_departition_are_torchvision_s_on_a_map_that_is_not_square(tmp_path):
    mod, text, st = _build(tmp_path, """
    network:
      partition_op: {window_partition: 3}
      departition_op: {window_departition: {size: 3, grid: [2, 3]}}
    """, input="[8, 6, 9]")
    _torch_only(text)
    assert "self.partition_op = WindowPartition()" in text
    assert "x = self.partition_op(x, 3)" in text and "x = self.departition_op(x, 3, 2, 3)" in text
    assert _layer(st, "partition_op").output == (6, 9, 8)          # G = 2·3 windows of P = 3·3 tokens
    assert is_channels_last(_layer(st, "partition_op").output)
    assert st.output == (8, 6, 9) and (st.params, st.macs) == (0, 0)
    model = mod.build().eval()
    assert model.state_dict() == {}
    x = torch.randn(2, 8, 6, 9)
    windows = model.partition_op(x, 3)
    assert torch.equal(windows, tv_maxvit.WindowPartition()(x, 3))
    assert torch.equal(model(x), tv_maxvit.WindowDepartition()(windows, 3, 2, 3))
    assert torch.equal(model(x), x)  # the inverse
    assert _macs(tv_maxvit.WindowPartition(), x[:1], 3) == _macs(model, x[:1]) == 0  # reshapes only


def test_departition_infers_a_square_grid_and_the_window_size():
    op = REGISTRY["window_departition"]
    assert op.infer(op.attrs(), [ChannelsLast((16, 49, 64))]) == (64, 28, 28)
    assert op.infer(op.attrs(size=7, grid=[4, 4]), [ChannelsLast((16, 49, 64))]) == (64, 28, 28)
    assert op.infer(op.attrs(grid=[2, 8]), [ChannelsLast((16, 49, 64))]) == (64, 14, 56)


# ------------------------------------------------------------------ relative_position_attention
def test_relative_position_attention_is_torchvision_s(tmp_path):
    mod, text, st = _build(tmp_path, """
    network:
      partition_op: {window_partition: 3}
      attn: {relative_position_attention: {head_dim: 4, max_seq_len: 9}}
      departition_op: {window_departition: {grid: [2, 3]}}
    """, input="[8, 6, 9]")
    _torch_only(text)
    assert text.count("class RelativePositionalMultiHeadAttention(nn.Module):") == 1
    assert "self.attn = RelativePositionalMultiHeadAttention(8, 4, 9)" in text
    torch.manual_seed(0)
    ref = tv_maxvit.RelativePositionalMultiHeadAttention(8, 4, 9).eval()
    ours = mod.build().attn.eval()
    assert torch.equal(ours.relative_position_index, ref.relative_position_index)  # computed, not loaded
    assert ours.state_dict().keys() == ref.state_dict().keys()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 6, 9, 8)                                      # N×G×P×C
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))
    layer = _layer(st, "attn")
    assert layer.output == (6, 9, 8)
    assert layer.params == sum(p.numel() for p in ref.parameters()) == 4 * 64 + 4 * 8 + 25 * 2
    assert layer.macs == _macs(ref, x[:1]) == 4 * 6 * 9 * 64 + 2 * 6 * 81 * 8
    assert st.macs == layer.macs
    # the whole network: windows, attention, and the map put back
    model = mod.build().eval()
    model.attn.load_state_dict(ref.state_dict())
    y = torch.randn(2, 8, 6, 9)
    with torch.no_grad():
        expect = tv_maxvit.WindowDepartition()(ref(tv_maxvit.WindowPartition()(y, 3)), 3, 2, 3)
        assert torch.equal(model(y), expect)


@pytest.mark.parametrize("feat_dim, head_dim, size", [(64, 32, 7), (32, 32, 4)])
def test_attention_counts_match_torchvision_at_maxvit_sizes(feat_dim, head_dim, size):
    op = REGISTRY["relative_position_attention"]
    ref = tv_maxvit.RelativePositionalMultiHeadAttention(feat_dim, head_dim, size * size)
    x = torch.randn(1, 4, size * size, feat_dim)
    counts = op.count(op.attrs(head_dim=head_dim), [ChannelsLast(tuple(x.shape[1:]))], None)
    assert counts.params == sum(p.numel() for p in ref.parameters())
    assert counts.macs == _macs(ref, x)


# --------------------------------------------------------------------------- a small MaxViT
SMALL = dict(input_size=(64, 64), stem_channels=16, partition_size=2, block_channels=[32, 32, 64, 64],
             block_layers=[1, 2, 1, 1], head_dim=16, stochastic_depth_prob=0.3)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The block library with other sizes, as MaxVit(...) takes them: (generated module, stats)."""
    root = tmp_path_factory.mktemp("small")
    (root / "specs" / "blocks").mkdir(parents=True)
    for lib in ("torchvision_maxvit.yaml", "torchvision_mobilenet.yaml"):
        shutil.copy(ROOT / "specs" / "blocks" / lib, root / "specs" / "blocks" / lib)
    spec = root / "specs" / "small.yaml"
    spec.write_text("extends: blocks/torchvision_maxvit.yaml\nname: small\ninput: [3, 64, 64]\nnum_classes: 10\n"
                    "params: {input_size: 64, stem_channels: 16, partition_size: 2, block_channels: [32, 32, 64, 64],\n"
                    "         block_layers: [1, 2, 1, 1], head_dim: 16, stochastic_depth_prob: 0.3}\n")
    assert check_spec(spec, root / "out").kind == "ok"
    [net] = load_networks(str(spec))
    return _import(root / "out" / "small.py"), analyse(lower(net), net.ref)


def test_a_small_maxvit_is_torchvision_s(small):
    """Strict load of torchvision's state_dict, equal eval outputs with randomised BN statistics and
    biases, params, MACs = FlopCounterMode / 2, the stochastic depth rates."""
    mod, st = small
    torch.manual_seed(0)
    ref = tv_maxvit.MaxVit(num_classes=10, **SMALL).eval()
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.BatchNorm2d)) and m.bias is not None:
                m.bias.normal_(std=0.1)  # zero-initialised: would hide a wrong wiring
    ours = mod.build(init_weights=False).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max().item() <= 1e-5
    assert st.params == sum(p.numel() for p in ref.parameters())
    assert st.macs == _macs(ref, x[:1])
    assert _rates(ours) == _rates(ref) == np.linspace(0, 0.3, 5).tolist()  # one rate per MaxVitLayer


def test_init_is_torchvision_s(small):
    """MaxVit._init_weights: conv and linear weights N(0, 0.02²) with zero biases, BN 1 and 0;
    LayerNorm as PyTorch makes it; the bias tables truncated-normal, std 0.02 (by their module)."""
    mod, _ = small
    torch.manual_seed(0)
    ours = dict(mod.build().named_parameters())
    torch.manual_seed(0)
    ref = dict(tv_maxvit.MaxVit(num_classes=10, **SMALL).named_parameters())
    assert ours.keys() == ref.keys()
    for name, p in ref.items():
        q = ours[name]
        if torch.all(p == p.flatten()[0]):  # a constant: zeros, ones
            assert torch.equal(q, p), name
        else:
            assert not torch.all(q == q.flatten()[0]), name
            if p.numel() >= 256:
                assert abs(q.std().item() - 0.02) < 0.15 * 0.02, name
                assert abs(p.std().item() - 0.02) < 0.15 * 0.02, name
                assert abs(q.mean().item()) < 6 * 0.02 / math.sqrt(q.numel()), name


def _rates(model) -> list[float]:
    """The stochastic depth rate of each MaxVitLayer, from its MBConv (torchvision: nn.Identity at 0)."""
    out = []
    for block in model.blocks:
        for layer in block.layers:
            sd = layer.layers.MBconv.stochastic_depth
            out.append(getattr(sd, "p", 0.0))
    return out


def test_maxvit_t_stochastic_depth_rates_are_torchvision_s():
    mod = load_module(ROOT / "generated" / "torchvision" / "maxvit_t.py")
    with torch.device("meta"):
        ours = mod.build(init_weights=False)
        ref = tv_maxvit.maxvit_t()
    want = np.linspace(0, 0.2, 11).tolist()
    assert _rates(ours) == _rates(ref) == want  # exactly np.linspace's floats
    ref_sd = {n: m.p for n, m in ref.named_modules() if type(m).__name__ == "StochasticDepth"}
    ours_sd = {n: m.p for n, m in ours.named_modules() if type(m).__name__ == "StochasticDepth"}
    # torchvision calls stochastic_dropout on both residual branches; its twin here has the same rate
    twins = {n: p for n, p in ours_sd.items() if n.endswith("stochastic_dropout_1")}
    assert {n[:-2]: p for n, p in twins.items()} == {n: p for n, p in ref_sd.items()
                                                     if n.endswith("stochastic_dropout")}
    assert {n: p for n, p in ours_sd.items() if n not in twins and p} == {n: p for n, p in ref_sd.items() if p}


def test_maxvit_t_reads_like_torchvision_s():
    text = (ROOT / "generated" / "torchvision" / "maxvit_t.py").read_text()
    _torch_only(text)
    for cls in ("MBConv", "PartitionAttentionLayer", "MaxVitLayer", "RelativePositionalMultiHeadAttention",
                "WindowPartition", "WindowDepartition"):
        assert text.count(f"\nclass {cls}(") == 1, cls
    assert "class MBConv2" not in text and "class PartitionAttentionLayer2" not in text
    assert "class MaxVitLayer2" not in text


# ---------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("body, input, message", [
    ("a: {window_partition: 4}", "[8, 6, 8]",
     "windows of 4×4 do not tile the 6×8 map: 4 does not divide the height 6"),
    ("a: {window_partition: 3}", "[8, 6, 8]", "3 does not divide the width 8"),
    ("a: {window_partition: 3}\n  b: {relative_position_attention: {head_dim: 3}}", "[8, 6, 6]",
     "head_dim 3 does not divide the 8 channels (heads = C / head_dim)"),
    ("a: {relative_position_attention: {head_dim: 4}}", "[8, 6, 6]",
     "'relative_position_attention' needs G×P×C windows of tokens (channels last), got the C×H×W map "
     "[8, 6, 6]"),
    ("a: {window_partition: 3}\n  b: {relative_position_attention: {head_dim: 4, max_seq_len: 49}}",
     "[8, 6, 6]", "max_seq_len 49 is not the 9 tokens per window of the input [4, 9, 8]"),
    ("a: {window_partition: 3}\n  b: {window_departition: {}}", "[8, 6, 9]",
     "6 windows do not form a square grid, so the grid cannot be inferred"),
    ("a: {window_partition: 3}\n  b: {window_departition: {grid: [3, 3]}}", "[8, 6, 9]",
     "a grid of 3×3 windows is 9 windows, but the input has 6"),
    ("a: {window_partition: 3}\n  b: {window_departition: {size: 2, grid: [2, 3]}}", "[8, 6, 9]",
     "windows of 2×2 hold 4 tokens, but the input has 9 per window"),
    ("a: {window_departition: {}}", "[8, 6, 6]", "'window_departition' needs G×P×C windows of tokens"),
    ("a: {permute: [0, 2, 3, 1]}\n  b: {window_partition: 3}", "[8, 6, 6]",
     "'window_partition' needs a C×H×W feature map, got the channels-last map [6, 6, 8]"),
])
def test_misuse_is_one_located_error(tmp_path, body, input, message):
    text = _error(tmp_path, "network:\n  " + body + "\n", input=input)
    assert message in text, text


def test_the_errors_give_hints(tmp_path):
    text = _error(tmp_path, "network:\n  a: {relative_position_attention: {head_dim: 4}}\n")
    assert "hint: cut the map into windows first: {window_partition: p}" in text
    text = _error(tmp_path, "network:\n  a: {window_partition: 4}\n")
    assert "hint: the window size must divide H and W" in text
