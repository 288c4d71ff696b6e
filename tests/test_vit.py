"""Vision Transformer: the token-sequence ops (shapes, exact counts), repeat names:, parameter
tensors and attention in generated code, ViT's Table 1, and the errors these features add.

torchvision's own vit_b_16 (strict state_dict, equal outputs, params and FlopCounterMode MACs) is
covered by the automatic tests of specs/torchvision/; this file adds what those do not check.
"""

from __future__ import annotations

import importlib.util
import json
import textwrap

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

from archspec.analysis import compile_spec
from archspec.cli.main import app
from archspec.codegen.writer import output_path
from archspec.load import load_networks

from . import test_codegen
from .conftest import ROOT
from .test_errors import HEAD, check_spec, run_cli, write

T, D, MLP, L = 197, 768, 3072, 12  # ViT-B/16 at 224×224: 14·14 patches + the class token


def _layers(stats, op):
    return [l for l in stats.layers if l.op == op]


def test_vit_b_16_shapes_and_counts_per_layer():
    [(net, graph, st)] = compile_spec("specs/torchvision/vit_b_16.yaml")
    shape = {l.name: l.output for l in st.layers}
    assert shape["conv_proj"] == (D, 14, 14)
    assert shape["tokens"] == (196, D)
    assert shape["class_token"] == (T, D)
    assert shape["encoder.pos_embedding"] == (T, D)
    assert shape["encoder.layers.encoder_layer_11.self_attention"] == (T, D)
    assert shape["encoder.layers.encoder_layer_0.mlp.0"] == (T, MLP)
    assert shape["class_out"] == (D,)
    assert shape["heads.head"] == (1000,)
    [cls] = _layers(st, "class_token")
    [pos] = _layers(st, "pos_embedding")
    assert (cls.params, pos.params, cls.macs, pos.macs) == (D, T * D, 0, 0)
    msa = _layers(st, "self_attention")
    assert len(msa) == L
    # Q, K, V and output projections with biases; QKV 3·T·D², scores T²·D, weighted sum T²·D, out T·D²
    assert {(m.params, m.weights, m.macs) for m in msa} == {
        (4 * D * D + 4 * D, 4 * D * D, 3 * T * D * D + 2 * T * T * D + T * D * D)}
    lns = _layers(st, "layernorm")
    assert len(lns) == 2 * L + 1 and {l.params for l in lns} == {2 * D}
    assert st.params == 86_567_656
    conv = D * 196 * 3 * 16 * 16
    mlp = 2 * T * D * MLP
    assert st.macs == conv + L * (msa[0].macs + mlp) + D * 1000


def test_vit_attention_counts_equal_torch_on_one_layer(tmp_path):
    """One nn.MultiheadAttention at another T and D: the registry's formula, not ViT-B's numbers."""
    d, heads = 64, 4
    t = 8 * 8 + 1  # 32×32 input, 4×4 patches, the class token
    file = write(tmp_path, HEAD + f"network:\n  p: {{conv: {{out: {d}, kernel: 4, stride: 4}}}}\n"
                                  f"  t: to_tokens\n  c: class_token\n  a: {{self_attention: {heads}}}\n")
    [(net, graph, st)] = compile_spec(file)
    [a] = _layers(st, "self_attention")
    assert a.output == (t, d)
    with torch.device("meta"):
        m = torch.nn.MultiheadAttention(d, heads, batch_first=True)
    x = torch.empty(1, t, d, device="meta")
    with FlopCounterMode(display=False) as counter:
        m(x, x, x, need_weights=False)
    assert a.params == sum(p.numel() for p in m.parameters()) == 4 * d * d + 4 * d
    assert a.macs == counter.get_total_flops() // 2 == 3 * t * d * d + 2 * t * t * d + t * d * d


def test_vit_table_1():
    """Dosovitskiy et al. 2021, Table 1: layers, D, MLP size, heads; params at 224×224, 1000 classes."""
    rows = {}
    for net, graph, st in compile_spec("specs/vit.yaml"):
        msa = _layers(st, "self_attention")
        rows[net.name] = (len(msa), msa[0].output[1], _layers(st, "linear")[0].output[1],
                          graph.node(msa[0].name).attrs.heads, st.params)
    assert rows == {"vit_b_16": (12, 768, 3072, 12, 86_567_656),
                    "vit_l_16": (24, 1024, 4096, 16, 304_326_632),
                    "vit_l_32": (24, 1024, 4096, 16, 306_535_400),
                    "vit_h_14": (32, 1280, 5120, 16, 632_045_800)}
    # the paper's file and torchvision's builder are the same network under different names
    [(_, _, tv)] = compile_spec("specs/torchvision/vit_b_16.yaml")
    [(_, _, paper)] = compile_spec("specs/vit_b_16.yaml")
    assert (paper.params, paper.macs, paper.output) == (tv.params, tv.macs, tv.output)


