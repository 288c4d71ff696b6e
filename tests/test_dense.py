"""The dense: combinator (DenseNet's connectivity): how it lowers, how it is generated, its errors.

Small specs are written into tmp_path, lowered in-process and their generated modules executed on
tiny inputs, so the whole file runs in a few seconds.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest
import torch

from archspec.analysis import analyse
from archspec.codegen.pymodel import _progression
from archspec.codegen.writer import render_specs
from archspec.ir import lower
from archspec.load import load_networks

from .conftest import ROOT
from .test_errors import HEAD, check_spec

HEAD8 = "name: t\ninput: [3, 8, 8]\nnum_classes: 5\n"
TAIL = "  head: [global_avgpool, flatten, {linear: num_classes}]\n"


def _net(tmp_path: Path, text: str):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    [net] = load_networks(str(path))
    return net


def _module(tmp_path: Path, text: str):
    """Generate the spec's module into tmp_path and import it; returns (module, source text)."""
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    [out] = [o for o in render_specs([str(path)], tmp_path / "gen") if o.kind == "model"]
    out.path.parent.mkdir(parents=True, exist_ok=True)
    out.path.write_text(out.text)
    spec = importlib.util.spec_from_file_location(f"gen_dense_{tmp_path.name}", out.path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, out.text


def _dense_reference(x: torch.Tensor, layers: list[torch.nn.Module]) -> torch.Tensor:
    """x_j = H_j([x_0, ..., x_{j-1}]) and the block's output [x_0, ..., x_n] (Huang et al., eq. 2)."""
    feats = [x]
    for layer in layers:
        feats.append(layer(torch.cat(feats, 1)))
    return torch.cat(feats, 1)


SMALL = HEAD8 + textwrap.dedent("""\
    network:
      stem: {conv: {out: 4, kernel: 3, padding: 1}}
      block: {dense: {conv: {out: 2, kernel: 3, padding: 1}}, repeat: 3, names: "layer{i + 1}"}
    """) + TAIL


def test_dense_lowers_to_one_concat_per_layer_and_one_for_the_output(tmp_path):
    g = lower(_net(tmp_path, SMALL))
    inside = [(n.id, n.op, n.inputs, n.shape) for n in g.nodes() if n.id.startswith("block.")]
    assert inside == [
        ("block.cat", "concat", ["stem"], (4, 8, 8)),
        ("block.layer1", "conv", ["block.cat"], (2, 8, 8)),
        ("block.cat_1", "concat", ["stem", "block.layer1"], (6, 8, 8)),
        ("block.layer2", "conv", ["block.cat_1"], (2, 8, 8)),
        ("block.cat_2", "concat", ["stem", "block.layer1", "block.layer2"], (8, 8, 8)),
        ("block.layer3", "conv", ["block.cat_2"], (2, 8, 8)),
        ("block.cat_3", "concat", ["stem", "block.layer1", "block.layer2", "block.layer3"], (10, 8, 8)),
    ]
    assert g.modules["block"].kind == "dense" and g.modules["block"].output == "block.cat_3"
    st = analyse(g)
    by = {ls.name: ls for ls in st.layers}
    assert [by[f"block.layer{j}"].params for j in (1, 2, 3)] == [4 * 9 * 2 + 2, 6 * 9 * 2 + 2, 8 * 9 * 2 + 2]
    assert [by[f"block.layer{j}"].macs for j in (1, 2, 3)] == [64 * 2 * 36, 64 * 2 * 54, 64 * 2 * 72]
    # the concat nodes hold real tensors: they count as activations
    assert [by[c].activations for c in ("block.cat", "block.cat_1", "block.cat_2", "block.cat_3")] == \
        [256, 384, 512, 640]


def test_generated_dense_block_is_a_loop_and_computes_dense_connectivity(tmp_path):
    mod, text = _module(tmp_path, SMALL)
    assert 'self.block = Dense(\n' \
           '            {f"layer{i + 1}": nn.Conv2d(4 + i * 2, 2, kernel_size=3, padding=1) for i in range(3)},\n' \
           '        )' in text
    assert text.count("torch.cat(") == 2  # in Dense.forward only: no hand-wired concatenations
    torch.manual_seed(0)
    model = mod.build().eval()
    assert [n for n, _ in model.block.named_children()] == ["layer1", "layer2", "layer3"]
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        feats = model.stem(x)
        want = model.head(_dense_reference(feats, list(model.block.children())))
        assert torch.equal(model.block(feats), _dense_reference(feats, list(model.block.children())))
        assert torch.equal(model(x), want)
    assert sum(p.numel() for p in model.parameters()) == analyse(lower(_net(tmp_path, SMALL))).params


def test_default_names_are_the_index_and_any_layer_body_works(tmp_path):
    spec = HEAD8 + textwrap.dedent("""\
        network:
          stem: {conv: {out: 4, kernel: 3, padding: 1}}
          block:
            dense: [bn, relu, {conv: {out: "2 if i == 0 else 3", kernel: 1, bias: false}}]
            repeat: 3
        """) + TAIL
    g = lower(_net(tmp_path, spec))
    assert [m for m in g.modules if m.startswith("block.")] == ["block.0", "block.1", "block.2"]
    assert g.node(g.modules["block"].output).shape == (4 + 2 + 3 + 3, 8, 8)
    mod, text = _module(tmp_path, spec)
    # 2, 3, 3 maps: no arithmetic progression, so the layers are listed
    assert ("self.block = Dense({\n            \"0\": nn.Sequential(\n                nn.BatchNorm2d(4), "
            "nn.ReLU(inplace=True), nn.Conv2d(4, 2, kernel_size=1, bias=False)\n            ),\n") in text
    assert ('"2": nn.Sequential(\n                nn.BatchNorm2d(9), nn.ReLU(inplace=True), '
            'nn.Conv2d(9, 3, kernel_size=1, bias=False)\n') in text
    model = mod.build().eval()
    assert list(model.state_dict())[2:6] == ["block.0.0.weight", "block.0.0.bias", "block.0.0.running_mean",
                                             "block.0.0.running_var"]
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(model.block(x), _dense_reference(x, list(model.block.children())))
    assert sum(p.numel() for p in model.parameters()) == analyse(g).params


def test_dense_inside_a_block_with_a_symbolic_count(tmp_path):
    spec = "name: t\ninput: [3, 8, 8]\nnum_classes: 5\nparams: {k: 4}\n" + textwrap.dedent("""\
        blocks:
          unit:
            body: [bn, relu, {conv: {out: k, kernel: 3, padding: 1, bias: false}}]
          stage:
            params: {n: int}
            body:
              - {dense: unit, repeat: n, names: "unit{i}"}
              - {dense: {conv: {out: 2, kernel: 1}}, repeat: n}
              - {conv: {out: in.c, kernel: 1}}
        network:
          stem: {conv: {out: 8, kernel: 3, padding: 1}}
          s1: {stage: {n: 2}}
          s2: {stage: {n: 3}}
        """) + TAIL
    g = lower(_net(tmp_path, spec))
    assert g.node("s2.conv").in_shapes == [(8 + 3 * 4 + 3 * 2, 8, 8)]
    mod, text = _module(tmp_path, spec)
    # both instances share one class: the layer count and the channels are expressions
    assert text.count("class Stage") == 1
    assert 'self.dense = Dense({f"unit{i}": Unit(in_channels + i * 4) for i in range(n)})' in text
    assert "{str(i): nn.Conv2d(in_channels + n * 4 + i * 2, 2, kernel_size=1) for i in range(n)}" in text
    assert "self.conv = nn.Conv2d(in_channels + n * 4 + n * 2, in_channels, kernel_size=1)" in text
    model = mod.build().eval()
    assert [n for n, _ in model.s2.dense.named_children()] == ["unit0", "unit1", "unit2"]
    assert sum(p.numel() for p in model.parameters()) == analyse(g).params
    seen = {}
    for name, m in model.named_modules():
        if name in ("s1.dense", "s2.dense", "s2.dense_1", "s2.dense.unit2", "s2.dense_1.2"):
            m.register_forward_hook(lambda mod_, i, o, name=name: seen.__setitem__(name, tuple(o.shape[1:])))
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        assert model(x).shape == (1, 5)
        s2_in = model.s1(model.stem(x))
        assert torch.equal(model.s2.dense(s2_in), _dense_reference(s2_in, list(model.s2.dense.children())))
    assert seen == {p: g.node(g.modules[p].output if p in g.modules else p).shape for p in seen}
    assert len(seen) == 5


def test_progression_of_constructors_and_names():
    assert _progression(["L(64)", "L(96)", "L(128)"]) == "L(64 + i * 32)"
    assert _progression(["nn.BatchNorm2d(8, eps=0.001)", "nn.BatchNorm2d(9, eps=0.001)"]) == \
        "nn.BatchNorm2d(8 + i, eps=0.001)"
    assert _progression(["nn.Conv2d(0, 4)", "nn.Conv2d(4, 4)"]) == "nn.Conv2d(i * 4, 4)"
    assert _progression(["f(x=-1)", "f(x=0)"]) == "f(x=-1 + i)"
    assert _progression(["f(a - 5)", "f(a - 6)"]) == "f(a - (5 + i))"
    assert _progression(["f(a * 0)", "f(a * 2)"]) == "f(a * (i * 2))"
    assert _progression(["L(2)", "L(3)", "L(3)"]) is None
    assert _progression(["A(1)", "B(1)"]) is None
    assert _progression(["denselayer1", "denselayer2", "denselayer3"], names=True) == 'f"denselayer{i + 1}"'
    assert _progression(["0", "1", "2"], names=True) == "str(i)"
    assert _progression(["u0", "u2"], names=True) == 'f"u{i * 2}"'
    assert _progression(["a1", "b2"], names=True) is None


def test_torchvision_densenet_generated_code_reads_like_torchvision():
    text = (ROOT / "generated" / "torchvision" / "densenet161.py").read_text()
    assert '{f"denselayer{i + 1}": DenseLayer(384 + i * 48) for i in range(36)}' in text
    assert text.count("\nclass ") == 5  # Dense, DenseLayer, Transition, Features, DenseNet161
    assert text.count("torch.cat(") == 2
    assert "def __init__(self, in_channels: int, growth_rate: int = 48, bn_size: int = 4) -> None:" in text
    assert len(text.splitlines()) < 200


# ------------------------------------------------------------------------------------------ errors
NET = HEAD + "network:\n"


def test_dense_needs_repeat(tmp_path):
    check_spec(tmp_path, NET + "  - {dense: {conv: {out: 4, kernel: 1}}}\n", 4, 6,
               "'dense' takes a body and repeat:", "network[0]", "{dense: LAYER, repeat: n}")


def test_dense_as_a_bare_word(tmp_path):
    check_spec(tmp_path, NET + "  - dense\n", 4, 5, "'dense' needs a layer and repeat:", "network[0]",
               "{dense: LAYER, repeat: n}")


def test_names_without_repeat(tmp_path):
    check_spec(tmp_path, NET + '  - {conv: {out: 4, kernel: 1}, names: "c{i}"}\n', 4, 33,
               "names: goes with repeat:", "network[0]")


def test_names_on_a_plain_repeat(tmp_path):
    spec = HEAD8 + textwrap.dedent("""\
        network:
          stem: {conv: {out: 4, kernel: 3, padding: 1}}
          convs: {conv: {out: "4 * (i + 2)", kernel: 3, padding: 1}, repeat: 3, names: "conv{i + 1}"}
          odd: {conv: {out: "3 if i == 0 else 5", kernel: 1}, repeat: 3, names: "c{i}"}
        """) + TAIL
    g = lower(_net(tmp_path, spec))
    assert [n.id for n in g.nodes()][2:8] == ["convs.conv1", "convs.conv2", "convs.conv3", "odd.c0", "odd.c1", "odd.c2"]
    mod, text = _module(tmp_path, spec)
    assert "from collections import OrderedDict\n" in text
    assert 'OrderedDict((f"conv{i + 1}", nn.Conv2d(4 + i * 4, 8 + i * 4, kernel_size=3, padding=1)) for i in range(3)),' in text
    assert '("c1", nn.Conv2d(3, 5, kernel_size=1)),' in text
    model = mod.build().eval()
    assert [k for k in model.state_dict() if k.endswith("weight")][:7] == [
        "stem.weight", "convs.conv1.weight", "convs.conv2.weight", "convs.conv3.weight",
        "odd.c0.weight", "odd.c1.weight", "odd.c2.weight"]
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        y = model.stem(x)
        for m in [*model.convs.children(), *model.odd.children(), model.head]:
            y = m(y)
        assert torch.equal(model(x), y)
    assert sum(p.numel() for p in model.parameters()) == analyse(g).params


@pytest.mark.parametrize("pattern,message,hint", [
    ("layer.{i}", "names: gives 'layer.0' for i = 0, which cannot name a module", "'denselayer{i + 1}'"),
    ("layer", "names: gives 'layer' twice (i = 0 and i = 1)", "use i in the pattern"),
    ("l{i / 2}", "names: '{i / 2}' gives 0.0; a name part must be an int or a string", None),
    ("l{i", "names: unbalanced braces in 'l{i'", "one pair of braces"),
])
def test_bad_names_pattern(tmp_path, pattern, message, hint):
    spec = NET + f'  - {{dense: {{conv: {{out: 4, kernel: 1}}}}, repeat: 2, names: "{pattern}"}}\n'
    check_spec(tmp_path, spec, 4, 60, message, "network[0].names", hint)


def test_dense_layer_that_downsamples(tmp_path):
    spec = NET + "  - {dense: {conv: {out: 4, kernel: 3, stride: 2, padding: 1}}, repeat: 2}\n"
    check_spec(tmp_path, spec, 4, 13, "layer 0 of the dense block turns [3, 32, 32] into [4, 16, 16]",
               "network[0].dense", "downsample between dense blocks")


def test_dense_with_first_or_from(tmp_path):
    check_spec(tmp_path, NET + "  - {dense: {conv: {out: 4, kernel: 1}}, repeat: 2, first: {out: 8}}\n",
               4, 53, "first: does not go with dense:", "network[0]")
    check_spec(tmp_path, "name: t\ninput: [3, 32, 32]\nnetwork:\n  a: relu\n"
               "  b: {dense: {conv: {out: 4, kernel: 1}}, repeat: 2, from: a}\n",
               5, 54, "from: does not go with dense:", "network.b")


# ------------------------------------------------------------------------------------ the zoo
def _cifar_params(depth: int, k: int, bc: bool, classes: int = 10) -> int:
    """Huang et al. §3 ("Implementation Details") in closed form: BN (2c) and bias-free convs."""
    n = (depth - 4) // (6 if bc else 3)
    c = 2 * k if bc else 16
    total = 3 * 9 * c
    for b in range(3):
        for j in range(n):
            m = c + j * k
            total += 2 * m + (m * 4 * k + 2 * 4 * k + 4 * k * 9 * k if bc else m * 9 * k)
        c += n * k
        if b < 2:
            total += 2 * c + c * (c // 2 if bc else c)
            c = c // 2 if bc else c
    return total + 2 * c + c * classes + classes


@pytest.mark.parametrize("column,depth,k,bc", [
    ("densenet40_k12", 40, 12, False), ("densenet100_k12", 100, 12, False),
    ("densenet100_k24", 100, 24, False), ("densenet_bc100_k12", 100, 12, True),
    ("densenet_bc250_k24", 250, 24, True), ("densenet_bc190_k40", 190, 40, True),
])
def test_cifar_densenets_count_the_closed_form(column, depth, k, bc):
    [net] = load_networks(f"specs/densenet_cifar.yaml:{column}")
    g = lower(net)
    assert analyse(g).params == _cifar_params(depth, k, bc)
    n = (depth - 4) // (6 if bc else 3)
    assert sum(1 for m in g.modules.values() if m.kind == "dense") == 3
    assert [g.node(g.modules[f"dense_block{b}"].output).shape[1:] for b in (1, 2, 3)] == [(32, 32), (16, 16), (8, 8)]
    assert g.node(g.modules["dense_block1"].output).shape[0] == (2 * k if bc else 16) + n * k


@pytest.mark.parametrize("name", ["densenet121", "densenet169", "densenet201"])
def test_paper_table_and_torchvision_are_the_same_network(name):
    [paper] = load_networks(f"specs/{name}.yaml")
    [tv] = load_networks(f"specs/torchvision/{name}.yaml")
    a, b = analyse(lower(paper)), analyse(lower(tv))
    assert (a.params, a.macs, a.weights) == (b.params, b.macs, b.weights)
    # the paper's spec ends in softmax (Table 1's "1000D fully-connected, softmax"): 1000 more elements
    assert a.activations == b.activations + 1000


def test_zoo_has_the_densenets_of_this_issue():
    names = {net.name for ref in ("specs/densenet.yaml", "specs/densenet_cifar.yaml") for net in load_networks(ref)}
    assert {"densenet121", "densenet169", "densenet201", "densenet264", "densenet40_k12",
            "densenet_bc100_k12"} <= names
    assert {p.stem for p in (ROOT / "specs" / "torchvision").glob("densenet*.yaml")} == \
        {"densenet121", "densenet161", "densenet169", "densenet201"}
