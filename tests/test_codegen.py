"""Generated PyTorch code: torchvision weight compatibility, agreement with the IR, determinism,
atomic writes, and that nothing from a spec is ever executed."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

from archspec.analysis import analyse, compile_spec
from archspec.cli.main import app
from archspec.codegen.writer import output_path
from archspec.errors import SpecError
from archspec.ir import lower
from archspec.load import expand_refs, load_networks

from .conftest import HEAVY, ROOT, torchvision_specs

GENERATED = ROOT / "generated"
TV_SPECS = torchvision_specs()
# the numerical parity of the largest builders takes minutes of CPU: make test-all runs it
TV_PARAMS = [pytest.param(p, id=p.stem, marks=[pytest.mark.heavy] if p.stem in HEAVY else [])
             for p in TV_SPECS]


def _code_key(path: Path) -> str:
    """The generated code without its module docstring and spec paths: equal for a table's column
    and its single-network file (specs/resnet.yaml:resnet50 and specs/resnet50.yaml), different
    for two networks that merely share a name (the paper's resnet50 and torchvision's)."""
    text = path.read_text(encoding="utf-8")
    text = text[text.index('"""', 3) + 3:]
    return re.sub(r"\(specs/[^)]*\)", "()", text)


def _zoo():
    """Every distinct network of the zoo once."""
    out, seen = [], set()
    for ref in expand_refs([str(ROOT / "specs")]):
        nets = load_networks(ref)
        for net in nets:
            path = output_path(net.file, GENERATED, net.name, len(nets) > 1)
            key = _code_key(path)
            if key not in seen:
                seen.add(key)
                out.append((net, path))
    return out


ZOO = _zoo()
# a paper table's column that is a large torchvision builder under its paper name (equal to it count
# for count: tests/test_paper_tables.py) and MaxViT-B/L: make test-all; the builder itself runs here
PAPER_HEAVY = {"convnext_b", "convnext_l", "maxvit_b", "maxvit_l"}
ZOO_PARAMS = [pytest.param(net, path, id=net.ref,
                           marks=[pytest.mark.heavy] if "torchvision" not in Path(net.file).parts
                           and net.name in HEAVY | PAPER_HEAVY else [])
              for net, path in ZOO]


