"""archspec diff: the seed notes' "ZFNet = AlexNet with changes" and VGG's columns as layers added."""

import json

from typer.testing import CliRunner

from archspec.cli.main import app

runner = CliRunner()


def _diff(a, b):
    r = runner.invoke(app, ["diff", a, b, "--format", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_alexnet_to_zfnet_first_conv_and_merged_towers():
    d = _diff("specs/alexnet.yaml", "specs/zfnet.yaml")
    changed = {c["a"]: c for c in d["changes"] if c["kind"] == "changed"}
    assert changed["conv1"]["attrs"] == {"kernel": [11, 7], "padding": [0, 1], "stride": [4, 2]}
    assert changed["conv1"]["output"] == [[96, 55, 55], [96, 110, 110]]
    assert changed["conv2"]["attrs"]["groups"] == [2, 1]
    assert changed["conv4"]["attrs"] == {"groups": [2, 1]} and changed["conv5"]["attrs"] == {"groups": [2, 1]}
    assert "conv3" not in changed  # the towers already talk in conv3
    assert d["delta"]["params"] == 62_357_608 - 60_965_224


def test_zfnet_to_wide_is_the_depth_change():
    d = _diff("specs/zfnet.yaml", "specs/zfnet_wide.yaml")
    assert [(c["kind"], c["a"], c["attrs"]) for c in d["changes"]] == [
        ("changed", "conv3.0", {"out": [384, 512]}),
        ("changed", "conv4.0", {"in": [384, 512], "out": [384, 1024]}),
        ("changed", "conv5.0", {"in": [384, 1024], "out": [256, 512]}),
        ("changed", "fc6.0", {"in": [9216, 18432]}),
    ]
    assert sum(c["params"][1] - c["params"][0] for c in d["changes"]) == d["delta"]["params"]


def test_vgg_a_to_e_adds_layers_only():
    d = _diff("specs/vgg.yaml:A", "specs/vgg.yaml:E")
    kinds = [c["kind"] for c in d["changes"]]
    assert kinds == ["added"] * 16
    assert sorted(c["op"] for c in d["changes"]) == ["conv"] * 8 + ["relu"] * 8
    assert d["delta"]["params"] == 143_667_240 - 132_863_336
    assert sum(c["params"][1] for c in d["changes"]) == d["delta"]["params"]


def test_diff_of_a_table_asks_for_a_column():
    r = runner.invoke(app, ["diff", "specs/vgg.yaml", "specs/vgg16.yaml"])
    assert r.exit_code == 1
    assert "holds 6 networks; name one as FILE:COLUMN" in r.stderr
