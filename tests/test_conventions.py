"""Issue #13 item 3: ``archspec stats --convention``. Each tool convention (fvcore, ptflops, thop) is
computed statically; here each tool is run on the generated module of the same spec, at batch 1 in
eval mode, and its total must equal archspec's figure exactly (the tools are deterministic).

The CI part runs two small networks at 32 px (ResNet-18: conv, BN, ReLU, max and adaptive pooling,
linear; MobileNetV3-Small: hardswish, hardsigmoid, squeeze-and-excitation, dropout); under ``-m heavy``
run the issue's networks at 224 px (ResNet-50, VGG-16, ViT-B/16) and more at small inputs (VGG-16 at
32 px, where the 7×7 adaptive pooling upsamples; EfficientNet-B0: SiLU, stochastic depth;
ConvNeXt-T: LayerNorm2d, permute, layer scale, GELU; the paper's AlexNet with its LRN; Swin-T at 100 px,
where the windows are padded, Swin-V2-T, MaxViT-T; and one builder of every other family). The
numbers of docs/counting.md are checked too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import sys
import warnings

import pytest

from archspec.analysis import compile_spec
from archspec.analysis.conventions import CONVENTIONS, TOOLS, TORCH_CLASSES, tally, tool_count
from archspec.ops import REGISTRY

from .conftest import ROOT

torch = pytest.importorskip("torch")


def _generated(ref: str):
    """The generated module of a spec (generated/ mirrors specs/), in eval mode."""
    path = ROOT / "generated" / ref.removeprefix("specs/").replace(".yaml", ".py")
    name = "archspec_conv_" + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.pop(name, None)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    return mod.build().eval()


def run_tool(tool: str, model, shape: tuple[int, ...]) -> int:
    """The total ``tool`` prints for ``model`` on one image of ``shape``, as its README calls it."""
    x = torch.randn(1, *shape)
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            if tool == "fvcore":
                from fvcore.nn import FlopCountAnalysis
                f = FlopCountAnalysis(model, (x,))
                f.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
                return int(f.total())
            if tool == "ptflops":
                from ptflops import get_model_complexity_info
                macs, _ = get_model_complexity_info(model, tuple(shape), as_strings=False,
                                                    print_per_layer_stat=False)
                assert macs is not None, "ptflops failed on the model"
                return int(macs)
            if tool == "thop":
                from thop import profile
                ops, _ = profile(model, inputs=(x,), verbose=False)
                return int(ops)
    finally:
        logging.disable(logging.NOTSET)
    raise ValueError(tool)


def _check(ref: str, shape: tuple[int, ...], tools=TOOLS) -> None:
    [(net, graph, st)] = compile_spec(ref, shape)
    model = _generated(ref)
    got, want = {}, {}
    for tool in tools:
        pytest.importorskip(tool)
        t = tally(graph, st, tool)
        assert not t.not_modelled, t.not_modelled
        want[tool] = t.total
        got[tool] = run_tool(tool, model, shape)
    assert got == want


def _id(v) -> str:
    return v.removeprefix("specs/").removesuffix(".yaml") if isinstance(v, str) else "x".join(map(str, v))


# ------------------------------------------------------------------------------- CI: small inputs
SMALL = [
    ("specs/torchvision/resnet18.yaml", (3, 32, 32)),
    ("specs/torchvision/mobilenet_v3_small.yaml", (3, 32, 32)),  # hardswish, SE, ReLU, dropout
]


@pytest.mark.parametrize("ref,shape", SMALL, ids=_id)
def test_tools_agree_at_small_inputs(ref, shape):
    _check(ref, shape)


# ----------------------------------------------------------------------------------------- heavy
HEAVY_NETS = [
    ("specs/torchvision/resnet50.yaml", (3, 224, 224)),
    ("specs/torchvision/vgg16.yaml", (3, 224, 224)),
    ("specs/torchvision/vit_b_16.yaml", (3, 224, 224)),        # nn.MultiheadAttention: OpDef.tool_counts
    ("specs/torchvision/convnext_tiny.yaml", (3, 224, 224)),   # LayerNorm2d: OpDef.tool_counts
    ("specs/resnet50.yaml", (3, 224, 224)),                    # the paper's ResNet-50 (docs/counting.md)
    ("specs/torchvision/resnet50.yaml", (3, 64, 64)),
    ("specs/torchvision/vgg16.yaml", (3, 32, 32)),             # 1×1 maps upsampled to 7×7 by the pool
    ("specs/torchvision/efficientnet_b0.yaml", (3, 64, 64)),   # SiLU, sigmoid, stochastic depth
    ("specs/alexnet.yaml", (3, 227, 227)),                     # the paper's LRN: OpDef.tool_counts
    ("specs/torchvision/swin_t.yaml", (3, 100, 100)),          # window attention on padded maps
    ("specs/torchvision/swin_v2_t.yaml", (3, 64, 64)),         # cosine attention, the cpb MLP
    ("specs/torchvision/maxvit_t.yaml", (3, 224, 224)),        # einsum attention (fvcore's numpy rounding)
]


@pytest.mark.heavy
@pytest.mark.parametrize("ref,shape", HEAVY_NETS, ids=_id)
def test_tools_agree(ref, shape):
    _check(ref, shape)


#: one builder of every other torchvision family, and paper specs with LRN and aux heads
SWEEP = [(f"specs/torchvision/{n}.yaml", (3, 64, 64)) for n in (
    "densenet121", "googlenet", "shufflenet_v2_x0_5", "squeezenet1_0", "mnasnet0_5", "regnet_y_400mf",
    "regnet_x_400mf", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_v2_s", "resnext50_32x4d")] + [
    ("specs/torchvision/inception_v3.yaml", (3, 299, 299)),
    ("specs/torchvision/alexnet.yaml", (3, 224, 224)),
    ("specs/torchvision/vgg11_bn.yaml", (3, 32, 32)),
    ("specs/torchvision/vit_b_32.yaml", (3, 224, 224)),
    ("specs/googlenet.yaml", (3, 224, 224)),                   # the paper's: LRN, aux heads (eval: dropped)
    ("specs/densenet121.yaml", (3, 64, 64)),
]


@pytest.mark.heavy
@pytest.mark.parametrize("ref,shape", SWEEP, ids=_id)
def test_tools_agree_on_every_family(ref, shape):
    _check(ref, shape)


# ------------------------------------------------------------------------------- static contracts
def _counted_or_not_modelled(names: list[str]) -> dict[str, set[str]]:
    """Each tool's not-modelled ops over these torchvision builders; a total is None exactly when
    some op is not modelled, and the reason says what to declare."""
    missing: dict[str, set[str]] = {}
    for name in names:
        [(net, graph, st)] = compile_spec(f"specs/torchvision/{name}.yaml")
        for tool in TOOLS:
            t = tally(graph, st, tool)
            ops = {op for _, op, _ in t.not_modelled}
            assert (t.total is None) == bool(ops)
            for _, op, why in t.not_modelled:
                assert "declare OpDef.tool_counts" in why
            if ops:
                missing.setdefault(tool, set()).update(ops)
    return missing


def test_builders_of_every_op_family_are_counted():
    assert _counted_or_not_modelled(["resnet50", "vit_b_16", "mobilenet_v3_small", "convnext_tiny", "swin_t",
                                     "swin_v2_t", "maxvit_t", "googlenet", "shufflenet_v2_x0_5"]) == {}


@pytest.mark.heavy
def test_every_torchvision_builder_is_counted():
    names = sorted(p.stem for p in (ROOT / "specs" / "torchvision").glob("*.yaml"))
    assert _counted_or_not_modelled(names) == {}


def test_macs_flops_and_torchvision_are_functions_of_the_macs():
    [(net, graph, st)] = compile_spec("specs/torchvision/resnet50.yaml")
    assert tally(graph, st, "macs").total == st.macs == 4_089_184_256
    assert tally(graph, st, "flops").total == 2 * st.macs
    assert tally(graph, st, "torchvision").total == 4.089  # resnet50's weights meta["_ops"]


def test_a_module_class_without_a_rule_is_not_modelled_not_zero():
    from archspec.ops.registry import Emit, NoAttrs, OpDef, register, REGISTRY as R
    name = "_conventions_test_op"
    R.pop(name, None)
    register(OpDef(name=name, attrs=NoAttrs, doc="test", infer=lambda a, i: i[0],
                   emit=lambda a, i, o: Emit(module="nn.PixelShuffle(2)")))
    try:
        for tool in TOOLS:
            nc = tool_count(tool, name, NoAttrs(), [(4, 8, 8)], (4, 8, 8))
            assert nc.value is None and "PixelShuffle" in nc.rule
    finally:
        R.pop(name)


def test_rules_are_keyed_by_torch_classes_not_by_ops():
    assert not set(TORCH_CLASSES) & set(REGISTRY)


# ------------------------------------------------------------------------------------------ CLI
def _cli(*args: str):
    from typer.testing import CliRunner

    from archspec.cli.main import app
    return CliRunner().invoke(app, ["stats", *args])


def test_cli_json_key_is_named_after_the_convention_and_macs_stays():
    r = _cli("specs/torchvision/resnet50.yaml", "specs/torchvision/vit_b_16.yaml", "--convention", "fvcore",
             "-f", "json")
    assert r.exit_code == 0, r.output
    rn, vit = json.loads(r.stdout)
    assert rn["macs"] == 4_089_184_256 and rn["fvcore_flops"] == 4_111_512_576
    assert vit["fvcore_flops"] == 16_867_412_736
    r = _cli("specs/torchvision/resnet50.yaml", "--convention", "thop", "-f", "csv")
    assert r.stdout.splitlines()[0].split(",")[5] == "thop MACs"
    assert r.stdout.splitlines()[1].split(",")[5] == "4133742592"


def test_cli_not_modelled_is_na_with_the_reason(monkeypatch):
    from archspec.analysis import conventions
    monkeypatch.delitem(conventions.TORCH_CLASSES, "ReLU")  # as if no rule knew nn.ReLU
    r = _cli("specs/torchvision/resnet18.yaml", "--convention", "ptflops", "-f", "json")
    assert r.exit_code == 0, r.output
    [obj] = json.loads(r.stdout)
    assert obj["ptflops_macs"] is None and obj["macs"] > 0
    assert {e["op"] for e in obj["ptflops_macs_not_modelled"]} == {"relu"}
    assert "ptflops is n/a: 17 layer(s) of op 'relu' (relu, …) not modelled: 'relu' emits nn.ReLU" in r.stderr
    r = _cli("specs/torchvision/resnet18.yaml", "--convention", "ptflops", "-f", "csv")
    assert r.stdout.splitlines()[1].split(",")[5] == "n/a"


def test_cli_rejects_an_unknown_convention():
    r = _cli("specs/torchvision/resnet50.yaml", "--convention", "gflops")
    assert r.exit_code == 2 and "Traceback" not in r.output


# ------------------------------------------------------------------------------ docs/counting.md
def test_counting_doc_numbers_are_what_archspec_gives():
    text = (ROOT / "docs" / "counting.md").read_text(encoding="utf-8")
    [(_, g, st)] = compile_spec("specs/torchvision/resnet50.yaml")
    [(_, gp, sp)] = compile_spec("specs/resnet50.yaml")
    for name in CONVENTIONS:
        v = tally(g, st, name).total
        assert (f"{v:.3f}" if name == "torchvision" else f"{v:,}") in text, (name, v)
    assert f"{sp.macs:,}" in text
