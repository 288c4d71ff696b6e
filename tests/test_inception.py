"""GoogLeNet and Inception-v3: training-time outputs (aux: layers — GoogLeNet's auxiliary
classifiers, Inception-v3's AuxLogits) in the IR, in stats with and without them, in generated code
in training and eval mode, and their errors; pair block parameters; GoogLeNet's Table 1."""

import json

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

from archspec.analysis import compile_spec
from archspec.cli.main import app

from archspec.codegen.writer import output_path
from archspec.ir import lower
from archspec.load import expand_refs, load_networks

from .conftest import ROOT
from .test_codegen import GENERATED, _randomise_bn, load_module

runner = CliRunner()


def _aux_zoo():
    """Every network of specs/ (torchvision's included) that has training-time outputs."""
    out = []
    for ref in expand_refs([str(ROOT / "specs")]):
        nets = load_networks(ref)
        out += [(n, output_path(n.file, GENERATED, n.name, len(nets) > 1)) for n in nets if lower(n).aux]
    return out


AUX_ZOO = _aux_zoo()


def test_the_zoo_has_the_aux_networks():
    assert sorted(p.relative_to(GENERATED).as_posix() for _, p in AUX_ZOO) == \
        ["googlenet.py", "torchvision/googlenet.py", "torchvision/inception_v3.py"]


def test_googlenet_totals_with_and_without_aux():
    [(net, graph, st)] = compile_spec("specs/torchvision/googlenet.yaml")
    assert [(a.name, a.loss_weight, a.tap) for a in graph.aux.values()] == \
        [("aux1", 0.3, "inception4a.cat"), ("aux2", 0.3, "inception4d.cat")]
    assert (st.params, st.params_with_aux) == (6_624_904, 13_004_888)
    # aux1: conv 512·128 + BN 256, fc1 2048·1024 + 1024, fc2 1024·1000 + 1000
    assert [a.params for a in st.aux] == [512 * 128 + 256 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000,
                                          528 * 128 + 256 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000]
    # aux1's MACs: 4·4·128·512 (conv) + 2048·1024 + 1024·1000
    assert st.aux[0].macs == 4 * 4 * 128 * 512 + 2048 * 1024 + 1024 * 1000
    assert st.macs_with_aux == st.macs + sum(a.macs for a in st.aux)
    assert st.params_with_aux == st.params + sum(a.params for a in st.aux)
    assert {ls.aux for ls in st.layers if ls.name.startswith("aux")} == {"aux1", "aux2"}


def test_stats_shows_the_network_with_and_without_aux():
    r = runner.invoke(app, ["stats", "specs/torchvision/googlenet.yaml", "--format", "csv"])
    assert r.stdout.splitlines()[1:] == [
        "googlenet,specs/torchvision/googlenet.yaml,3×224×224,1000,6624904,1498376192,12486136",
        "googlenet +aux,specs/torchvision/googlenet.yaml,3×224×224,\"aux1 1000 ×0.3, aux2 1000 ×0.3\","
        "13004888,1506748416,12527304"]
    r = runner.invoke(app, ["stats", "specs/torchvision/inception_v3.yaml", "--format", "json", "--per-layer"])
    [obj] = json.loads(r.stdout)
    assert (obj["params"], obj["params_with_aux"], obj["macs"]) == (23_834_568, 27_161_264, 5_713_216_096)
    assert obj["aux"][0]["name"] == "AuxLogits" and obj["aux"][0]["loss_weight"] == 0.4
    assert {l["aux"] for l in obj["layers"] if "aux" in l} == {"AuxLogits"}
    assert sum(l["params"] for l in obj["layers"] if "aux" in l) == 27_161_264 - 23_834_568
    r = runner.invoke(app, ["stats", "specs/googlenet.yaml", "--per-layer", "--format", "csv"])
    totals = [l.split(",")[2] for l in r.stdout.splitlines() if ",total" in l]
    assert totals == ["total (inference)", "total with aux"]


