"""ConvNeXt (issue #11): torchvision's convnext_tiny ... convnext_large and the paper's Table 1.

The generic torchvision tests (tests/test_torchvision_parity.py, tests/test_codegen.py,
tests/test_torchvision_meta.py) pick the four builders up; this file checks what is specific to
ConvNeXt: the stochastic-depth rate of every block, that the generated code has one CNBlock class,
the outputs with the layer scales made visible, the paper's numbers and the recipe."""

import ast
import json
import re

import pytest
import torch
import torchvision
from typer.testing import CliRunner

from archspec.analysis import compile_spec
from archspec.cli.main import app

from .conftest import ROOT
from .test_codegen import GENERATED, load_module

NAMES = ["convnext_tiny", "convnext_small", "convnext_base", "convnext_large"]
DEPTHS = {"convnext_tiny": [3, 3, 9, 3], "convnext_small": [3, 3, 27, 3], "convnext_base": [3, 3, 27, 3],
          "convnext_large": [3, 3, 27, 3]}
# Table 1 of Liu et al. 2022 (ImageNet-1K trained, 224²): column -> (builder, printed params, printed FLOPs)
TABLE_1 = {"T": ("convnext_tiny", "28M", "4.5G"), "S": ("convnext_small", "50M", "8.7G"),
           "B": ("convnext_base", "89M", "15.4G"), "L": ("convnext_large", "198M", "34.4G")}


@pytest.mark.parametrize("name", NAMES)
def test_stochastic_depth_probabilities_equal_torchvision(name):
    """sd_prob = stochastic_depth_prob · block_id / (total_blocks − 1) over all blocks of all stages:
    the spec writes it as an expression of the repeat index, the generated code holds the values,
    which must be torchvision's floats exactly (read from its built StochasticDepth modules)."""
    with torch.device("meta"):
        ref = torchvision.models.get_model(name, weights=None)
        ours = load_module(GENERATED / "torchvision" / f"{name}.py").build(init_weights=False)
    theirs = {n: (m.p, m.mode) for n, m in ref.named_modules() if isinstance(m, torchvision.ops.StochasticDepth)}
    mine = {n: (m.p, m.mode) for n, m in ours.named_modules() if type(m).__name__ == "StochasticDepth"}
    assert len(theirs) == sum(DEPTHS[name])
    assert mine == theirs  # the same module names, probabilities (exact floats) and mode 'row'
    rates = [p for p, _ in theirs.values()]
    assert rates[0] == 0.0 and rates == sorted(rates)
    assert rates[-1] == pytest.approx({"convnext_tiny": 0.1, "convnext_small": 0.4}.get(name, 0.5))


def test_the_rate_is_an_expression_of_the_spec_not_a_list():
    text = (ROOT / "specs" / "blocks" / "torchvision_convnext.yaml").read_text()
    assert 'sd_prob: "stochastic_depth_prob * (sum([depths[k] for k in range(j)]) + i) / (total_blocks - 1.0)"' in text
    for name in NAMES:
        spec = (ROOT / "specs" / "torchvision" / f"{name}.yaml").read_text()
        assert "sd_prob" not in spec and "0.0058" not in spec


@pytest.mark.parametrize("path", [GENERATED / "torchvision" / f"{n}.py" for n in NAMES]
                         + [GENERATED / "convnext" / f"convnext_{c.lower()}.py" for c in TABLE_1],
                         ids=lambda p: p.stem)
def test_generated_code_has_one_cnblock_class(path):
    """Like torchvision's convnext.py: one CNBlock class (not one per stage or per rate), one stem
    and one downsampling class, the stages as nn.Sequential of CNBlock(dim, sd_prob=...) calls."""
    text = path.read_text()
    classes = re.findall(r"^class (\w+)\(", text, flags=re.M)
    assert classes.count("CNBlock") == 1 and not [c for c in classes if re.fullmatch(r"CNBlock\d+", c)]
    assert sorted(c for c in classes if c not in ("Permute", "StochasticDepth", "LayerNorm2d")
                  and not c.startswith("Convnext")) == ["CNBlock", "Conv2dNormActivation", "Downsample"]
    depths = DEPTHS["convnext_tiny"] if path.stem in ("convnext_tiny", "convnext_t") else [3, 3, 27, 3]
    assert len(re.findall(r"^ {16}CNBlock\(", text, flags=re.M)) == sum(depths)
    assert text.count("Downsample(") == 3 + 1  # three calls and the class statement
    assert "Permute([0, 2, 3, 1])" in text and "nn.LayerNorm(in_channels, eps=1e-06)" in text


