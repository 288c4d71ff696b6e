"""The paper-table specs of the torchvision families (issue #11, item 4): every `archspec check` row
of specs/mobilenet_v2.yaml, mobilenet_v3.yaml, mnasnet.yaml, shufflenet_v2.yaml, squeezenet.yaml,
regnet.yaml, efficientnet_v2.yaml and vit.yaml (ViT-L/32 added) is the one expected: its status
(pass, erratum, variant) and archspec's count, exactly. Each column is the network of its torchvision
builder (specs/torchvision/<name>.yaml), count for count, and the counts the errata and variants
give for the papers' readings are recomputed here."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archspec.analysis import compile_spec
from archspec.cli.main import app

runner = CliRunner()

# file -> {(column, metric): (status, archspec's value)}; a value is an exact count or a shape
EXPECTED = {
    "specs/mobilenet_v2.yaml": {
        ('MobileNetV2', 'output'): ('pass', [1000]),
        ('MobileNetV2', 'params'): ('erratum', 3_504_872),
        ('MobileNetV2', 'macs'): ('pass', 300_774_272),
        ('MobileNetV2 (1.4)', 'output'): ('pass', [1000]),
        ('MobileNetV2 (1.4)', 'params'): ('erratum', 6_108_776),
        ('MobileNetV2 (1.4)', 'macs'): ('erratum', 582_195_824),
    },
    "specs/mobilenet_v3.yaml": {
        ('V3-Large 1.0', 'output'): ('pass', [1000]),
        ('V3-Large 1.0', 'params'): ('erratum', 5_483_032),
        ('V3-Large 1.0', 'macs'): ('erratum', 216_589_760),
        ('V3-Small 1.0', 'output'): ('pass', [1000]),
        ('V3-Small 1.0', 'params'): ('pass', 2_542_856),
        ('V3-Small 1.0', 'macs'): ('erratum', 56_510_400),
    },
    "specs/mnasnet.yaml": {
        ('mnasnet0_5', 'output'): ('pass', [1000]),
        ('mnasnet0_75', 'output'): ('pass', [1000]),
        ('mnasnet1_0', 'output'): ('pass', [1000]),
        ('mnasnet1_3', 'output'): ('pass', [1000]),
    },
    "specs/shufflenet_v2.yaml": {
        ('0.5x', 'params'): ('pass', 1_366_792),
        ('0.5x', 'macs'): ('erratum', 40_476_448),
        ('0.5x', 'conv1.output'): ('pass', [24, 112, 112]),
        ('0.5x', 'maxpool.output'): ('pass', [24, 56, 56]),
        ('0.5x', 'stage2.output'): ('pass', [48, 28, 28]),
        ('0.5x', 'stage3.output'): ('pass', [96, 14, 14]),
        ('0.5x', 'stage4.output'): ('pass', [192, 7, 7]),
        ('0.5x', 'conv5.output'): ('pass', [1024, 7, 7]),
        ('1x', 'params'): ('pass', 2_278_604),
        ('1x', 'macs'): ('variant', 144_907_992),
        ('1x', 'conv1.output'): ('pass', [24, 112, 112]),
        ('1x', 'maxpool.output'): ('pass', [24, 56, 56]),
        ('1x', 'stage2.output'): ('pass', [116, 28, 28]),
        ('1x', 'stage3.output'): ('pass', [232, 14, 14]),
        ('1x', 'stage4.output'): ('pass', [464, 7, 7]),
        ('1x', 'conv5.output'): ('pass', [1024, 7, 7]),
        ('1.5x', 'params'): ('pass', 3_503_624),
        ('1.5x', 'macs'): ('variant', 295_759_392),
        ('1.5x', 'conv1.output'): ('pass', [24, 112, 112]),
        ('1.5x', 'maxpool.output'): ('pass', [24, 56, 56]),
        ('1.5x', 'stage2.output'): ('pass', [176, 28, 28]),
        ('1.5x', 'stage3.output'): ('pass', [352, 14, 14]),
        ('1.5x', 'stage4.output'): ('pass', [704, 7, 7]),
        ('1.5x', 'conv5.output'): ('pass', [1024, 7, 7]),
        ('2x', 'params'): ('pass', 7_393_996),
        ('2x', 'macs'): ('variant', 583_253_464),
        ('2x', 'conv1.output'): ('pass', [24, 112, 112]),
        ('2x', 'maxpool.output'): ('pass', [24, 56, 56]),
        ('2x', 'stage2.output'): ('pass', [244, 28, 28]),
        ('2x', 'stage3.output'): ('pass', [488, 14, 14]),
        ('2x', 'stage4.output'): ('pass', [976, 7, 7]),
        ('2x', 'conv5.output'): ('pass', [2048, 7, 7]),
    },
    "specs/squeezenet.yaml": {
        ('squeezenet1_0', 'output'): ('pass', [1000]),
        ('squeezenet1_0', 'params'): ('pass', 1_248_424),
        ('squeezenet1_0', 'features.3.params'): ('pass', 11_920),
        ('squeezenet1_1', 'output'): ('pass', [1000]),
    },
    "specs/regnet.yaml": {
        ('RegNetX-400MF', 'output'): ('pass', [1000]),
        ('RegNetX-400MF', 'macs'): ('pass', 413_812_608),
        ('RegNetX-400MF', 'params'): ('variant', 5_495_976),
        ('RegNetX-800MF', 'output'): ('pass', [1000]),
        ('RegNetX-800MF', 'macs'): ('pass', 799_699_712),
        ('RegNetX-800MF', 'params'): ('pass', 7_259_656),
        ('RegNetX-1.6GF', 'output'): ('pass', [1000]),
        ('RegNetX-1.6GF', 'macs'): ('pass', 1_602_849_792),
        ('RegNetX-1.6GF', 'params'): ('pass', 9_190_136),
        ('RegNetX-3.2GF', 'output'): ('pass', [1000]),
        ('RegNetX-3.2GF', 'macs'): ('pass', 3_176_621_952),
        ('RegNetX-3.2GF', 'params'): ('pass', 15_296_552),
        ('RegNetX-8.0GF', 'output'): ('pass', [1000]),
        ('RegNetX-8.0GF', 'macs'): ('pass', 7_995_132_416),
        ('RegNetX-8.0GF', 'params'): ('pass', 39_572_648),
        ('RegNetX-16GF', 'output'): ('pass', [1000]),
        ('RegNetX-16GF', 'macs'): ('pass', 15_940_755_456),
        ('RegNetX-16GF', 'params'): ('pass', 54_278_536),
        ('RegNetX-32GF', 'output'): ('pass', [1000]),
        ('RegNetX-32GF', 'macs'): ('pass', 31_735_929_792),
        ('RegNetX-32GF', 'params'): ('pass', 107_811_560),
        ('RegNetY-400MF', 'output'): ('pass', [1000]),
        ('RegNetY-400MF', 'macs'): ('pass', 401_842_848),
        ('RegNetY-400MF', 'params'): ('pass', 4_344_144),
        ('RegNetY-800MF', 'output'): ('pass', [1000]),
        ('RegNetY-800MF', 'macs'): ('pass', 833_856_256),
        ('RegNetY-800MF', 'params'): ('variant', 6_432_512),
        ('RegNetY-1.6GF', 'output'): ('pass', [1000]),
        ('RegNetY-1.6GF', 'macs'): ('pass', 1_612_076_160),
        ('RegNetY-1.6GF', 'params'): ('pass', 11_202_430),
        ('RegNetY-3.2GF', 'output'): ('pass', [1000]),
        ('RegNetY-3.2GF', 'macs'): ('pass', 3_176_482_752),
        ('RegNetY-3.2GF', 'params'): ('pass', 19_436_338),
        ('RegNetY-8.0GF', 'output'): ('pass', [1000]),
        ('RegNetY-8.0GF', 'params'): ('variant', 39_381_472),
        ('RegNetY-8.0GF', 'macs'): ('variant', 8_473_070_592),
        ('RegNetY-16GF', 'output'): ('pass', [1000]),
        ('RegNetY-16GF', 'macs'): ('pass', 15_911_510_272),
        ('RegNetY-16GF', 'params'): ('pass', 83_590_140),
        ('RegNetY-32GF', 'output'): ('pass', [1000]),
        ('RegNetY-32GF', 'macs'): ('pass', 32_279_552_832),
        ('RegNetY-32GF', 'params'): ('pass', 145_046_770),
    },
    "specs/efficientnet_v2.yaml": {
        ('EfficientNetV2-S', 'output'): ('pass', [1000]),
        ('EfficientNetV2-S', 'params'): ('variant', 21_458_488),
        ('EfficientNetV2-M', 'output'): ('pass', [1000]),
        ('EfficientNetV2-L', 'output'): ('pass', [1000]),
    },
    "specs/vit.yaml": {
        ('ViT-B/16', 'params'): ('variant', 86_567_656),  # the headless count (#12)
        ('ViT-L/16', 'params'): ('erratum', 304_326_632),
        ('ViT-L/32', 'params'): ('pass', 306_535_400),
        ('ViT-H/14', 'params'): ('pass', 632_045_800),
    },
}


def _value(text):
    return json.loads(text) if text.startswith("[") else int(text.replace(",", ""))


@pytest.mark.parametrize("spec", sorted(EXPECTED))
def test_check_rows_are_the_expected_ones(spec):
    r = runner.invoke(app, ["check", spec, "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {}
    for row in json.loads(r.stdout):
        column = row["spec"].split(":", 1)[1]
        rows[(column, row["metric"])] = (row["status"], _value(row["archspec"]))
    assert rows == EXPECTED[spec]


# paper column -> torchvision builder: the same network (parameters, MACs, activations, output)
SAME_AS_BUILDER = [
    ("specs/mobilenet_v2.yaml:MobileNetV2", "mobilenet_v2"),
    ("specs/mobilenet_v3.yaml:V3-Large 1.0", "mobilenet_v3_large"),
    ("specs/mobilenet_v3.yaml:V3-Small 1.0", "mobilenet_v3_small"),
    *[(f"specs/mnasnet.yaml:{n}", n) for n in ("mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3")],
    *[(f"specs/shufflenet_v2.yaml:{c}", f"shufflenet_v2_x{n}")
      for c, n in (("0.5x", "0_5"), ("1x", "1_0"), ("1.5x", "1_5"), ("2x", "2_0"))],
    ("specs/squeezenet.yaml:squeezenet1_0", "squeezenet1_0"),
    ("specs/squeezenet.yaml:squeezenet1_1", "squeezenet1_1"),
    *[(f"specs/regnet.yaml:{c}", n) for c, n in (
        ("RegNetX-400MF", "regnet_x_400mf"), ("RegNetX-800MF", "regnet_x_800mf"), ("RegNetX-1.6GF", "regnet_x_1_6gf"),
        ("RegNetX-3.2GF", "regnet_x_3_2gf"), ("RegNetX-8.0GF", "regnet_x_8gf"), ("RegNetX-16GF", "regnet_x_16gf"),
        ("RegNetX-32GF", "regnet_x_32gf"), ("RegNetY-400MF", "regnet_y_400mf"), ("RegNetY-800MF", "regnet_y_800mf"),
        ("RegNetY-1.6GF", "regnet_y_1_6gf"), ("RegNetY-3.2GF", "regnet_y_3_2gf"), ("RegNetY-8.0GF", "regnet_y_8gf"),
        ("RegNetY-16GF", "regnet_y_16gf"), ("RegNetY-32GF", "regnet_y_32gf"))],
    ("specs/efficientnet_v2.yaml:EfficientNetV2-S", "efficientnet_v2_s"),
    ("specs/efficientnet_v2.yaml:EfficientNetV2-M", "efficientnet_v2_m"),
    ("specs/efficientnet_v2.yaml:EfficientNetV2-L", "efficientnet_v2_l"),
    ("specs/vit.yaml:ViT-L/32", "vit_l_32"),
]


def _stats(ref):
    [(net, graph, stats)] = compile_spec(ref)
    return net, graph, stats


@pytest.mark.parametrize("ref,builder", SAME_AS_BUILDER, ids=[b for _, b in SAME_AS_BUILDER])
def test_each_column_is_its_torchvision_builder(ref, builder):
    net, graph, paper = _stats(ref)
    tv_net, tv_graph, tv = _stats(f"specs/torchvision/{builder}.yaml")
    assert net.name == builder and net.input == tv_net.input
    assert (paper.params, paper.macs, paper.output) == (tv.params, tv.macs, tv.output)
    if builder.startswith("vit"):
        return  # specs/vit.yaml writes Eq. 1-4 (no dropout layers, its own names): the counts agree
    assert paper.activations == tv.activations
    assert [(n.id, n.op, n.shape) for n in graph.nodes()] == [(n.id, n.op, n.shape) for n in tv_graph.nodes()]


def test_mobilenet_v2_1_4_widens_the_last_conv():
    """§4: the width multiplier spares the last conv only below one; at 1.4 it is 1792 wide."""
    net, graph, stats = _stats("specs/mobilenet_v2.yaml:MobileNetV2 (1.4)")
    last_conv = [layer for layer in stats.layers if layer.op == "conv"][-1]
    assert last_conv.output == (1792, 7, 7)
    assert (stats.params, stats.macs) == (6_108_776, 582_195_824)


def _bn_channels(stats):
    return sum(layer.params // 2 for layer in stats.layers if layer.op == "bn")


@pytest.mark.parametrize("ref,without_bn", [
    ("specs/mobilenet_v2.yaml:MobileNetV2", 3_470_760),             # TF-slim README: 3.47M
    ("specs/mobilenet_v2.yaml:MobileNetV2 (1.4)", 6_060_840),       # TF-slim README: 6.06M
    ("specs/mobilenet_v3.yaml:V3-Large 1.0", 5_458_632),
])
def test_counts_without_batch_norm_quoted_in_the_errata(ref, without_bn):
    _, _, stats = _stats(ref)
    assert stats.params - 2 * _bn_channels(stats) == without_bn


def test_mobilenet_v3_without_squeeze_excite_convs_quoted_in_the_erratum():
    for ref, macs in (("specs/mobilenet_v3.yaml:V3-Small 1.0", 56_051_648),
                      ("specs/mobilenet_v3.yaml:V3-Large 1.0", 215_082_560)):
        _, _, stats = _stats(ref)
        se = sum(layer.macs for layer in stats.layers if ".fc1" in layer.name or ".fc2" in layer.name)
        assert stats.macs - se == macs


def _variant(tmp_path, monkeypatch, base, name, params):
    """A spec extending ``base`` with ``params`` changed (written outside the tree, as --allow-path specs)."""
    from archspec.load import loader
    monkeypatch.setattr(loader, "_ALLOWED", [str(Path("specs").resolve())])
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(f"extends: {Path(base).resolve().as_posix()}\nname: {name}\nparams: {params}\n"
                    "expect: {output: [1000]}\n")
    return _stats(str(spec))[2]


@pytest.mark.parametrize("builder,widths,params,macs", [
    ("regnet_x_400mf", [32, 64, 160, 384], 5_157_512, 397_677_568),       # pycls: 5.2M, 0.4B
    ("regnet_y_800mf", [64, 128, 320, 768], 6_263_168, 797_176_832),      # pycls: 6.3M, 0.8B
    ("regnet_y_8gf", [168, 448, 896, 2016], 39_180_068, 7_963_057_312),   # pycls: 39.2M, 8.0B
])
def test_regnet_variants_with_pycls_widths_give_the_printed_numbers(tmp_path, monkeypatch, builder, widths, params,
                                                                     macs):
    """pycls rounds stage widths half to even without a floor; torchvision's _make_divisible does not."""
    stats = _variant(tmp_path, monkeypatch, f"specs/torchvision/{builder}.yaml", f"pycls_{builder}",
                     f"{{stage_widths: {widths}}}")
    assert (stats.params, stats.macs) == (params, macs)
    _, _, tv = _stats(f"specs/torchvision/{builder}.yaml")
    assert tv.params != params