def test_generated_googlenet_matches_torchvision_in_training_mode():
    """(logits, aux2, aux1) in torchvision's order; BN on batch statistics, dropout off."""
    mod = load_module(GENERATED / "torchvision" / "googlenet.py")
    assert mod.AUX_LOSS_WEIGHTS == {"aux1": 0.3, "aux2": 0.3}
    assert mod.GoogLeNetOutputs._fields == ("logits", "aux2", "aux1")
    torch.manual_seed(0)
    ref = torchvision.models.googlenet(weights=None, init_weights=False)
    _randomise_bn(ref)
    ours = mod.build(init_weights=False)
    ours.load_state_dict(ref.state_dict(), strict=True)
    for m in (ref, ours):
        m.train()
        for d in m.modules():
            if isinstance(d, torch.nn.Dropout):
                d.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert isinstance(a, mod.GoogLeNetOutputs) and len(a) == len(b) == 3
    for u, v in zip(a, b):
        assert u.shape == v.shape == (2, 1000)
        assert (u - v).abs().max().item() <= 1e-4
    ours.eval()
    with torch.no_grad():
        assert isinstance(ours(x), torch.Tensor)


@pytest.mark.parametrize("net,path", AUX_ZOO, ids=[p.relative_to(GENERATED).as_posix() for _, p in AUX_ZOO])
def test_training_mode_runs_the_aux_heads(net, path):
    """Train mode: the aux outputs have the IR's shapes, FlopCounterMode / 2 == macs_with_aux."""
    [(_, graph, st)] = compile_spec(net.ref)
    mod = load_module(path)
    assert mod.AUX_LOSS_WEIGHTS == {a.name: a.loss_weight for a in graph.aux.values()}
    with torch.device("meta"):
        model = mod.build(init_weights=False).train()
    with FlopCounterMode(display=False) as counter:
        out = model(torch.empty((2, *net.input), device="meta"))
    assert out._fields == ("logits", *reversed(list(graph.aux)))
    assert tuple(out.logits.shape[1:]) == st.output
    assert [tuple(getattr(out, a.name).shape[1:]) for a in st.aux] == [a.output for a in st.aux]
    assert counter.get_total_flops() == 2 * (2 * (st.macs_with_aux - st.shared_macs_with_aux) + st.shared_macs_with_aux)


def _validate(tmp_path, text):
    spec = tmp_path / "a.yaml"
    spec.write_text(text)
    r = runner.invoke(app, ["validate", str(spec)])
    return r.exit_code, r.stderr.splitlines()


HEAD = "name: a\ninput: [3, 16, 16]\nnum_classes: 5\n"
AUX = "  side: [global_avgpool, flatten, {linear: num_classes}]\n"


def test_aux_errors(tmp_path):
    code, lines = _validate(tmp_path, HEAD + "network:\n  c: {conv: {out: 4, kernel: 3}}\n"
                            "  side: {global_avgpool: {}, aux: {loss_wieght: 0.3}}\n  fc: [flatten, {linear: 5}]\n")
    assert code == 1 and lines[0].endswith("a.yaml:6:36: error: network.side.aux.loss_wieght: aux: has no key 'loss_wieght'")
    assert lines[1] == "  hint: did you mean 'loss_weight'?"
    code, lines = _validate(tmp_path, HEAD + "network:\n  c: {conv: {out: 4, kernel: 3}}\n"
                            "  side: {global_avgpool: {}, aux: {}}\n  fc: [flatten, {linear: 5}]\n")
    assert code == 1 and lines[0].endswith(
        "a.yaml:6:35: error: network.side.aux: aux: needs loss_weight (the weight of this output's loss in training)")
    code, lines = _validate(tmp_path, HEAD + "blocks:\n  b:\n    body:\n      - {conv: {out: 4, kernel: 3}}\n"
                            "      - {global_avgpool: {}, aux: {loss_weight: 0.3}}\n"
                            "network:\n  x: b\n  fc: [global_avgpool, flatten, {linear: 5}]\n")
    assert code == 1 and lines[0].endswith(
        "a.yaml:8:30: error: blocks.b.body[1].aux: aux: marks a named layer of network: (not one inside a block, "
        "group or list)")
    code, lines = _validate(tmp_path, HEAD + "network:\n  c: {conv: {out: 4, kernel: 3}}\n"
                            "  side: {global_avgpool: {}, aux: {loss_weight: 0.3}}\n"
                            "  fc: {flatten: {}, from: side}\n  out: {linear: 5}\n")
    assert code == 1 and lines[0].endswith(
        "a.yaml:7:8: error: network.fc.flatten: 'fc' reads 'side' of the auxiliary output 'side', which is dropped "
        "at inference")
    assert lines[1] == "  hint: an aux: layer is a side branch: the main network cannot take input from it"


