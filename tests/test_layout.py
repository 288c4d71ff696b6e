"""Issue #11: channels-last maps. ``permute`` moves the channels of a map last (Swin, ConvNeXt's
block) and back; the shape remembers the layout, so linear and layernorm read the channels of a
channels-last map and an op that needs C×H×W refuses one with a located error. Checked against
torchvision's own ConvNeXt block (strict state_dict, equal outputs)."""

import pytest
import torch
from torchvision.models.convnext import CNBlock as TorchvisionCNBlock

from archspec.ops import ChannelsLast, is_channels_last

from .test_ops_modern import _build, _error, _layer, _torch_only

CNBLOCK = """
    blocks:
      CNBlock:
        params: {layer_scale: 1.0e-6, sd_prob: 0.0}
        body:
          block:
            - {conv: {out: in.c, kernel: 7, padding: 3, groups: in.c}}
            - {permute: [0, 2, 3, 1]}
            - {layernorm: 1.0e-6}
            - {linear: 4 * in.c}
            - gelu
            - {linear: in.c}
            - {permute: [0, 3, 1, 2]}
          layer_scale: {layer_scale: layer_scale}
          stochastic_depth: {stochastic_depth: [sd_prob, row]}
          out: {add: {}, from: [stochastic_depth, input]}
    """


def test_convnext_block_is_torchvision_s(tmp_path):
    mod, text, st = _build(tmp_path, CNBLOCK + """
    network:
      stage: {CNBlock: {sd_prob: 0.1}}
    """, input="[16, 8, 8]")
    _torch_only(text)
    assert text.count("class Permute(nn.Module):") == 1
    assert "            Permute([0, 2, 3, 1]),\n" in text and "            Permute([0, 3, 1, 2]),\n" in text
    assert "nn.LayerNorm(in_channels, eps=1e-06)" in text
    assert "self.layer_scale = nn.Parameter(torch.ones(in_channels, 1, 1) * layer_scale)" in text
    # shapes: channels-last between the permutes, read by linear and layernorm on the last axis
    assert _layer(st, "stage.block.1").output == (8, 8, 16)
    assert _layer(st, "stage.block.3").output == (8, 8, 64)
    assert _layer(st, "stage.block.3").macs == 8 * 8 * 16 * 64
    assert _layer(st, "stage.block.2").params == 2 * 16
    assert st.output == (16, 8, 8)
    torch.manual_seed(0)
    ref = TorchvisionCNBlock(16, 1e-6, 0.1).eval()
    with torch.no_grad():
        ref.layer_scale.normal_()  # 1e-6 would hide the block
        for p in ref.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours = mod.build().stage.eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 16, 8, 8)
    assert torch.allclose(ours(x), ref(x), atol=1e-6, rtol=0)
    assert st.params == sum(p.numel() for p in ref.parameters())


def test_permute_shapes_remember_the_layout():
    from archspec.ops import REGISTRY
    op = REGISTRY["permute"]
    out = op.infer(op.attrs(dims=[0, 2, 3, 1]), [(96, 56, 28)])
    assert out == (56, 28, 96) and is_channels_last(out)
    back = op.infer(op.attrs(dims=[0, 3, 1, 2]), [out])
    assert back == (96, 56, 28) and not is_channels_last(back)
    windows = op.infer(op.attrs(dims=[0, 2, 1, 3]), [ChannelsLast((49, 64, 32))])
    assert windows == (64, 49, 32) and is_channels_last(windows)  # MaxViT's grid swap: C stays last
    lin = REGISTRY["linear"]
    assert is_channels_last(lin.infer(lin.attrs(out=8), [out]))


@pytest.mark.parametrize("body, message", [
    ("a: {permute: [0, 2, 3, 1]}\n  b: {conv: {out: 4, kernel: 1}}",
     "'conv' needs a C×H×W feature map, got the channels-last map [6, 6, 8] (channels last)"),
    ("a: {permute: [0, 2, 3, 1]}\n  b: bn", "'bn' needs a C×H×W feature map, got the channels-last map"),
    ("a: {permute: [0, 2, 3, 1]}\n  b: global_avgpool", "'global_avgpool' needs a C×H×W feature map"),
    ("a: {permute: [0, 2, 3, 1]}\n  b: {concat: {}, from: [a, a]}", "'concat' needs C×H×W feature maps"),
    ("a: {permute: [0, 2, 3, 1]}\n  b: {add: {}, from: [a, input]}",
     "add of a channels-last map (branch 0) and a channels-first one (branch 1)"),
    ("a: {permute: [0, 1, 3, 2]}", "dims [0, 1, 3, 2] on the C×H×W map [8, 6, 6] gives a layout archspec "
                                   "does not track"),
    ("a: {permute: [1, 0, 2, 3]}", "dims [1, 0, 2, 3] moves the batch dimension"),
    ("a: {permute: [0, 2, 3]}", "dims [0, 2, 3] is not a permutation of the 4 dimensions 0…3"),
    ("a: {linear: 4}", "'linear' needs a vector, got the feature map [8, 6, 6]"),
    ("a: {permute: [0, 2, 3, 1]}\n  b: to_tokens", "'to_tokens' needs a C×H×W feature map, got shape "
                                                   "[6, 6, 8] (channels last)"),
])
def test_a_layout_error_is_one_located_line(tmp_path, body, message):
    text = _error(tmp_path, "network:\n  " + body + "\n")
    assert message in text, text


def test_a_hint_says_how_to_get_back(tmp_path):
    text = _error(tmp_path, "network:\n  a: {permute: [0, 2, 3, 1]}\n  b: {conv: {out: 4, kernel: 1}}\n")
    assert "hint: permute it back to channels first before it: {permute: [0, 3, 1, 2]}" in text
    text = _error(tmp_path, "network:\n  a: {layernorm: 1.0e-6}\n")
    assert "{permute: [0, 2, 3, 1]} first for a channels-last map" in text


def test_in_c_of_a_block_reads_the_last_axis_of_a_channels_last_input(tmp_path):
    mod, text, st = _build(tmp_path, """
    blocks:
      Mlp:
        params: {ratio: 4}
        body: [{linear: ratio * in.c}, gelu, {linear: in.c}]
    network:
      to_last: {permute: [0, 2, 3, 1]}
      mlp: Mlp
      norm: {layernorm: 1.0e-5}
      to_first: {permute: [0, 3, 1, 2]}
    """)
    assert "nn.Linear(in_channels, ratio * in_channels)" in text
    assert "self.mlp = Mlp(8)" in text
    assert st.output == (8, 6, 6)
    assert st.params == (8 * 32 + 32) + (32 * 8 + 8) + 16
    model = mod.build().eval()
    x = torch.randn(2, 8, 6, 6)
    h = x.permute(0, 2, 3, 1)
    h = model.mlp(h)
    h = torch.nn.functional.layer_norm(h, (8,), model.norm.weight, model.norm.bias)
    assert torch.equal(model(x), h.permute(0, 3, 1, 2))
