"""Issue #11: the ops torchvision's modern classifiers need — stochastic_depth, channel_shuffle,
channels (a channel slice), layer_scale and layernorm over: channels — each checked against
torchvision 0.29.1's own computation, with exact values. Every built spec also goes through the
compiler contract (tests/contract.py: build, import, params, output shape and MACs equal to the
static analysis, byte-identical rebuild)."""

import importlib.util
import re
import sys
import textwrap

import pytest
import torch
from torchvision.models.convnext import LayerNorm2d as TorchvisionLayerNorm2d
from torchvision.models.shufflenetv2 import InvertedResidual
from torchvision.models.shufflenetv2 import channel_shuffle as torchvision_channel_shuffle
from torchvision.ops import stochastic_depth as torchvision_stochastic_depth

from archspec.analysis import analyse
from archspec.errors import SpecError
from archspec.ir import lower
from archspec.load import load_networks

from .contract import check_spec

HEAD = """
name: net
input: {input}
num_classes: 10
"""


def _spec(tmp_path, body: str, input: str = "[8, 6, 6]"):
    f = tmp_path / "net.yaml"
    f.write_text(HEAD.format(input=input) + textwrap.dedent(body))
    return f


def _build(tmp_path, body: str, input: str = "[8, 6, 6]"):
    """(the generated module, its text, the static analysis) of a spec that passes the contract."""
    f = _spec(tmp_path, body, input)
    assert check_spec(f, tmp_path / "out").kind == "ok"
    path = tmp_path / "out" / "net.py"
    name = f"archspec_ops_modern_{tmp_path.name}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.pop(name, None)
    spec.loader.exec_module(mod)
    net = load_networks(str(f))[0]
    return mod, path.read_text(), analyse(lower(net), net.ref)


def _error(tmp_path, body: str, input: str = "[8, 6, 6]") -> str:
    f = _spec(tmp_path, body, input)
    with pytest.raises(SpecError) as e:
        for net in load_networks(str(f)):
            lower(net)
    text = e.value.format()
    assert text.count("error:") == 1  # one error, located: file:line:col
    assert re.match(rf"{re.escape(str(f))}:\d+:\d+: error: ", text), text
    return text


def _layer(stats, name: str):
    return next(ls for ls in stats.layers if ls.name == name)


def _torch_only(text: str) -> None:
    imports = [l for l in text.splitlines() if l.startswith(("import ", "from "))]
    assert imports == ["from __future__ import annotations", "import torch", "from torch import Tensor, nn"]


# ------------------------------------------------------------------------------ stochastic_depth
@pytest.mark.parametrize("mode", ["row", "batch"])
def test_stochastic_depth_is_torchvision_s_in_training_and_the_identity_in_eval(tmp_path, mode):
    mod, text, st = _build(tmp_path, f"""
        network:
          sd: {{stochastic_depth: [0.5, {mode}]}}
          sd2: {{stochastic_depth: {{p: 0.25, mode: {mode}}}}}
        """)
    _torch_only(text)
    assert text.count("class StochasticDepth(nn.Module):") == 1  # once, however many layers use it
    assert f"self.sd = StochasticDepth(0.5, '{mode}')" in text
    model = mod.build()
    assert model.state_dict() == {} and list(model.parameters()) == []
    assert (st.params, st.macs, st.output) == (0, 0, (8, 6, 6))
    assert (_layer(st, "sd").params, _layer(st, "sd").macs) == (0, 0)
    x = torch.randn(64, 8, 6, 6)
    model.train()
    torch.manual_seed(0)
    y = model(x)
    torch.manual_seed(0)  # the same draws, in the same order
    ref = torchvision_stochastic_depth(torchvision_stochastic_depth(x, 0.5, mode, True), 0.25, mode, True)
    assert torch.equal(y, ref)
    kept = (y.flatten(1) != 0).any(1)
    if mode == "row":  # some samples dropped, the rest scaled by 1 / (1 - 0.5) / (1 - 0.25)
        assert 0 < int(kept.sum()) < 64
        assert torch.allclose(y[kept], x[kept] / 0.5 / 0.75)
    model.eval()
    assert torch.equal(model(x), x)
    assert repr(model.sd) == f"StochasticDepth(p=0.5, mode={mode})"