def load_module(path: Path):
    name = "gen_" + "_".join(path.relative_to(GENERATED).with_suffix("").parts)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _randomise_bn(model: torch.nn.Module) -> None:
    """Random BN statistics, and random values in tensors torchvision initialises to zeros (ViT's
    class token and head), so that equal outputs compare something."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim and not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


def _parity_size(spec: Path, net) -> tuple[int, int]:
    """A small image keeps CI fast where the builder ends in an adaptive/global pool (at least
    torchvision's min_size: Inception-v3 needs 75×75; eval mode skips its AuxLogits, which needs 299);
    a network whose parameters depend on the input size (ViT's position embedding) is compared at
    its own size."""
    side = max(64, *torchvision.models.get_model_weights(spec.stem).DEFAULT.meta["min_size"])
    small = (net.input[0], side, side)
    ref = str(spec.relative_to(ROOT))
    try:
        [(_, _, st_small)] = compile_spec(ref, small)
    except SpecError:
        return net.input[1], net.input[2]
    [(_, _, st)] = compile_spec(ref)
    return (side, side) if st_small.params == st.params else (net.input[1], net.input[2])


@pytest.mark.parametrize("spec", TV_PARAMS)
def test_generated_loads_torchvision_weights_and_matches_outputs(spec):
    [net] = load_networks(str(spec.relative_to(ROOT)))
    mod = load_module(GENERATED / "torchvision" / f"{spec.stem}.py")
    torch.manual_seed(0)
    ref = torchvision.models.get_model(spec.stem, weights=None).eval()
    _randomise_bn(ref)
    with torch.device("meta"):  # no init: every tensor comes from torchvision's state_dict
        ours = mod.build(init_weights=False).eval()
    result = ours.load_state_dict(ref.state_dict(), strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert all(t.device.type == "cpu" for t in ours.state_dict().values())
    x = torch.randn(2, net.input[0], *_parity_size(spec, net))
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert a.shape == b.shape == (2, net.num_classes)
    assert (a - b).abs().max().item() <= 1e-5


@pytest.mark.parametrize("net,path", ZOO_PARAMS)
def test_generated_agrees_with_ir(net, path):
    """params, every named module's output shape (forward hooks) and FlopCounterMode / 2."""
    graph = lower(net)
    stats = analyse(graph)
    mod = load_module(path)
    with torch.device("meta"):  # shapes only: no memory, no compute
        model = mod.build(init_weights=False).eval()
    assert sum(p.numel() for p in model.parameters()) == stats.params_with_aux  # aux heads included
    shapes = {n.id: n.shape for n in graph.nodes()}
    shapes.update({p: graph.node(m.output).shape for p, m in graph.modules.items() if p and m.output})
    seen = {}
    def hook(mod_, inp, out, name):  # nn.MultiheadAttention returns (output, weights)
        seen[name] = tuple((out[0] if isinstance(out, tuple) else out).shape[1:])

    hooks = [m.register_forward_hook(lambda mod_, inp, out, name=name: hook(mod_, inp, out, name))
             for name, m in model.named_modules() if name in shapes]
    with FlopCounterMode(display=False) as counter:
        out = model(torch.empty((1, *net.input), device="meta"))
    for h in hooks:
        h.remove()
    assert tuple(out.shape[1:]) == stats.output
    assert len(seen) >= 3
    assert {k: v for k, v in seen.items()} == {k: shapes[k] for k in seen}
    assert counter.get_total_flops() == 2 * stats.macs


def test_generated_resnet152_is_compact_and_readable():
    text = (GENERATED / "torchvision" / "resnet152.py").read_text()
    assert text.count("\nclass ") == 2  # Bottleneck and ResNet152
    assert "class Bottleneck(nn.Module):" in text and "class ResNet152(nn.Module):" in text
    assert "*(Bottleneck(1024, 256) for _ in range(35))" in text
    assert len(text.splitlines()) < 150
    assert "import archspec" not in text and "from archspec" not in text
    imports = [l for l in text.splitlines() if l.startswith(("import ", "from "))]
    assert imports == ["from __future__ import annotations", "import torch", "from torch import Tensor, nn"]


def test_build_check_is_green_on_the_committed_zoo():
    r = CliRunner().invoke(app, ["build", "--check"])
    assert r.exit_code == 0, r.output
    assert "up to date" in r.stdout


def _build(args, env_extra=None, cwd=ROOT):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "archspec", "build", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def test_build_is_byte_identical_across_runs_and_hash_seeds(tmp_path):
    specs = ["specs/torchvision/resnet50.yaml", "specs/vgg.yaml", "specs/resnet.yaml:resnet34"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert _build([*specs, "-o", str(a)], {"PYTHONHASHSEED": "1"}).returncode == 0
    assert _build([*specs, "-o", str(b)], {"PYTHONHASHSEED": "2"}).returncode == 0
    files_a = sorted(p.relative_to(a) for p in a.rglob("*.py"))
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*.py"))
    assert len(files_a) == 17  # 8 modules, their train_*.py scripts and the output folder's archspec_train.py
    for f in files_a:
        assert (a / f).read_bytes() == (b / f).read_bytes()
    assert (a / "torchvision" / "resnet50.py").read_bytes() == (GENERATED / "torchvision" / "resnet50.py").read_bytes()


def test_failing_build_leaves_outdir_untouched(tmp_path):
    out = tmp_path / "out"
    assert _build(["specs/lenet5.yaml", "-o", str(out)]).returncode == 0
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*")}
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ninput: [1, 8, 8]\nnetwork:\n  - {conv: {out: 4, kernel: 9}}\n")
    r = _build(["specs/alexnet.yaml", "specs/lenet5.yaml", str(bad), "-o", str(out)])
    assert r.returncode == 1
    assert "collapses" in r.stderr and "Traceback" not in r.stderr
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*")} == before
    assert not list(out.rglob("*.tmp"))


INJECTIONS = {
    "name": 'name: evil\ninput: [3, 8, 8]\nnetwork:\n  "x):\\n    import os; os.system(\\"touch PWNED\\")  #": {conv: {out: 4, kernel: 3}}\n',
    "expr": "name: evil\ninput: [3, 8, 8]\nnetwork:\n  - {conv: {out: \"__import__('os').system('touch PWNED')\", kernel: 3}}\n",
    "block": "name: evil\ninput: [3, 8, 8]\nblocks:\n  b:\n    params: {__class__: 1}\n    body: [relu]\nnetwork: [b]\n",
}


@pytest.mark.parametrize("case", sorted(INJECTIONS))
def test_injection_payloads_are_rejected(case, tmp_path):
    spec = tmp_path / "evil.yaml"
    spec.write_text(INJECTIONS[case])
    r = _build([str(spec), "-o", str(tmp_path / "out")], cwd=tmp_path)
    assert r.returncode == 1, r.stdout
    lines = r.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2 and ": error: " in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "PWNED").exists() and not (ROOT / "PWNED").exists()
    assert not (tmp_path / "out").exists()


def test_strings_are_emitted_inert_and_running_the_module_creates_nothing(tmp_path):
    spec = tmp_path / "inert.yaml"
    spec.write_text(
        'name: inert\n'
        'title: \'Evil """ title {{ 7*7 }} \\\\ {% raw %} \'\n'
        'notes: \'"""; import os; os.system("touch PWNED"); """\'\n'
        'input: [3, 8, 8]\n'
        'num_classes: 5\n'
        'params: {mode: "x\'; import os; os.system #"}\n'
        'blocks:\n'
        '  b:\n'
        '    doc: \'"""doc""" {{ 7*7 }}\'\n'
        '    params: {width: int}\n'
        '    body:\n'
        '      - {conv: {out: width, kernel: 3, padding: 1}, when: "mode != \'x\'"}\n'
        'network:\n'
        '  body: {b: {width: 4}}\n'
        '  pool: global_avgpool\n'
        '  flat: flatten\n'
        '  fc: {linear: num_classes}\n')
    out = tmp_path / "out"
    r = _build([str(spec), "-o", str(out)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    text = (out / "inert.py").read_text()
    assert "49" not in text and "{{ 7*7 }}" in text
    compile(text, "inert.py", "exec")
    os.chdir(tmp_path)  # (conftest restores the working directory)
    spec_ = importlib.util.spec_from_file_location("inert", out / "inert.py")
    m = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(m)
    assert tuple(m.build()(torch.randn(1, 3, 8, 8)).shape) == (1, 5)
    assert m.__doc__.splitlines()[0] == "Evil \'\'\' title {{ 7*7 }} // {% raw %}"
    spec_ = importlib.util.spec_from_file_location("train_inert", out / "train_inert.py")
    t = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(t)  # the training script: importing it runs nothing
    assert t.__doc__.splitlines()[0] == "Train Evil \'\'\' title {{ 7*7 }} // {% raw %} (inert) with the recipe of its paper."
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inert.yaml", "out"]
    assert sorted(p.name for p in out.iterdir()) == ["archspec_train.py", "inert.py", "train_inert.py"]


def test_init_follows_the_spec():
    """AlexNet §5: N(0, 0.01) weights; biases 1 in conv2, conv4, conv5, fc6, fc7; 0 elsewhere."""
    mod = load_module(GENERATED / "alexnet.py")
    torch.manual_seed(0)
    m = mod.build()
    for name in ("conv2", "conv4", "conv5", "fc6.0", "fc7.0"):
        assert torch.equal(m.get_submodule(name).bias, torch.ones_like(m.get_submodule(name).bias))
    for name in ("conv1", "conv3", "fc8"):
        assert torch.equal(m.get_submodule(name).bias, torch.zeros_like(m.get_submodule(name).bias))
    std = m.get_submodule("fc6.0").weight.std().item()
    assert abs(std - 0.01) < 0.0005
    assert abs(mod.build(init_weights=False).get_submodule("fc6.0").weight.std().item() - 0.01) > 0.001


def test_bad_init_is_one_error(tmp_path):
    spec = tmp_path / "i.yaml"
    spec.write_text("name: i\ninput: [3, 8, 8]\ninit:\n  conv: {weight: {kaiming_normal: {mode: fan_sideways}}}\n"
                    "network:\n  c: {conv: {out: 4, kernel: 3}}\n")
    r = _build([str(spec), "-o", str(tmp_path / "out")], cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.splitlines()[0].endswith(
        "i.yaml:4:42: error: init.conv.weight.kaiming_normal.mode: kaiming_normal.mode is one of fan_in, "
        "fan_out, got 'fan_sideways'")


def test_init_of_an_unknown_layer_is_caught_by_validate(tmp_path):
    spec = tmp_path / "i.yaml"
    spec.write_text("name: i\ninput: [3, 8, 8]\ninit:\n  layers: {fcc: {bias: 1}}\nnetwork:\n"
                    "  c: {conv: {out: 4, kernel: 3}}\n  fc: [global_avgpool, flatten, {linear: 3}]\n")
    r = CliRunner().invoke(app, ["validate", str(spec)])
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [
        f"{spec}:4:12: error: init.layers.fcc: init names the layer 'fcc', which has no weights in this network"]


def test_forked_rendering_equals_one_process(tmp_path, monkeypatch):
    """build --all / --check render many spec files in forked workers: the same outputs, in order."""
    from archspec.codegen import writer

    refs = sorted(str(p) for p in (ROOT / "specs" / "torchvision").glob("resnet*.yaml"))[:4] + \
        sorted(str(p) for p in (ROOT / "specs" / "torchvision").glob("vgg1*.yaml"))[:4]
    assert len(refs) == 8
    forked = writer.render_specs(refs, tmp_path)
    monkeypatch.setattr(writer, "_mp_methods", lambda: [])
    single = writer.render_specs(refs, tmp_path)
    assert [(o.path, o.kind, o.text) for o in forked] == [(o.path, o.kind, o.text) for o in single]
    assert [o.source.stats.params for o in forked if o.source] == [o.source.stats.params for o in single if o.source]
    # a failing file among many: the one-process error, the first in order
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ninput: [3, 8, 8]\nnetwork: [{cnov: {out: 4}}]\n")
    with pytest.raises(SpecError) as e:
        writer.render_specs(refs + [str(bad)], tmp_path)
    assert e.value.format().startswith(f"{bad}:3:")