def test_tiny_outputs_equal_torchvision_with_the_layer_scales_made_visible():
    """torchvision initialises each layer scale to 1e-6, which hides the blocks in an output
    comparison; with random layer scales, norms and biases, the generated convnext_tiny and
    torchvision's still agree after a strict state_dict load."""
    g = torch.Generator().manual_seed(0)
    with torch.device("meta"):  # no init on either side: every tensor is drawn here
        ref = torchvision.models.convnext_tiny(weights=None)
        ours = load_module(GENERATED / "torchvision" / "convnext_tiny.py").build(init_weights=False)
    ref = ref.to_empty(device="cpu").eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("layer_scale"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.ndim == 1:  # biases, LayerNorm weights and biases
                p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if "norm" in name or ".0.1." in name
                                                                     else 0.0))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    ours.load_state_dict(ref.state_dict(), strict=True, assign=True)
    ours.eval()
    x = torch.randn(2, 3, 32, 32, generator=g)  # torchvision's min_size
    with torch.no_grad():
        a, b = ours(x), ref(x)
        stage = ours.features[:2](x), ref.features[:2](x)
        skip = ref.features[:1](x)
    assert (stage[0] - stage[1]).abs().max().item() <= 1e-5
    assert (stage[1] - skip).abs().mean() > 0.01  # the blocks contribute
    assert (a - b).abs().max().item() <= 1e-5


def test_init_is_torchvision_s():
    """trunc_normal(std 0.02) on conv and linear weights, zero biases (ConvNeXt.__init__); LayerNorms
    at ones and zeros and layer scales at 1e-6 (as constructed, like CNBlock's)."""
    torch.manual_seed(0)
    mod = load_module(GENERATED / "torchvision" / "convnext_tiny.py")
    with torch.device("meta"):
        net = mod.build(init_weights=False)
    head = net.features[:2].to_empty(device="cpu")  # the stem and the first stage, for real
    net.reset_parameters()  # a no-op on the meta tensors of the rest
    for m in head.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            assert not m.bias.any()
            assert m.weight.abs().max() <= 2.0 and 0.01 < m.weight.std() < 0.03
    block = mod.CNBlock(96)
    assert torch.equal(block.layer_scale, torch.full((96, 1, 1), 1e-6))
    assert block.stochastic_depth.p == 0.0 and block.stochastic_depth.mode == "row"
    norm = block.block[2]
    assert isinstance(norm, torch.nn.LayerNorm) and norm.eps == 1e-6
    assert torch.equal(norm.weight, torch.ones(96)) and not norm.bias.any()
    stem = mod.Conv2dNormActivation(3, 96)
    assert type(stem[1]).__name__ == "LayerNorm2d" and stem[1].eps == 1e-6
    assert stem[0].kernel_size == stem[0].stride == (4, 4) and stem[0].bias is not None


@pytest.mark.parametrize("column", sorted(TABLE_1))
def test_table_1_columns_are_the_torchvision_networks(column):
    builder, _, _ = TABLE_1[column]
    [(net, _, paper)] = compile_spec(f"specs/convnext.yaml:{column}")
    [(_, _, tv)] = compile_spec(f"specs/torchvision/{builder}.yaml")
    assert net.name == f"convnext_{column.lower()}"
    assert (paper.params, paper.macs, paper.output) == (tv.params, tv.macs, tv.output)


def test_table_1_check():
    """Table 1's params and FLOPs (multiply-accumulates: archspec's macs) at 224²: every printed
    number matches within its printed precision, except ConvNeXt-T's 28M, an erratum (28.59M)."""
    r = CliRunner().invoke(app, ["check", "specs/convnext.yaml", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {(x["spec"], x["metric"]): x for x in json.loads(r.stdout)}
    assert len(rows) == 8
    for column, (_, params, flops) in TABLE_1.items():
        ref = f"specs/convnext.yaml:{column}"
        assert rows[(ref, "macs")]["status"] == "pass"
        assert rows[(ref, "params")]["status"] == ("erratum" if column == "T" else "pass")
    text = (ROOT / "specs" / "convnext.yaml").read_text()
    assert "derived: 28_589_128" in text and "multiply-accumulates" in text


def test_train_recipe_is_appendix_a1():
    text = (GENERATED / "torchvision" / "train_convnext_tiny.py").read_text()
    recipe = ast.literal_eval(re.search(r"^RECIPE = (\{.*?\n\})", text, flags=re.M | re.S).group(1))
    assert {k: recipe[k] for k in ("optimizer", "lr", "weight_decay", "batch_size", "epochs",
                                   "warmup_epochs", "label_smoothing")} == {
        "optimizer": "adamw", "lr": 0.004, "weight_decay": 0.05, "batch_size": 4096, "epochs": 300,
        "warmup_epochs": 20, "label_smoothing": 0.1}
    assert (recipe["schedule"], recipe["betas"], recipe["eval_resize"]) == ("cosine", [0.9, 0.999], 256)