def test_stochastic_depth_takes_its_rate_from_a_block_parameter(tmp_path):
    mod, text, st = _build(tmp_path, """
        blocks:
          res:
            params: {sd_prob: 0.0}
            body:
              - add:
                  - [{conv: {out: in.c, kernel: 3, padding: 1}}, {stochastic_depth: sd_prob}]
                  - []
        network:
          b1: {res: {sd_prob: 0.1}}
          b2: {res: {sd_prob: 0.2}}
        """)
    assert text.count("\nclass Res(") == 1
    assert "self.stochastic_depth = StochasticDepth(sd_prob, 'row')" in text
    assert "self.b2 = Res(8, sd_prob=0.2)" in text
    model = mod.build()
    assert (model.b1.stochastic_depth.p, model.b2.stochastic_depth.p) == (0.1, 0.2)
    assert sum(p.numel() for p in model.parameters()) == st.params == 2 * (8 * 8 * 9 + 8)


# ------------------------------------------------------------------------------- channel_shuffle
def test_channel_shuffle_is_torchvision_s(tmp_path):
    mod, text, st = _build(tmp_path, """
        network:
          shuffle: {channel_shuffle: 4}
        """)
    _torch_only(text)
    assert "x = channel_shuffle(x, 4)" in text
    assert "def channel_shuffle(x: Tensor, groups: int) -> Tensor:" in text
    model = mod.build().eval()
    assert model.state_dict() == {}
    x = torch.randn(2, 8, 6, 6)
    y = model(x)
    assert torch.equal(y, torchvision_channel_shuffle(x, 4))
    assert torch.equal(y[0, :, 0, 0], x[0, [0, 2, 4, 6, 1, 3, 5, 7], 0, 0])
    assert (st.params, st.macs, st.output) == (0, 0, (8, 6, 6))


# -------------------------------------------------------------------------------------- channels
def test_channels_is_a_slice_written_as_indexing(tmp_path):
    mod, text, st = _build(tmp_path, """
        network:
          head: {channels: [0, 4], from: input}
          middle: {channels: [2, 6], from: input}
          tail: {channels: [5, 8], from: input}
          cat: {concat: {}, from: [head, middle, tail]}
        """)
    assert "out = x[:, :4]" in text and "middle = x[:, 2:6]" in text and "x = x[:, 5:]" in text
    model = mod.build().eval()
    assert model.state_dict() == {}
    x = torch.randn(2, 8, 6, 6)
    assert torch.equal(model(x), torch.cat([x[:, :4], x[:, 2:6], x[:, 5:]], 1))
    assert [_layer(st, n).output for n in ("head", "middle", "tail")] == [(4, 6, 6), (4, 6, 6), (3, 6, 6)]
    assert (st.params, st.macs, st.output) == (0, 0, (11, 6, 6))


SHUFFLE_UNIT = """
    blocks:
      InvertedResidual:               # torchvision's ShuffleNetV2 unit, stride 1
        body:
          - concat:
              - {channels: [0, "in.c // 2"]}                       # x1, x2 = x.chunk(2, dim=1)
              - split: {channels: ["in.c // 2", "in.c"]}
                branch2:
                  - {conv: {out: "in.c // 2", kernel: 1, bias: false}}
                  - bn
                  - relu
                  - {conv: {out: "in.c // 2", kernel: 3, padding: 1, groups: "in.c // 2", bias: false}}
                  - bn
                  - {conv: {out: "in.c // 2", kernel: 1, bias: false}}
                  - bn
                  - relu
          - {channel_shuffle: 2}
    network:
      u1: InvertedResidual
      widen: {conv: {out: 16, kernel: 1}}
      u2: InvertedResidual
    """


