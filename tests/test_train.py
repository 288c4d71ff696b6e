"""The emitted training scripts (generated/**/train_*.py), the training runtime they call into
(generated/**/archspec_train.py, one per folder) and the ``train:`` section of specs.

Budget (2 CPU cores): the LeNet-5 digits run ~10 s, the SIGKILL/resume test ~15 s (two
subprocesses), the torchrun test ~20 s (two ranks), every script's ``--benchmark 2`` ~40 s in-process.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from archspec.cli.main import app
from archspec.codegen.writer import render_specs, stale_outputs, write_outputs
from archspec.load import load_networks

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "generated"
SCRIPTS = sorted(GENERATED.rglob("train_*.py"))
LENET = GENERATED / "train_lenet5.py"
# The flags the README documents for a fast LeNet-5 run on the digits (the paper's recipe is SDLM at
# batch 1, lr 0.0005 for 20 epochs: see test_lenet5_paper_recipe_is_the_default and tests/test_sdlm.py).
FAST = ["--optimizer", "sgd", "--data", "digits", "--batch-size", "16", "--lr", "0.05", "--momentum", "0.9", "--epochs", "10"]


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(f"_train_{path.parent.name}_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def runtime_of(mod):
    """(the runtime module beside a loaded script, the script's network as the runtime takes it)."""
    return mod.load_runtime(), mod.network()


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


# ------------------------------------------------------------------------------ the recipes
def test_every_network_has_a_training_script():
    models = {p.with_name(p.name[len("train_"):]) for p in SCRIPTS}
    all_models = {p for p in GENERATED.rglob("*.py")
                  if not p.name.startswith("train_") and p.name != "archspec_train.py"}
    assert models == all_models


def test_one_runtime_for_the_output_folder_and_short_scripts():
    """Issue #14: generated/ holds one runtime, at its top, and every script in every subfolder
    loads that one; a script is its recipe as data and a call into it."""
    runtimes = sorted(GENERATED.rglob("archspec_train.py"))
    assert runtimes == [GENERATED / "archspec_train.py"]
    assert {(p.parent / load_script_constant(p, "RUNTIME")).resolve() for p in SCRIPTS} == {runtimes[0].resolve()}
    text = runtimes[0].read_text()
    assert "{{" not in text and "{%" not in text
    assert imports(text) == ["__future__", "argparse", "contextlib", "dataclasses", "importlib.util", "json",
                             "math", "os", "pathlib", "pickle", "random", "signal", "sys", "time", "torch",
                             "torch.nn.functional"]  # torchvision, sklearn, PIL, matplotlib: where used
    for p in SCRIPTS:
        text = p.read_text()
        assert len(text.splitlines()) < 200, p  # ~125; a piecewise schedule of 20 steps: 147
        assert imports(text) == ["__future__", "hashlib", "importlib.util", "pathlib", "sys"], p


def load_script_constant(path: Path, name: str):
    """A top-level constant of a script, read without running it."""
    import ast
    for n in ast.parse(path.read_text()).body:
        if isinstance(n, ast.Assign) and [t.id for t in n.targets if isinstance(t, ast.Name)] == [name]:
            return ast.literal_eval(n.value)
    raise KeyError(name)


def imports(source: str) -> list[str]:
    """The modules a file imports at its top level."""
    import ast
    tree = ast.parse(source)
    return sorted({a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
                  | {n.module for n in tree.body if isinstance(n, ast.ImportFrom)})


def test_the_script_finds_its_own_runtime(tmp_path, monkeypatch, capsys):
    """Whatever the working directory and sys.path: the runtime of the script's folder, one module
    per folder; a runtime of another interface, or none, is one error line."""
    import shutil
    for d in ("a", "b", "cwd"):
        (tmp_path / d).mkdir()
    for d in ("a", "b"):
        for f in ("lenet5.py", "train_lenet5.py", "archspec_train.py"):
            shutil.copy(GENERATED / f, tmp_path / d / f)
    monkeypatch.chdir(tmp_path / "cwd")
    (tmp_path / "cwd" / "archspec_train.py").write_text("raise SystemExit('the wrong runtime')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "cwd"))
    a, b = load_script(tmp_path / "a" / "train_lenet5.py"), load_script(tmp_path / "b" / "train_lenet5.py")
    ra, rb = a.load_runtime(), b.load_runtime()
    assert Path(ra.__file__) == (tmp_path / "a" / "archspec_train.py").resolve() and ra is not rb and ra is a.load_runtime()
    assert Path(rb.load_model_module(b.network()).__file__) == (tmp_path / "b" / "lenet5.py").resolve()
    # python -m from another folder: sys.path[0] is that folder, which has an archspec_train.py too
    r = subprocess.run([sys.executable, "-m", "a.train_lenet5", "--help"], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0 and r.stdout.startswith("usage: train_lenet5.py"), r.stderr
    from archspec.codegen.train import RUNTIME_INTERFACE as now
    text = (tmp_path / "b" / "archspec_train.py").read_text().replace(f"\nINTERFACE = {now}\n", f"\nINTERFACE = {now + 1}\n")
    (tmp_path / "b" / "archspec_train.py").write_text(text)
    c = load_script(tmp_path / "b" / "train_lenet5.py")
    monkeypatch.delitem(sys.modules, rb.__name__)  # as in a new process
    with pytest.raises(SystemExit) as e:
        c.main(["--help"])
    assert e.value.code == 2 and capsys.readouterr().err.splitlines() == [
        f"train_lenet5.py: error: {tmp_path / 'b' / 'archspec_train.py'} is the runtime of another archspec "
        f"version (interface {now + 1}, this script's is {now}); build the script and its runtime together"]
    (tmp_path / "b" / "archspec_train.py").unlink()
    del sys.modules[rb.__name__]
    with pytest.raises(SystemExit) as e:
        c.main([])
    assert e.value.code == 2 and capsys.readouterr().err.splitlines() == [
        f"train_lenet5.py: error: the training runtime {tmp_path / 'b' / 'archspec_train.py'} is missing "
        "(copy the whole folder)"]


def test_lenet5_paper_recipe_is_the_default():
    mod = load_script(LENET)
    rt, net = runtime_of(mod)
    r = mod.RECIPE
    assert (r["data"], r["optimizer"], r["epochs"], r["batch_size"], r["lr"]) == ("digits", "sdlm", 20, 1, 0.0005)
    assert (r["mu"], r["hessian_samples"]) == (0.02, 500)
    assert r["schedule"] == "piecewise"  # LeCun et al. 1998, §III: 2, 3, 3, 4 passes, then 0.00001
    assert r["piecewise"] == [[2, 0.0005], [3, 0.0002], [3, 0.0001], [4, 0.00005], [8, 0.00001]]
    args = rt.parse_args(net, [])
    s = rt.LRSchedule(net, args, steps_per_epoch=10, total_steps=200)
    lrs = [args.lr * s.factor(e * 10) for e in range(20)]
    assert lrs == pytest.approx([0.0005] * 2 + [0.0002] * 3 + [0.0001] * 3 + [0.00005] * 4 + [0.00001] * 8)
    # --lr scales the piecewise values
    args = rt.parse_args(net, ["--lr", "0.05"])
    assert args.lr * rt.LRSchedule(net, args, 10, 200).factor(25) == pytest.approx(0.02)


def test_optimizers_follow_the_flags():
    rt, net = runtime_of(load_script(LENET))
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    cpu = torch.device("cpu")
    sgd = rt.make_optimizer(rt.parse_args(net, ["--optimizer", "sgd", "--momentum", "0.9", "--nesterov",
                                                "--weight-decay", "0.1"]), model, cpu)
    assert type(sgd) is torch.optim.SGD and sgd.defaults["nesterov"] and sgd.param_groups[0]["weight_decay"] == 0.1
    assert len(sgd.param_groups) == 1  # SGD: decay on every parameter, as the papers do
    adamw = rt.make_optimizer(rt.parse_args(net, ["--optimizer", "adamw", "--weight-decay", "0.05", "--eps", "1e-6"]),
                               model, cpu)
    assert type(adamw) is torch.optim.AdamW and adamw.defaults["eps"] == 1e-6
    assert [len(g["params"]) for g in adamw.param_groups] == [1, 3]  # no decay on biases and BN
    assert [g["weight_decay"] for g in adamw.param_groups] == [0.05, 0.0]
    rms = rt.make_optimizer(rt.parse_args(net, ["--optimizer", "rmsprop", "--alpha", "0.9", "--eps", "1.0"]), model,
                            cpu)
    assert type(rms) is torch.optim.RMSprop and (rms.defaults["alpha"], rms.defaults["eps"]) == (0.9, 1.0)


def test_schedules():
    rt, net = runtime_of(load_script(LENET))

    def lr_at(flags, steps, spe=10, total=100):
        args = rt.parse_args(net, ["--lr", "0.1", *flags])
        s = rt.LRSchedule(net, args, spe, total)
        return [args.lr * s.factor(k) for k in steps]
    # DenseNet: ÷10 at 50 % and 75 % of the run
    assert lr_at(["--schedule", "multistep", "--milestones", "0.5", "0.75"], [49, 50, 74, 75]) == pytest.approx(
        [0.1, 0.01, 0.01, 0.001])
    # CIFAR ResNet: milestones in iterations
    assert lr_at(["--schedule", "multistep", "--schedule-unit", "iterations", "--milestones", "32", "48"],
                 [31, 32, 48]) == pytest.approx([0.1, 0.01, 0.001])
    assert lr_at(["--schedule", "step", "--step-size", "3", "--gamma", "0.5"], [29, 30, 60]) == pytest.approx(
        [0.1, 0.05, 0.025])
    # warm-up from lr/100, then cosine to min-lr
    assert lr_at(["--schedule", "cosine", "--warmup-epochs", "2", "--min-lr", "0.001"], [0, 10, 20, 60, 100]) == \
        pytest.approx([0.001, 0.0505, 0.1, 0.001 + 0.099 * 0.5 * (1 + math.cos(math.pi * 0.5)), 0.001])
    args = rt.parse_args(net, ["--schedule", "plateau", "--patience", "1"])
    s = rt.LRSchedule(net, args, 10, 100)
    for loss in (1.0, 0.9, 0.95, 0.95):  # two epochs without improvement > patience 1: ÷10
        s.epoch_end({"val_loss": loss, "train_top1": 0.0})
    assert s.factor(50) == pytest.approx(0.1)
    s.epoch_end({"val_loss": 0.5, "train_top1": 0.0})
    assert s.factor(60) == pytest.approx(0.1) and \
        s.state_dict() == {"plateau": pytest.approx(0.1), "best": 0.5, "bad": 0, "decays": 1}
    # NIN (§4.1): on the training accuracy (higher is better), at most twice
    args = rt.parse_args(net, ["--schedule", "plateau", "--patience", "0", "--monitor", "train_top1",
                               "--max-decays", "2"])
    s = rt.LRSchedule(net, args, 10, 100)
    lrs = []
    for acc in (50.0, 60.0, 60.0, 70.0, 65.0, 70.0, 69.0, 68.0):
        s.epoch_end({"val_loss": 1.0, "train_top1": acc})
        lrs.append(s.factor(0))
    assert lrs == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01])
    assert s.state_dict()["decays"] == 2
    s.load_state_dict({"plateau": 0.1, "best": 1.0, "bad": 0})  # a checkpoint written before max_decays
    assert s.decays == 0


def test_nin_recipe_decays_twice_on_the_training_accuracy(tmp_path):
    """Issue #12: NIN's §4.1 lowers the rate by 10 when the training accuracy stops improving,
    twice; the authors' solver runs 120,000 iterations of 128. A real run follows the rule: the lr
    of each epoch's row is the plateau's, decided on the previous rows' train_top1."""
    nin = load_script(GENERATED / "train_nin_cifar10.py").RECIPE
    assert (nin["schedule"], nin["monitor"], nin["max_decays"], nin["gamma"]) == ("plateau", "train_top1", 2, 0.1)
    assert (nin["iterations"], nin["batch_size"]) == (120000, 128)
    # a frozen network (lr 1e-12) on random images: its training accuracy wanders, so the rule decides
    # (patience 0: a decay after any epoch that does not improve on the best, at most once)
    mod = load_script(LENET)
    mod.main(["--optimizer", "sgd", "--data", "synthetic", "--synthetic-size", "64", "--batch-size", "16", "--lr", "1e-12",
              "--epochs", "4", "--schedule", "plateau", "--monitor", "train_top1", "--patience", "0",
              "--max-decays", "1", "--out-dir", str(tmp_path / "run")])
    rows = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    best, lr, want = -1.0, 1e-12, []
    for r in rows:
        want.append(lr)
        if r["train_top1"] > best * (1 + 1e-4):
            best = r["train_top1"]
        elif lr == 1e-12:
            lr = 1e-13
    assert [r["lr"] for r in rows] == pytest.approx(want, rel=1e-9)
    assert want[-1] == 1e-13  # it did decay (seeded: epoch 2 scores below epoch 1)


def test_recipes_are_inherited_and_set_per_column():
    r50 = load_networks(str(ROOT / "specs/resnet50.yaml"))[0].train
    assert (r50.source, r50.iterations, r50.schedule.type, r50.augment.scale) == (
        "He et al. 2015, §3.4", 600000, "plateau", (256, 480))
    cifar = {n.name: n.train for n in load_networks(str(ROOT / "specs/resnet_cifar.yaml"))}
    assert cifar["resnet110_cifar"].warmup_epochs == 1 and cifar["resnet20_cifar"].warmup_epochs == 0
    assert cifar["resnet110_cifar"].schedule.milestones == [32000, 48000]
    assert load_networks(str(ROOT / "specs/resnet110_cifar.yaml"))[0].train.warmup_epochs == 1
    # ResNeXt overrides the torchvision base it extends
    rx = load_networks(str(ROOT / "specs/resnext50_32x4d.yaml"))[0].train
    assert (rx.source, rx.epochs) == ("Xie et al. 2017, §4", 100)
    wrn = load_networks(str(ROOT / "specs/wrn28_10.yaml"))[0].train
    assert (wrn.nesterov, wrn.schedule.gamma, wrn.schedule.milestones, wrn.epochs) == (True, 0.2, [60, 120, 160], 200)


def test_extends_merges_train_by_key(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "name: b\ninput: [3, 8, 8]\nnetwork: [global_avgpool, flatten, {linear: num_classes}]\n"
        "train: {lr: 0.5, epochs: 7, schedule: {type: step, step_size: 2}}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nname: c\ntrain: {epochs: 3}\n")
    t = load_networks(str(tmp_path / "child.yaml"))[0].train
    assert (t.lr, t.epochs, t.schedule.type, t.schedule.step_size) == (0.5, 3, "step", 2)


def test_spec_without_train_gets_the_generic_recipe(tmp_path):
    (tmp_path / "specs").mkdir()
    spec = tmp_path / "specs" / "tiny.yaml"
    spec.write_text("name: tiny\ninput: [3, 8, 8]\nnum_classes: 3\n"
                    "network: {c: {conv: {out: 4, kernel: 3}}, p: global_avgpool, f: flatten, fc: {linear: num_classes}}\n")
    outs = render_specs([str(spec)], tmp_path / "out")
    assert [o.path.name for o in outs] == ["tiny.py", "train_tiny.py", "archspec_train.py"]
    text = outs[1].text
    assert "Recipe: archspec's generic recipe (the spec has no train: section)" in text
    assert '"optimizer": "sgd",' in text and '"lr": 0.1,' in text and '"epochs": 90,' in text
    assert 'MODEL_FILE = "tiny.py"' in text and "INPUT_SHAPE = (3, 8, 8)" in text and "NUM_CLASSES = 3" in text
    write_outputs(outs)
    mod = load_script(tmp_path / "out" / "train_tiny.py")
    res = mod.main(["--benchmark", "2", "--warmup-steps", "1", "--batch-size", "2", "--no-compile"])
    assert res["batch_size"] == 2 and res["input"] == [3, 8, 8] and res["images_per_s"] > 0


def test_spec_prose_cannot_escape_the_docstring(tmp_path):
    import ast
    spec = tmp_path / "q.yaml"
    spec.write_text("name: q\ntitle: 'a \"\"\" b \\ c'\ninput: [3, 8, 8]\n"
                    "network: [global_avgpool, flatten, {linear: 3}]\n"
                    "train: {source: 'x\"\"\"; import os'}\n")
    out = [o for o in render_specs([str(spec)], tmp_path / "out") if o.kind == "train"][0]
    doc = ast.get_docstring(ast.parse(out.text))
    assert doc.startswith("Train a ''' b / c (q)") and "Recipe: x'''; import os" in doc


def test_build_check_covers_training_scripts(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the header names the spec as given: specs/lenet5.yaml
    outs = render_specs(["specs/lenet5.yaml"], tmp_path)
    write_outputs(outs)
    assert stale_outputs(outs) == []
    script = tmp_path / "train_lenet5.py"
    assert script.read_bytes() == LENET.read_bytes()  # byte-identical with the checked-in files
    runtime = tmp_path / "archspec_train.py"
    assert runtime.read_bytes() == (GENERATED / "archspec_train.py").read_bytes()
    runtime.write_text(runtime.read_text().replace("def fit(", "def fit_(", 1))
    assert stale_outputs(outs) == [runtime]
    assert write_outputs(outs) == [runtime]
    script.write_text(script.read_text() + "# edited\n")
    assert stale_outputs(outs) == [script]
    assert write_outputs(outs) == [script]
    assert not list(tmp_path.glob(".*.tmp"))


# ------------------------------------------------------------------------------- spec errors
HEAD = "name: t\ninput: [3, 8, 8]\nnetwork: [global_avgpool, flatten, {linear: num_classes}]\n"


@pytest.mark.parametrize("body, line, col, path, message, hint", [
    ("train:\n  optimzer: sgd\n", 6, 3, "train", "unknown key 'optimzer'", "did you mean 'optimizer'?"),
    ("train:\n  optimizer: lbfgs\n", 6, 14, "train.optimizer", "input should be 'sgd', 'adam', 'adamw', 'rmsprop' or 'sdlm'", None),
    ("train:\n  schedule: {type: step, step_sise: 3}\n", 6, 26, "train.schedule", "unknown key 'step_sise'",
     "did you mean 'step_size'?"),
    ("train:\n  lr: -1\n", 6, 7, "train.lr", "greater than 0", None),
    ("train:\n  lr: .inf\n", 6, 7, "train.lr", "finite number", None),
    ("train:\n  schedule: {type: step}\n", 6, 13, "train.schedule", "a step schedule needs step_size", None),
    ("train:\n  epochs: 3\n  iterations: 4\n", 6, 3, "train", "give epochs or iterations, not both", None),
    ("columns:\n  a: {train: {epohcs: 3}}\n", 6, 15, "columns.a.train", "unknown key 'epohcs'", "did you mean 'epochs'?"),
])
def test_train_errors(tmp_path, body, line, col, path, message, hint):
    spec = tmp_path / "spec.yaml"
    spec.write_text(HEAD + "num_classes: 3\n" + body)
    result = CliRunner().invoke(app, ["stats", str(spec)])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"{spec}:{line}:{col}: error: {path}: "), lines
    assert message in lines[0]
    if hint:
        assert lines[1] == f"  hint: {hint}"
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- running scripts
def test_lenet5_digits_reaches_95_percent(tmp_path):
    mod = load_script(LENET)
    summary = mod.main(FAST + ["--out-dir", str(tmp_path / "run"), "--metrics-json", str(tmp_path / "m.json")])
    assert summary["val_top1"] >= 95.0, summary
    assert json.loads((tmp_path / "m.json").read_text())["val_top1"] == summary["val_top1"]
    rows = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 11))
    assert (tmp_path / "run/curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    state = torch.load(tmp_path / "run/checkpoint.pt", weights_only=True)
    assert (state["epoch"], state["step"]) == (10, 10 * (1437 // 16))


def test_bad_flags_and_data_are_one_line(tmp_path, capsys):
    mod = load_script(LENET)
    for argv, text in ((["--optimizer", "lbfgs"], "argument --optimizer: invalid choice"),
                       (["--data", f"imagefolder:{tmp_path}"], "no train/ folder"),
                       (["--data", f"cifar10:{tmp_path}"], "no data_batch_1"),
                       (["--data", "mnist"], "use synthetic, digits"),
                       (["--resume", "--out-dir", str(tmp_path)], "no checkpoint at")):
        with pytest.raises(SystemExit) as e:
            mod.main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("train_lenet5.py: error: ") and text in err[0], err


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path, capsys, monkeypatch):
    mod = load_script(LENET)
    rt = mod.load_runtime()
    real, calls = rt.loss_fn, []

    def poisoned(*a):
        loss, main = real(*a)
        calls.append(1)
        return (loss * float("nan"), main) if len(calls) == 200 else (loss, main)
    monkeypatch.setattr(rt, "loss_fn", poisoned)
    with pytest.raises(SystemExit) as e:  # 179 steps per epoch at batch 8: step 199 is in epoch 2
        mod.main(["--optimizer", "sgd", "--data", "digits", "--batch-size", "8", "--lr", "0.01", "--epochs", "3",
                  "--out-dir", str(tmp_path), "--no-plot"])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "the loss is not finite at step 199 (epoch 2)" in err and "checkpoint.pt" in err
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    argv = ["--optimizer", "sgd", "--data", "digits", "--batch-size", "4", "--lr", "0.02", "--momentum", "0.9", "--epochs", "4",
            "--deterministic", "--no-plot"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    p = subprocess.Popen([sys.executable, str(LENET), *argv, "--out-dir", str(killed)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (killed / "checkpoint.pt").exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert p.poll() is None, p.stderr.read().decode()  # still training epoch 2
        p.send_signal(signal.SIGKILL)
        p.wait()
    finally:
        if p.poll() is None:
            p.kill()
    done = len((killed / "metrics.jsonl").read_text().splitlines())
    assert 1 <= done < 4
    assert torch.load(killed / "checkpoint.pt", weights_only=True)["epoch"] == done  # whole, never half-written
    subprocess.run([sys.executable, str(LENET), *argv, "--out-dir", str(killed), "--resume"], env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    straight = tmp_path / "straight"
    subprocess.run([sys.executable, str(LENET), *argv, "--out-dir", str(straight)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    a, b = weights(killed / "checkpoint.pt"), weights(straight / "checkpoint.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert len((killed / "metrics.jsonl").read_text().splitlines()) == 4

    # SIGTERM mid-epoch: a checkpoint of that very step, and --resume continues from it
    termed = tmp_path / "termed"
    p = subprocess.Popen([sys.executable, str(LENET), *argv, "--out-dir", str(termed)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (termed / "checkpoint.pt").exists() and p.poll() is None:
        time.sleep(0.005)
    time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 143
    state = torch.load(termed / "checkpoint.pt", weights_only=True)
    assert 0 < state["step_in_epoch"] <= 1437 // 4 and state["step"] == state["epoch"] * (1437 // 4) + state["step_in_epoch"]
    subprocess.run([sys.executable, str(LENET), *argv, "--out-dir", str(termed), "--resume"], env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c = weights(termed / "checkpoint.pt")
    for k in a:
        assert torch.equal(c[k], b[k]), k


def test_torchrun_two_processes_match_one(tmp_path):
    argv = ["--optimizer", "sgd", "--data", "digits", "--batch-size", "32", "--lr", "0.05", "--momentum", "0.9", "--epochs", "2",
            "--no-plot", "--deterministic"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(LENET), *argv, "--out-dir", str(tmp_path / "ddp"),
                        "--metrics-json", str(tmp_path / "ddp.json")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    mod = load_script(LENET)
    single = mod.main(argv + ["--out-dir", str(tmp_path / "one")])
    ddp = json.loads((tmp_path / "ddp.json").read_text())
    assert ddp["processes"] == 2 and single["processes"] == 1
    a, b = weights(tmp_path / "ddp/checkpoint.pt"), weights(tmp_path / "one/checkpoint.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    assert ddp["val_top1"] == pytest.approx(single["val_top1"], abs=0.3)  # at most one digit differs


def test_auxiliary_outputs_add_weighted_losses():
    """A model returning (logits, aux...) in training: main loss + sum of weight x aux loss."""
    import collections
    rt, net = runtime_of(load_script(LENET))
    Out = collections.namedtuple("Out", "logits aux1 aux2")
    g = torch.Generator().manual_seed(0)
    main, a1, a2 = (torch.randn(4, 10, generator=g) for _ in range(3))
    y = torch.tensor([1, 2, 3, 4])
    ce = torch.nn.CrossEntropyLoss()
    loss, out = rt.loss_fn(Out(main, a1, a2), y, ce, {"aux1": 0.3, "aux2": 0.3})
    torch.testing.assert_close(loss, ce(main, y) + 0.3 * ce(a1, y) + 0.3 * ce(a2, y))
    assert out is main
    loss, _ = rt.loss_fn((main, a1), y, ce, {"aux": 0.5})  # a plain tuple: weights in order
    torch.testing.assert_close(loss, ce(main, y) + 0.5 * ce(a1, y))
    args = rt.parse_args(net, ["--aux-weight", "aux1=0.3", "--aux-weight", "aux2=0.1"])
    assert rt.aux_weights(net, args, object()) == {"aux1": 0.3, "aux2": 0.1}
    assert rt.aux_weights(net, rt.parse_args(net, []), type("M", (), {"AUX_LOSS_WEIGHTS": {"aux": 0.3}})) == {
        "aux": 0.3}


def test_image_folder_and_cifar10_data(tmp_path):
    """The torchvision ImageFolder path (augmentation, ten-crop evaluation) and CIFAR-10 pickles."""
    import pickle

    from PIL import Image
    g = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / "imf" / split / c).mkdir(parents=True)
            for i in range(4):
                arr = (torch.rand(40, 48, 3, generator=g) * 255).to(torch.uint8).numpy()
                Image.fromarray(arr).save(tmp_path / "imf" / split / c / f"{i}.png")
    mod = load_script(LENET)
    res = mod.main(["--optimizer", "sgd", "--data", f"imagefolder:{tmp_path / 'imf'}", "--batch-size", "4", "--epochs", "1",
                    "--workers", "0", "--eval-crop", "ten_crop", "--crop", "scale_jitter", "--scale", "36", "48",
                    "--lr", "0.01", "--out-dir", str(tmp_path / "r1"), "--no-plot"])
    assert res["steps"] == 2 and 0 <= res["val_top1"] <= 100
    (tmp_path / "cif").mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = (torch.rand(8, 3072, generator=g) * 255).to(torch.uint8).numpy()
        with open(tmp_path / "cif" / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": [i % 10 for i in range(8)]}, f)
    res = mod.main(["--optimizer", "sgd", "--data", f"cifar10:{tmp_path / 'cif'}", "--batch-size", "8", "--epochs", "1",
                    "--crop", "random", "--padding", "4", "--hflip", "--out-dir", str(tmp_path / "r2"), "--no-plot"])
    assert res["steps"] == 5  # 40 training images / 8
    rows = [json.loads(x) for x in (tmp_path / "r2" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["val_top1"] in {12.5 * k for k in range(9)}


def _small_input(mod) -> tuple[list[str], bool]:
    """--input-size 32 where the network accepts it (checked on the meta device), else its own size;
    and whether the network has batch norm (which needs two images per batch in training mode)."""
    model_mod = mod.load_runtime().load_model_module(mod.network())
    with torch.device("meta"):
        net = model_mod.build(num_classes=mod.NUM_CLASSES)
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    if len(mod.INPUT_SHAPE) != 3 or mod.INPUT_SHAPE[1] <= 32:
        return [], has_bn
    with torch.device("meta"):
        try:
            net(torch.empty(2, mod.INPUT_SHAPE[0], 32, 32))
        except RuntimeError:
            return [], has_bn
    return ["--input-size", "32"], has_bn


# the scripts come from one template; these cover its paths (no BN, BN, an input that can shrink to
# 32, fixed 227/299 inputs, auxiliary outputs, token sequences, CIFAR recipes); make test-all runs all
QUICK = ["train_lenet5", "torchvision/train_resnet18", "train_googlenet", "torchvision/train_inception_v3",
         "torchvision/train_vit_b_32", "train_alexnet", "densenet_cifar/train_densenet40_k12",
         "train_nin_cifar10"]


def _benchmark_2(paths, capsys):
    torch.manual_seed(0)
    for path in paths:
        mod = load_script(path)
        small, has_bn = _small_input(mod)
        batch = "2" if small or has_bn else "1"
        # no momentum/weight decay: the step of a 138M-parameter VGG stays cheap (no momentum buffers);
        # --grad-clip 1: at 32x32 and batch 2 a deep BN network (RegNet) ends on 1x1 maps, where batch
        # norm over 2 values gives +-1 whatever the input and its gradient grows ~1/sqrt(eps) a layer:
        # the first step's finite but huge gradient would make the second loss NaN (the smoke input's
        # doing, not the script's)
        res = mod.main(["--benchmark", "2", "--warmup-steps", "0", "--batch-size", batch, "--no-compile",
                        "--device", "cpu", "--momentum", "0", "--weight-decay", "0", "--grad-clip", "1",
                        *small])
        assert res["batch_size"] == int(batch) and res["images_per_s"] > 0, path
        assert res["input"][1:] == ([32, 32] if small else list(mod.INPUT_SHAPE[1:])), path
        assert torch.isfinite(torch.tensor(res["loss"])), path
    out = capsys.readouterr().err
    assert out.count("benchmark: ") == len(paths)


def test_quick_scripts_run_benchmark_2(capsys):
    """Generated training scripts of each kind start and time two optimizer steps, in-process."""
    _benchmark_2([GENERATED / f"{q}.py" for q in QUICK], capsys)


@pytest.mark.heavy
def test_every_script_runs_benchmark_2(capsys):
    """Each generated training script starts and times two optimizer steps, in-process (make test-all)."""
    _benchmark_2(SCRIPTS, capsys)


def test_googlenet_script_trains_on_the_weighted_auxiliary_losses():
    """The emitted GoogLeNet script reads AUX_LOSS_WEIGHTS from its model module, and in training
    mode its loss is the main loss + 0.3 × each auxiliary classifier's loss (Szegedy et al. §5)."""
    rt, net = runtime_of(load_script(ROOT / "generated" / "torchvision" / "train_googlenet.py"))
    module = rt.load_model_module(net)
    weights_ = rt.aux_weights(net, rt.parse_args(net, []), module)
    assert weights_ == {"aux1": 0.3, "aux2": 0.3}
    torch.manual_seed(0)
    model = module.build(num_classes=5).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert out._fields == ("logits", "aux2", "aux1")
    y = torch.tensor([0, 3])
    ce = torch.nn.CrossEntropyLoss()
    loss, main = rt.loss_fn(out, y, ce, weights_)
    torch.testing.assert_close(loss, ce(out.logits, y) + 0.3 * ce(out.aux1, y) + 0.3 * ce(out.aux2, y))
    assert main is out.logits