def test_check_lists_table_1_errata():
    r = CliRunner().invoke(app, ["check", "specs/vit.yaml", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {(x["spec"], x["metric"]): x["status"] for x in json.loads(r.stdout)}
    assert rows == {("specs/vit.yaml:ViT-B/16", "params"): "variant",  # no head: 85.80M (#12)
                    ("specs/vit.yaml:ViT-L/16", "params"): "erratum",
                    ("specs/vit.yaml:ViT-L/32", "params"): "pass",
                    ("specs/vit.yaml:ViT-H/14", "params"): "pass"}


def test_paper_vit_b_16_module_agrees_with_ir():
    """The zoo test keeps one network per name (torchvision's vit_b_16); check the paper's too."""
    [column] = [n for n in load_networks("specs/vit.yaml") if n.name == "vit_b_16"]
    [single] = load_networks("specs/vit_b_16.yaml")
    for net, in_table in ((column, True), (single, False)):
        path = output_path(net.file, test_codegen.GENERATED, net.name, in_table)
        test_codegen.test_generated_agrees_with_ir(net, path)


def test_generated_vit_reads_like_torchvision():
    text = (test_codegen.GENERATED / "torchvision" / "vit_b_16.py").read_text()
    assert 'OrderedDict((f"encoder_layer_{i}", EncoderBlock(768, 12, 3072)) for i in range(12)),' in text
    assert "self.class_token = nn.Parameter(torch.zeros(1, 1, 768))" in text
    assert "self.pos_embedding = nn.Parameter(torch.empty(1, 197, 768).normal_(std=0.02))" in text
    assert "out = self.self_attention(out, out, out, need_weights=False)[0]" in text
    assert "x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)" in text
    assert "self.heads = Heads(num_classes)" in text
    imports = [l for l in text.splitlines() if l.startswith(("import ", "from "))]
    assert imports == ["from __future__ import annotations", "from collections import OrderedDict",
                       "import torch", "from torch import Tensor, nn"]


# ------------------------------------------------------------------------------------- names:
NAMED = HEAD + textwrap.dedent("""\
    num_classes: 4
    network:
      stem: {conv: {out: 8, kernel: 3, padding: 1}}
      stage: {conv: {out: "8 * (i + 1)", kernel: 3, padding: 1}, repeat: 3, names: "conv{i + 1}"}
      same: {conv: {out: 24, kernel: 1}, repeat: 4, names: "unit_{i}"}
      pool: global_avgpool
      flat: flatten
      fc: {linear: num_classes}
    """)


def test_repeat_names_name_the_repetitions(tmp_path):
    file = write(tmp_path, NAMED)
    [(net, graph, st)] = compile_spec(file)
    names = [l.name for l in st.layers if l.op == "conv"]
    assert names == ["stem", "stage.conv1", "stage.conv2", "stage.conv3",
                     "same.unit_0", "same.unit_1", "same.unit_2", "same.unit_3"]
    r = run_cli("build", file, "-o", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    text = (tmp_path / "out" / "t.py").read_text()  # named after the network (t), README: <name>.py
    assert '("conv1", nn.Conv2d(8, 8, kernel_size=3, padding=1)),' in text  # different ctors: one a line
    assert 'OrderedDict((f"unit_{i}", nn.Conv2d(24, 24, kernel_size=1)) for i in range(4)),' in text
    spec = importlib.util.spec_from_file_location("named_repeat", tmp_path / "out" / "t.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.build()
    keys = [k for k in model.state_dict() if k.endswith(".weight")]
    assert keys == ["stem.weight", "stage.conv1.weight", "stage.conv2.weight", "stage.conv3.weight",
                    "same.unit_0.weight", "same.unit_1.weight", "same.unit_2.weight", "same.unit_3.weight",
                    "fc.weight"]
    assert tuple(model(torch.randn(1, 3, 32, 32)).shape) == (1, 4)


# -------------------------------------------------------------------------------------- errors
TOKENS = "network:\n  patch: {conv: {out: 48, kernel: 8, stride: 8}}\n  tokens: to_tokens\n"


@pytest.mark.parametrize("layer, line, col, path, message, hint", [
    ("  msa: {self_attention: {heads: 5}}\n", 6, 33, "network.msa.self_attention.heads",
     "5 heads do not divide the token width D=48", "multiple of heads"),
    ("  out: {token: 16}\n", 6, 16, "network.out.token.index",
     "token 16 is out of range: the sequence has 16 tokens", None),
    ("  again: to_tokens\n", 6, 10, "network.again",
     "'to_tokens' needs a C×H×W feature map, got shape [16, 48]", None),
])
def test_token_op_errors(tmp_path, layer, line, col, path, message, hint):
    check_spec(tmp_path, HEAD + TOKENS + layer, line, col, message, path, hint)


def test_class_token_on_a_feature_map(tmp_path):
    spec = HEAD + "network:\n  - {conv: {out: 48, kernel: 8, stride: 8}}\n  - class_token\n"
    check_spec(tmp_path, spec, 5, 5, "'class_token' needs a T×D token sequence, got shape [48, 4, 4]",
               "network[1].class_token", "to_tokens")


@pytest.mark.parametrize("names, message, hint", [
    ('"{i} conv"', "names: gives '0 conv' for i = 0, which cannot name a module", "letters, digits, _ and -"),
    ("conv", "names: gives 'conv' twice (i = 0 and i = 1)", "use i in the pattern"),
    ('"c{i % 1}"', "names: gives 'c0' twice (i = 0 and i = 1)", "use i in the pattern"),
])
def test_bad_repeat_names(tmp_path, names, message, hint):
    spec = HEAD + f"network:\n  stage: {{conv: {{out: 8, kernel: 3, padding: 1}}, repeat: 2, names: {names}}}\n"
    check_spec(tmp_path, spec, 4, 68, message, "network.stage.names", hint)


def test_names_without_repeat(tmp_path):
    spec = HEAD + 'network:\n  - {conv: {out: 8, kernel: 3}, names: "c{i}"}\n'
    check_spec(tmp_path, spec, 4, 33, "names: goes with repeat: (it names each repetition)", "network[0]")


def test_attention_in_a_numbered_sequence_cannot_be_generated(tmp_path):
    """A valid network that nn.Sequential cannot hold: validate renders the code, so it says so."""
    spec = HEAD + "network:\n  body: [{conv: {out: 48, kernel: 8, stride: 8}}, to_tokens, {self_attention: 4}]\n"
    check_spec(tmp_path, spec, 4, 63, "'self_attention' cannot sit in a numbered sequence", "network.body[2]",
               "give the sequence's layers names")


def test_a_column_named_with_a_slash_is_addressable():
    """ViT's names carry the patch size after a slash: FILE:ViT-L/16 picks that column."""
    r = CliRunner().invoke(app, ["stats", "specs/vit.yaml:ViT-L/16", "--format", "json"])
    assert r.exit_code == 0, r.output
    [row] = json.loads(r.stdout)
    assert (row["name"], row["params"], row["macs"]) == ("vit_l_16", 304_326_632, 61_554_712_576)


def test_generated_vit_initialises_like_torchvision():
    """init: in specs/blocks/torchvision_vit.yaml follows VisionTransformer.__init__."""
    mod = test_codegen.load_module(test_codegen.GENERATED / "torchvision" / "vit_b_16.py")
    torch.manual_seed(0)
    m = mod.build()
    assert not m.heads.head.weight.any() and not m.heads.head.bias.any()
    assert not m.class_token.any() and not m.conv_proj.bias.any()
    assert abs(m.conv_proj.weight.std().item() - (1 / D) ** 0.5) < 0.0005  # trunc_normal, cut at ±2
    assert abs(m.encoder.pos_embedding.std().item() - 0.02) < 0.0005
    mlp = m.encoder.layers.encoder_layer_3.mlp
    assert abs(mlp[0].weight.std().item() - (2 / (D + MLP)) ** 0.5) < 0.0005  # xavier uniform
    assert 0 < mlp[0].bias.abs().max().item() < 1e-5


def test_init_cannot_name_a_parameter_tensor(tmp_path):
    spec = HEAD + textwrap.dedent("""\
        init:
          layers: {cls: {weight: 0}}
        network:
          p: {conv: {out: 16, kernel: 8, stride: 8}}
          t: to_tokens
          cls: class_token
        """)
    check_spec(tmp_path, spec, 4, 12, "init names the layer 'cls', which has no weights", "init.layers.cls")