def test_a_shufflenetv2_unit_loads_torchvision_s_weights_and_gives_its_outputs(tmp_path):
    mod, text, st = _build(tmp_path, SHUFFLE_UNIT)
    _torch_only(text)
    assert text.count("\nclass InvertedResidual(nn.Module):") == 1  # one class for 8 and 16 channels
    assert "out = x[:, : self.in_channels // 2]" in text
    assert "x = x[:, self.in_channels // 2 :]" in text
    assert "out = channel_shuffle(out, 2)" in text
    model = mod.build().eval()
    torch.manual_seed(0)
    for ours, channels in ((model.u1, 8), (model.u2, 16)):
        ref = InvertedResidual(channels, channels, 1).eval()
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # not the identity statistics
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.data.uniform_(0.5, 2)
                m.bias.data.uniform_(-1, 1)
        assert ours.state_dict().keys() == ref.state_dict().keys()
        ours.load_state_dict(ref.state_dict(), strict=True)
        x = torch.randn(2, channels, 6, 6)
        with torch.no_grad():
            assert torch.equal(ours(x), ref(x))
    n_ref = sum(p.numel() for c in (8, 16) for p in InvertedResidual(c, c, 1).parameters())
    assert st.params == n_ref + 8 * 16 + 16


# ----------------------------------------------------------------------------------- layer_scale
def test_layer_scale_on_a_map_is_a_c_by_1_by_1_parameter(tmp_path):
    mod, text, st = _build(tmp_path, """
        network:
          ls: {layer_scale: 0.5}
        """)
    assert "self.ls = nn.Parameter(torch.ones(8, 1, 1) * 0.5)" in text
    assert "x = self.ls * x" in text
    model = mod.build().eval()
    assert list(model.state_dict()) == ["ls"]
    assert torch.equal(model.ls.data, torch.ones(8, 1, 1) * 0.5)  # ConvNeXt's torch.ones(dim, 1, 1) * layer_scale
    assert (_layer(st, "ls").params, st.params, st.macs) == (8, 8, 0)
    with torch.no_grad():
        model.ls.copy_(torch.arange(8.0).view(8, 1, 1))
        x = torch.randn(2, 8, 6, 6)
        assert torch.equal(model(x), torch.arange(8.0).view(1, 8, 1, 1) * x)


def test_layer_scale_on_tokens_is_a_d_vector_and_reads_a_block_parameter(tmp_path):
    mod, text, st = _build(tmp_path, """
        blocks:
          scaled:
            params: {scale: 1.0e-6}
            body: [{linear: in.d}, {layer_scale: scale}]
        network:
          patch: {conv: {out: 12, kernel: 2, stride: 2}}
          tokens: to_tokens
          b: {scaled: {scale: 0.1}}
        """)
    assert "self.layer_scale = nn.Parameter(torch.ones(in_channels) * scale)" in text
    model = mod.build().eval()
    assert torch.equal(model.b.layer_scale.data, torch.ones(12) * 0.1)
    assert _layer(st, "b.layer_scale").params == 12
    assert st.params == sum(p.numel() for p in model.parameters()) == 8 * 12 * 4 + 12 + 12 * 12 + 12 + 12
    assert st.output == (9, 12)


# ------------------------------------------------------------------------ layernorm over channels
def test_layernorm_over_channels_is_torchvision_s_layernorm2d(tmp_path):
    mod, text, st = _build(tmp_path, """
        network:
          norm: {layernorm: {over: channels, eps: 1.0e-6}}
          norm2: {layernorm: {over: channels, affine: false}}
        """)
    _torch_only(text)
    assert text.count("class LayerNorm2d(nn.LayerNorm):") == 1
    assert "self.norm = LayerNorm2d(8, eps=1e-06)" in text
    assert "self.norm2 = LayerNorm2d(8, elementwise_affine=False)" in text
    model = mod.build().eval()
    ref = TorchvisionLayerNorm2d(8, eps=1e-6)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 2)
        ref.bias.uniform_(-1, 1)
    assert model.norm.state_dict().keys() == ref.state_dict().keys() == {"weight", "bias"}
    model.norm.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        assert torch.equal(model.norm(x), ref(x))
        assert torch.equal(model(x), TorchvisionLayerNorm2d(8, elementwise_affine=False)(ref(x)))
    assert (_layer(st, "norm").params, _layer(st, "norm2").params, st.params, st.macs) == (16, 0, 16, 0)


