"""The zoo against the numbers the papers and the seed notes print, and the language features the
zoo relies on (columns, FILE:COLUMN, shortcut options, cells)."""

import json

import pytest
from typer.testing import CliRunner

from archspec.analysis import compile_spec
from archspec.cli.main import app
from archspec.check import parse_printed

runner = CliRunner()


def _one(ref, input_override=None):
    [(net, graph, stats)] = compile_spec(ref, input_override)
    return net, graph, stats


def test_check_is_green_on_the_whole_zoo():
    r = runner.invoke(app, ["check", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert not [x for x in rows if x["status"] == "fail"]
    flagged = {(x["spec"], x["metric"]): x["status"] for x in rows if x["status"] in ("erratum", "variant")}
    assert flagged[("specs/resnet.yaml:resnet34", "macs")] == "variant"  # the option-A network (#12)
    assert flagged[("specs/lenet5.yaml", "params")] == "variant"
    assert flagged[("specs/alexnet.yaml", "neurons")] == "variant"
    assert len([x for x in rows if x["status"] == "pass"]) >= 100


def test_vgg16_per_layer_table_of_the_seed_notes():
    """seed 003: the VGG-16 memory/params table (it counts no biases: compare `weights`)."""
    net, graph, stats = _one("specs/vgg16.yaml")
    convs = [l for l in stats.layers if l.op == "conv"]
    fcs = [l for l in stats.layers if l.op == "linear"]
    seed_conv = [(224, 64, 1_728), (224, 64, 36_864), (112, 128, 73_728), (112, 128, 147_456),
                 (56, 256, 294_912), (56, 256, 589_824), (56, 256, 589_824),
                 (28, 512, 1_179_648), (28, 512, 2_359_296), (28, 512, 2_359_296),
                 (14, 512, 2_359_296), (14, 512, 2_359_296), (14, 512, 2_359_296)]
    assert [(l.output[1], l.output[0], l.weights) for l in convs] == seed_conv
    assert [l.activations for l in convs][:2] == [224 * 224 * 64] * 2  # "3.2M"
    assert [l.weights for l in fcs] == [102_760_448, 16_777_216, 4_096_000]
    pools = [l for l in stats.layers if l.op == "maxpool"]
    assert [l.activations for l in pools] == [802_816, 401_408, 200_704, 100_352, 25_088]  # 800K ... 25K
    assert stats.params == 138_357_544


def test_alexnet_conv1_numbers_of_the_seed_notes():
    """seed 004: 55×55×96 = 290,400 neurons; (11·11·3 + 1)·96 = 34,944 parameters."""
    net, graph, stats = _one("specs/alexnet.yaml")
    conv1 = next(l for l in stats.layers if l.name == "conv1")
    assert conv1.output == (96, 55, 55)
    assert conv1.activations == 290_400
    assert conv1.params == 34_944
    assert stats.params == 60_965_224
    assert stats.neurons == 659_272


def test_zfnet_sizes_of_figure_3():
    net, graph, stats = _one("specs/zfnet.yaml")
    sizes = [graph.node(n).shape[1] for n in ("input", "conv1", "pool1", "conv2", "pool2", "conv3.0", "conv4.0",
                                               "conv5.0", "pool5")]
    assert sizes == [224, 110, 55, 26, 13, 13, 13, 13, 6]


def test_resnet_table_macs_and_receptive_field():
    macs = {n.name: s.macs for n, g, s in compile_spec("specs/resnet.yaml")}
    assert macs == {"resnet18": 1_814_073_344, "resnet34": 3_663_761_408, "resnet50": 3_857_973_248,
                    "resnet101": 7_570_194_432, "resnet152": 11_282_415_616}
    net, graph, stats = _one("specs/resnet.yaml:resnet18")
    conv1 = next(l for l in stats.layers if l.name == "conv1.0")
    pool1 = next(l for l in stats.layers if l.name == "pool1")
    assert (conv1.rf, conv1.jump, pool1.rf, pool1.jump) == ((7, 7), (2, 2), (11, 11), (4, 4))


# by hand from ResNet-34 "B" (torchvision's 21,797,672): A drops the three 1×1 projections and their
# BNs (173,824 parameters); C adds one to each of the 13 other blocks (919,168 parameters)
@pytest.mark.parametrize("option,params", [("A", 21_623_848), ("B", 21_797_672), ("C", 22_716_840)])
def test_shortcut_options_are_one_parameter(tmp_path, option, params, monkeypatch):
    """ResNet-34 with shortcut option A (zero-padding), B (projection when needed), C (always)."""
    from pathlib import Path

    from archspec.load import loader
    monkeypatch.setattr(loader, "_ALLOWED", [str(Path("specs").resolve())])  # as --allow-path specs
    spec = tmp_path / f"r34{option}.yaml"
    spec.write_text(f"extends: {Path('specs/resnet.yaml').resolve().as_posix()}\n"
                    f"column: resnet34\nname: r34{option.lower()}\nparams: {{shortcut: {option}}}\n")
    net, graph, stats = _one(str(spec))
    assert stats.params == params
    ops = [n.op for n in graph.nodes()]
    assert ops.count("pad_shortcut") == (3 if option == "A" else 0)
    assert stats.output == (1000,)


def test_file_column_selects_one_network_and_a_table_gives_all():
    r = runner.invoke(app, ["stats", "specs/vgg.yaml", "--format", "json"])
    names = [x["name"] for x in json.loads(r.stdout)]
    assert names == ["vgg_a", "vgg_a_lrn", "vgg_b", "vgg_c", "vgg_d", "vgg_e"]
    r = runner.invoke(app, ["stats", "specs/vgg.yaml:C", "--format", "json"])
    [c] = json.loads(r.stdout)
    assert (c["name"], c["params"]) == ("vgg_c", 133_638_952)


def test_stats_json_csv_markdown_and_input_override():
    r = runner.invoke(app, ["stats", "specs/lenet5.yaml", "--per-layer", "--format", "json"])
    [obj] = json.loads(r.stdout)
    assert (obj["name"], obj["input"], obj["output"], obj["params"], obj["macs"]) == \
        ("lenet5", [1, 32, 32], [10], 61_706, 416_520)
    assert obj["layers"][0] == {"name": "conv1", "op": "conv", "output": [6, 28, 28], "params": 156,
                                "weights": 150, "macs": 117_600, "activations": 4_704,
                                "receptive_field": [5, 5], "jump": [1, 1]}
    r = runner.invoke(app, ["stats", "specs/torchvision/resnet50.yaml", "--format", "csv"])
    assert r.stdout.splitlines()[1] == \
        "resnet50,specs/torchvision/resnet50.yaml,3×224×224,1000,25557032,4089184256,37712360"
    r = runner.invoke(app, ["stats", "specs/torchvision/resnet50.yaml"])
    assert "25.56 M" in r.stdout and "4.09 G" in r.stdout
    r = runner.invoke(app, ["stats", "specs/torchvision/resnet50.yaml", "--format", "markdown"])
    assert r.stdout.splitlines()[2].startswith("| resnet50 | specs/torchvision/resnet50.yaml |")
    r = runner.invoke(app, ["stats", "specs/torchvision/resnet50.yaml", "--input", "3,160,160", "--format", "json"])
    [obj] = json.loads(r.stdout)
    assert obj["input"] == [3, 160, 160]
    assert obj["macs"] == _one("specs/torchvision/resnet50.yaml", (3, 160, 160))[2].macs < 4_089_184_256


def test_schema_is_json_schema_with_the_ops():
    r = runner.invoke(app, ["schema"])
    schema = json.loads(r.stdout)
    assert schema["title"] == "archspec spec"
    layer = schema["$defs"]["Layer"]
    call = next(a for a in layer["anyOf"] if a.get("type") == "object")
    assert {"conv", "bn", "maxpool", "linear", "add", "concat", "pad_shortcut", "repeat", "when"} <= set(call["properties"])
    assert "network" in schema["properties"] and "expect" in schema["properties"]


@pytest.mark.parametrize("text,value,tol", [
    ("3.8e9", 3_800_000_000, 50_000_000), ("138M", 138_000_000, 500_000), ("60K", 60_000, 5_000),
    ("25_557_032", 25_557_032, 0), ("4.089G", 4_089_000_000, 500_000), ("650K", 650_000, 5_000),
    ("0.714G", 714_000_000, 500_000),
])
def test_printed_numbers_carry_their_precision(text, value, tol):
    p = parse_printed(text)
    assert (p.value, p.tol) == (value, tol)


def test_tolerance_override():
    assert parse_printed("3.8G", "exact").tol == 0
    assert parse_printed("200M", "1%").tol == 2_000_000


def test_stats_check_build_never_import_torch(tmp_path):
    """The static path stays torch-free (speed): run the commands in a fresh interpreter."""
    import subprocess
    import sys
    code = (
        "import sys\n"
        "from archspec.cli.main import app\n"
        f"for args in (['stats', 'specs/torchvision/resnet50.yaml'], ['check', 'specs/vgg.yaml'],\n"
        f"             ['build', 'specs/resnet50.yaml', '-o', {str(tmp_path)!r}], ['validate', 'specs/lenet5.yaml']):\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit as e:\n"
        "        assert e.code in (0, None), (args, e.code)\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "resnet50.py").is_file()


def test_cli_pauses_the_garbage_collector_only_while_it_works():
    import gc

    from archspec.cli.main import _guard

    seen = _guard(gc.isenabled)
    assert seen is False
    assert gc.isenabled() is True