def test_pair_parameters_give_one_class_for_square_and_factorised_kernels():
    """Block parameter type pair: BasicConv2d(…, 3, 1) and BasicConv2d(…, (1, 7), (0, 3)) share a class."""
    text = (GENERATED / "torchvision" / "inception_v3.py").read_text()
    assert text.count("\nclass BasicConv2d") == 1 and "class BasicConv2d2" not in text
    assert "        kernel_size: int | tuple[int, int],\n        padding: int | tuple[int, int],\n" in text
    assert ("self.conv = nn.Conv2d(\n" + "".join(f"            {a},\n" for a in (
        "in_channels", "out_channels", "kernel_size=kernel_size", "stride=stride", "padding=padding",
        "bias=False")) + "        )\n") in text
    assert "self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), (0, 3))" in text
    assert "self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, 0, stride=2)" in text


def test_pair_parameter_type_error(tmp_path):
    code, lines = _validate(tmp_path, HEAD + "blocks:\n  b:\n    params: {k: pair}\n"
                            "    body: [{conv: {out: 4, kernel: k}}]\nnetwork:\n  x: {b: [[1, 2, 3]]}\n"
                            "  fc: [global_avgpool, flatten, {linear: 5}]\n")
    assert code == 1 and lines[0].endswith("a.yaml:9:11: error: network.x.b.k: parameter 'k' of block 'b' is a "
                                           "pair, got [1, 2, 3]")


def test_an_aux_layer_named_logits_is_an_error(tmp_path):
    spec = tmp_path / "a.yaml"
    spec.write_text(HEAD + "network:\n  c: {conv: {out: 4, kernel: 3}}\n"
                    "  logits: {global_avgpool: {}, aux: {loss_weight: 0.3}}\n  fc: [global_avgpool, flatten, {linear: 5}]\n")
    r = runner.invoke(app, ["build", str(spec), "-o", str(tmp_path / "out")])
    assert r.exit_code == 1 and not (tmp_path / "out").exists()
    assert r.stderr.splitlines()[0].endswith(
        "a.yaml:6:12: error: network.logits.global_avgpool: an aux: layer cannot be called 'logits': it names a "
        "field of the training-mode outputs (a NamedTuple whose first field is 'logits')")


def test_a_layer_named_aux_is_still_a_layer(tmp_path):
    code, lines = _validate(tmp_path, HEAD + "network:\n  c: {conv: {out: 4, kernel: 3}}\n  aux: [relu]\n"
                            "  fc: [global_avgpool, flatten, {linear: 5}]\n")
    assert (code, lines) == (0, [])
    [(net, graph, st)] = compile_spec(str(tmp_path / "a.yaml"))
    assert not graph.aux and graph.node("aux.0").op == "relu" and st.params_with_aux == st.params == 3 * 9 * 4 + 4 + 4 * 5 + 5


def test_googlenet_table1_rows():
    """Table 1's ops column matches conv1 (depthwise-separable, issue #12) and the inception rows;
    its params column reads as weights in units of 1024 only for conv2, 3a and the linear layer
    (variants); the rest are errata. The total is §1's 1.5 billion multiply-adds."""
    r = runner.invoke(app, ["check", "specs/googlenet.yaml", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {x["metric"]: x["status"] for x in json.loads(r.stdout)}
    assert [m for m, s in rows.items() if s == "variant"] == ["conv2.weights", "inception_3a.weights", "fc.weights"]
    assert sorted(m for m, s in rows.items() if s == "erratum" and m.endswith("macs")) == \
        ["inception_4a.macs", "inception_5a.macs"]
    assert (rows["macs"], rows["conv1.macs"], rows["conv1.weights"]) == ("pass", "pass", "pass")
    assert all(rows[f"inception_{k}.macs"] == "pass" for k in ("3a", "3b", "4b", "4c", "4d", "4e", "5b"))
    [(net, graph, st)] = compile_spec("specs/googlenet.yaml")
    assert graph.modules["inception_3a"].args == {"n1x1": 64, "n3x3red": 96, "n3x3": 128, "n5x5red": 16,
                                                  "n5x5": 32, "pool_proj": 32}
    # conv1: 7·7·3·8 depthwise + 24·64 pointwise weights, 112·112·(24·49 + 24·64) MACs
    assert (_layer_sum(st, "conv1", "weights"), _layer_sum(st, "conv1", "macs")) == (2_712, 34_019_328)
    assert (st.macs, st.weights) == (1_498_677_248, 6_990_272 - 9_408 + 2_712)


def _layer_sum(st, prefix: str, metric: str) -> int:
    return sum(getattr(ls, metric) for ls in st.layers if ls.name.startswith(prefix + "."))