def test_layernorm_on_tokens_is_unchanged_and_over_channels_there_is_the_same(tmp_path):
    _, text, st = _build(tmp_path, """
        network:
          patch: {conv: {out: 12, kernel: 2, stride: 2}}
          tokens: to_tokens
          ln: layernorm
          ln2: {layernorm: {over: channels}}
        """)
    assert "self.ln = nn.LayerNorm(12)" in text and "self.ln2 = nn.LayerNorm(12)" in text
    assert "LayerNorm2d" not in text
    assert (_layer(st, "ln").params, _layer(st, "ln2").params) == (24, 24)


# ------------------------------------------------------------------------------- helper names
def test_helpers_yield_to_the_names_a_spec_binds(tmp_path):
    """A block whose class is LayerNorm2d, a block parameter named channel_shuffle."""
    mod, text, _ = _build(tmp_path, """
        blocks:
          LayerNorm2d:
            body: [bn]
          shuffled:
            params: {channel_shuffle: 2}
            body: [{channel_shuffle: channel_shuffle}]
        network:
          a: LayerNorm2d
          norm: {layernorm: {over: channels}}
          s: shuffled
          channel_shuffle: {channel_shuffle: 2}
          cat: {concat: {}, from: [input, s, channel_shuffle]}
        """)
    assert text.count("class LayerNorm2d(") == 1 and text.count("class LayerNorm2d2(") == 1
    assert "self.a = LayerNorm2d(8)" in text
    assert "class LayerNorm2d2(nn.LayerNorm):" in text and "self.norm = LayerNorm2d2(8)" in text
    assert "def channel_shuffle2(x: Tensor, groups: int) -> Tensor:" in text
    assert "(torchvision.models.shufflenetv2.channel_shuffle)" in text  # a reference, not a definition
    assert "self.channel_shuffle = channel_shuffle" in text  # the parameter, kept for forward
    assert "x = channel_shuffle2(x, self.channel_shuffle)" in text
    model = mod.build().eval()
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        shuffled = torchvision_channel_shuffle(model.norm(model.a(x)), 2)
        again = torchvision_channel_shuffle(shuffled, 2)
        assert torch.equal(model(x), torch.cat([x, shuffled, again], 1))


def test_a_block_class_keeps_its_name_when_the_helper_is_used_before_it(tmp_path):
    mod, text, _ = _build(tmp_path, """
        blocks:
          A:
            body: [{layernorm: {over: channels}}]
          LayerNorm2d:
            body: [bn]
        network:
          a: A
          b: LayerNorm2d
        """)
    assert "class LayerNorm2d2(nn.LayerNorm):" in text and "self.layernorm = LayerNorm2d2(in_channels)" in text
    assert "class LayerNorm2d(nn.Module):" in text and "self.b = LayerNorm2d(8)" in text
    model = mod.build()
    assert list(model.state_dict()) == ["a.layernorm.weight", "a.layernorm.bias", "b.bn.weight", "b.bn.bias",
                                        "b.bn.running_mean", "b.bn.running_var", "b.bn.num_batches_tracked"]


def test_a_layer_named_like_a_helper_function_gets_another_variable(tmp_path):
    mod, text, _ = _build(tmp_path, """
        network:
          a: relu
          channel_shuffle: {channel_shuffle: 2}
          cat: {concat: {}, from: [input, a, channel_shuffle]}
        """)
    assert "channel_shuffle_1 = channel_shuffle(out, 2)" in text
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        assert torch.equal(mod.build()(x), torch.cat([x, x.relu(), torchvision_channel_shuffle(x.relu(), 2)], 1))