def test_efficientnet_v2_s_with_table_4s_272_and_1792_has_24m_parameters(tmp_path, monkeypatch):
    """Figure 1(b)'s 24M: stage 6 with 272 channels and a 1792-wide head (the paper's Table 4 copies)."""
    stages = ("[[FusedMBConv, 1, 3, 1, 24, 24, 2], [FusedMBConv, 4, 3, 2, 24, 48, 4], [FusedMBConv, 4, 3, 2, 48, 64, 4], "
              "[MBConv, 4, 3, 2, 64, 128, 6], [MBConv, 6, 3, 1, 128, 160, 9], [MBConv, 6, 3, 2, 160, 272, 15]]")
    stats = _variant(tmp_path, monkeypatch, "specs/torchvision/efficientnet_v2_s.yaml", "v2s_272",
                     f"{{last_channel: 1792, stages: {stages}}}")
    assert (stats.params, stats.macs) == (23_940_048, 8_597_814_784)


def test_squeezenet_v1_1_computation_ratio():
    """The v1.1 README's "2.4x less computation": 818,924,576 / 349,151,936 = 2.35 at 224×224."""
    _, _, v10 = _stats("specs/squeezenet.yaml:squeezenet1_0")
    _, _, v11 = _stats("specs/squeezenet.yaml:squeezenet1_1")
    assert (v10.macs, v11.macs) == (818_924_576, 349_151_936)
    assert round(v10.macs / v11.macs, 1) == 2.3
    assert v10.params * 4 == 4_993_696          # Table 2's "4.8MB" (32-bit weights): 4.76 MiB