def test_a_file_without_the_new_ops_has_no_helpers(tmp_path):
    _, text, _ = _build(tmp_path, """
        network:
          c: {conv: {out: 8, kernel: 1}}
        """)
    assert "StochasticDepth" not in text and "channel_shuffle" not in text and "LayerNorm2d" not in text


# ------------------------------------------------------------------------------------- errors
def test_channel_shuffle_errors(tmp_path):
    msg = _error(tmp_path, """
        network:
          s: {channel_shuffle: {groups: 3}}
        """)
    assert msg.startswith(f"{tmp_path / 'net.yaml'}:7:33: error: network.s.channel_shuffle.groups: "
                          f"groups=3 does not divide the 8 input channels")
    assert "hint: the shuffle reads the channels as groups × (C/groups): choose groups that divide C" in msg
    msg = _error(tmp_path, """
        network:
          f: flatten
          s: {channel_shuffle: 2}
        """)
    assert "error: network.s.channel_shuffle: 'channel_shuffle' needs a C×H×W feature map, got shape [288]" in msg
    assert "hint: flatten only before the fully-connected layers" in msg


def test_channels_errors(tmp_path):
    msg = _error(tmp_path, """
        network:
          c: {channels: [4, 9]}
        """)
    assert msg.startswith(f"{tmp_path / 'net.yaml'}:7:21: error: network.c.channels.stop: "
                          f"channels [4, 9) run past the 8 input channels")
    assert "hint: stop is at most C = 8 (in.c in a block: [in.c // 2, in.c] is the second half)" in msg
    msg = _error(tmp_path, """
        network:
          c: {channels: {start: 4, stop: 4}}
        """)
    assert "error: network.c.channels.start: channels [4, 4) is empty: start must be below stop" in msg
    assert "hint: write [start, stop), e.g. [0, in.c // 2] for the first half" in msg
    msg = _error(tmp_path, """
        network:
          p: {conv: {out: 8, kernel: 2, stride: 2}}
          t: to_tokens
          c: {channels: [0, 4]}
        """)
    assert "error: network.c.channels: 'channels' needs a C×H×W feature map or a vector, got shape [9, 8]" in msg
    assert "hint: on a T×D token sequence the channels are the last axis" in msg
    msg = _error(tmp_path, """
        network:
          c: {channels: [-1, 4]}
        """)
    assert "error: network.c.channels.start: input should be greater than or equal to 0, got -1" in msg


def test_layernorm_on_a_map_without_over_names_the_explicit_form(tmp_path):
    msg = _error(tmp_path, """
        network:
          ln: {layernorm: {eps: 1.0e-6}}
        """)
    assert msg.startswith(f"{tmp_path / 'net.yaml'}:7:8: error: network.ln.layernorm: 'layernorm' "
                          f"normalises the last dimension of a T×D token sequence or a vector")
    assert "{layernorm: {over: channels}} for the C channels of each position of the map" in msg
    msg = _error(tmp_path, """
        network:
          ln: {layernorm: {over: channel}}
        """)
    assert "error: network.ln.layernorm.over: input should be 'last' or 'channels', got 'channel'" in msg


def test_stochastic_depth_and_layer_scale_errors(tmp_path):
    msg = _error(tmp_path, """
        network:
          sd: {stochastic_depth: {p: 1.5}}
        """)
    assert "error: network.sd.stochastic_depth.p: " in msg and "1" in msg
    msg = _error(tmp_path, """
        network:
          sd: {stochastic_depth: [0.2, rows]}
        """)
    assert msg.startswith(f"{tmp_path / 'net.yaml'}:7:32: error: network.sd.stochastic_depth.mode: "
                          f"input should be 'row' or 'batch', got 'rows'")
    msg = _error(tmp_path, """
        network:
          sd: stochastic_depth
        """)
    assert "error: network.sd.stochastic_depth" in msg and "'p'" in msg
    msg = _error(tmp_path, """
        network:
          ls: {layer_scale: .nan}
        """)
    assert "error: network.ls.layer_scale: .nan is not a finite number" in msg
