"""benchmarks/train_memory.py: the GPU training-memory benchmark, its pipeline run on the CPU
(--cpu-smoke) and its comparison table with a stand-in estimator."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "train_memory.py"


def load():
    spec = importlib.util.spec_from_file_location("train_memory", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(*argv, timeout=120):
    return subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


# the CPU pipeline: two fresh processes importing torch, ~25 s on 2 busy cores
heavy = pytest.mark.heavy


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("memb") / "rows.json"
    r = run("--measure", str(out), "--cpu-smoke", "--nets", "resnet18", "--precisions", "fp32",
            "--input-size", "64")
    assert r.returncode == 0, r.stdout + r.stderr
    return out, json.loads(out.read_text()), r.stdout


@heavy
def test_cpu_smoke_rows_have_the_fields(smoke):
    _, doc, stdout = smoke
    assert doc["environment"]["torch"] and "date" in doc["environment"]
    assert doc["settings"]["cpu_smoke"] and doc["skipped"] == []
    (row,) = doc["rows"]
    assert row["ok"] and row["net"] == "resnet18" and row["batch"] == 2
    assert row["precision"] == "fp32" and row["compile"] is False and row["bf16"] is False
    assert row["argv"][:6] == ["--benchmark", "2", "--warmup-steps", "2", "--batch-size", "2"]
    assert "--no-compile" in row["argv"] and row["result"]["input"] == [3, 64, 64]
    assert row["peak_memory_mb"] > 0 and row["optimizer_name"] == "sgd"
    c = row["components"]
    # torchvision.models.resnet18(): 11,689,512 float32 parameters; SGD with momentum keeps one
    # buffer per parameter; the gradients are one float32 tensor per parameter
    assert c["params_count"] == 11_689_512 and c["params_bytes"] == 4 * 11_689_512
    assert c["grad_bytes"] == c["params_bytes"] and c["grad_tensors"] == c["params_tensors"] == 62
    assert c["optimizer"] == "SGD" and c["optimizer_bytes"] == c["params_bytes"]
    assert c["params_alloc_bytes"] % 512 == 0 and c["params_alloc_bytes"] >= c["params_bytes"]
    # saved for backward at 2x3x64x64: the input (the stem conv's), activations, the max-pool's
    # int64 indices (2x64x16x16) and the loss's int64 targets (2)
    assert c["saved_includes_input"] and c["input_bytes"] == 2 * 3 * 64 * 64 * 4
    assert c["saved_bytes_by_dtype"]["torch.int64"] == 2 * 64 * 16 * 16 * 8 + 2 * 8
    assert c["saved_bytes"] > c["input_bytes"] and c["saved_param_cast_bytes"] == 0
    assert c["allocated_after_forward_bytes"] is None  # CUDA only
    assert "resnet18/b2/fp32/eager" in stdout


@heavy
def test_rerun_keeps_measured_rows(smoke):
    out, doc, _ = smoke
    r = run("--measure", str(out), "--cpu-smoke", "--nets", "resnet18", "--precisions", "fp32",
            "--input-size", "64")
    assert r.returncode == 0, r.stderr
    assert "1 already in" in r.stdout
    assert json.loads(out.read_text())["rows"] == doc["rows"]


def test_compare_runs_with_or_without_an_estimator(tmp_path):
    """The real archspec CLI: an estimate where `stats --train` exists, else "no estimate"."""
    out = tmp_path / "rows.json"
    out.write_text(json.dumps({"environment": {"torch": "x"}, "rows": [
        {"net": "resnet18", "batch": 2, "precision": "fp32", "compile": False, "ok": True,
         "peak_memory_mb": 100.0, "optimizer_name": "sgd",
         "components": {"params_bytes": 4 * 11_689_512}}]}))
    r = subprocess.run([sys.executable, str(SCRIPT), "--compare", str(out), "--markdown",
                        "--components"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "| resnet18 | 2 | fp32 |" in r.stdout


def test_compare_table_and_summary():
    m = load()
    rows = [{"net": n, "batch": 32, "precision": "fp32", "compile": False, "ok": True,
             "peak_memory_mb": mb, "optimizer_name": "sgd", "components": {}}
            for n, mb in (("a", 100.0), ("b", 200.0), ("c", 400.0))]
    rows.append({"net": "a", "batch": 32, "precision": "fp32", "compile": True, "ok": True,
                 "peak_memory_mb": 80.0})
    rows.append({"net": "d", "batch": 32, "precision": "fp32", "compile": False, "ok": False,
                 "error": "OutOfMemoryError: CUDA out of memory"})
    calls = []

    def stats(nets, batch, precision, optimizer):
        calls.append((tuple(nets), batch, precision, optimizer))
        est = {"a": 104 * m.MiB, "b": 180 * m.MiB}  # +4 %, -10 %; c: no estimate
        return {n: {"peak_bytes": est[n]} if n in est else "no estimate (x)" for n in nets}

    lines, summary = m.compare_rows({"rows": rows}, stats)
    # one call for the batch/precision; no --optimizer in argv: the spec's recipe (stats' default)
    assert calls == [(("a", "b", "c"), 32, "fp32", None)]
    by = {x["net"]: x for x in lines}
    assert by["a"]["error_pct"] == pytest.approx(4.0) and by["a"]["compile_mib"] == 80.0
    assert by["b"]["error_pct"] == pytest.approx(-10.0)
    assert by["c"]["error_pct"] is None and "no estimate" in by["c"]["note"]
    assert "eager failed: OutOfMemoryError" in by["d"]["note"]
    assert summary["compared"] == 2 and summary["median_abs_error_pct"] == pytest.approx(7.0)
    assert summary["max_abs_error_pct"] == pytest.approx(10.0) and summary["goal_met"] is False


def test_row_optimizer_follows_the_script_argv():
    """The script's defaults are the recipe's (SGD keeps its momentum): `optimizer_name` 'sgd'
    alone must not become stats' momentum-less 'sgd' (that dropped SGD's momentum buffer)."""
    m = load()
    assert m.row_optimizer({"optimizer_name": "sgd", "argv": ["--batch-size", "32"]}) is None
    assert m.row_optimizer({"argv": ["--optimizer", "sgd"]}) == "sgd-momentum"
    assert m.row_optimizer({"argv": ["--optimizer", "sgd", "--momentum", "0"]}) == "sgd"
    assert m.row_optimizer({"argv": ["--optimizer", "adamw"]}) == "adamw"


def test_plan_order_and_script_flags():
    m = load()
    rows = m.plan(m.NETS, [128, 32], m.PRECISIONS, m.COMPILE_SUBSET, 128, "bf16-mixed")
    assert len(rows) == 12 * 4 + 3 and len(m.NETS) == 12
    assert [m.row_id(r) for r in rows[:2]] == ["resnet18/b128/fp32/eager", "resnet50/b128/fp32/eager"]
    assert m.row_id(rows[12]) == "resnet18/b128/bf16-mixed/eager"
    assert m.row_id(rows[-1]) == "convnext_tiny/b128/bf16-mixed/compile"
    assert all((m.GENERATED / f"train_{n}.py").is_file() and (m.SPECS / f"{n}.yaml").is_file()
               for n in m.NETS)
    a = m.parse(["--measure", "x.json"])
    assert m.script_argv(rows[-1], a) == ["--benchmark", "2", "--warmup-steps", "2", "--batch-size",
                                          "128", "--bf16", "--compile", "--no-progress", "--no-plot"]


def test_measure_refuses_without_cuda_before_running_anything(tmp_path, capsys, monkeypatch):
    m = load()
    monkeypatch.setattr(m, "probe", lambda: {"torch": "2.x", "cuda_available": False})
    monkeypatch.setattr(m, "_run_child", lambda *a, **k: pytest.fail("a row was launched"))
    assert m.measure(m.parse(["--measure", str(tmp_path / "x.json")])) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA GPU" in err and "--cpu-smoke" in err
    assert not (tmp_path / "x.json").exists()


@heavy
def test_measure_refuses_without_cuda(tmp_path):
    """The same through the real probe (a process importing torch: ~10-20 s on 2 busy cores)."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here")
    r = run("--measure", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "needs a CUDA GPU" in r.stderr and "--cpu-smoke" in r.stderr
    assert not (tmp_path / "x.json").exists()


def test_measure_schedules_all_rows_records_failures_and_retries_oom(tmp_path, monkeypatch):
    """The GPU run's bookkeeping with a stand-in for the per-row process: 48 eager rows and the
    compile subset, each written as it finishes; an OOM row retried alone; a crash recorded."""
    m = load()
    monkeypatch.setattr(m, "probe", lambda: {"torch": "2.x", "cuda_available": True, "gpu": "G"})
    seen, oom_once, kept = [], {"vgg16/b128/fp32/eager"}, [0]
    out = tmp_path / "rows.json"

    def fake(cmd, timeout, env=None):
        job = json.loads(cmd[cmd.index("--child") + 1])
        r, rid = job["row"], m.row_id(job["row"])
        seen.append(rid)
        assert env["OMP_NUM_THREADS"] and timeout > 0 and "--no-progress" in job["argv"]
        assert len(json.loads(out.read_text())["rows"]) == kept[0] + len(seen) - 1  # rows on disk
        if rid in oom_once:
            oom_once.discard(rid)
            return {**r, "ok": False, "error": "OutOfMemoryError: CUDA out of memory", "oom": True}, "", 1.0
        if rid == "swin_t/b32/fp32/eager":
            return None, "Segmentation fault", 1.0
        return {**r, "ok": True, "peak_memory_mb": 10.0, "components": None}, "", 1.0

    monkeypatch.setattr(m, "_run_child", fake)
    assert m.measure(m.parse(["--measure", str(out), "--jobs", "1"])) == 1  # one row failed
    assert len(seen) == 48 + 3 + 1 and seen[-1] == "vgg16/b128/fp32/eager"
    doc = json.loads(out.read_text())
    rows = {m.row_id(r): r for r in doc["rows"]}
    assert len(rows) == 51 and rows["vgg16/b128/fp32/eager"]["ok"] and rows["vgg16/b128/fp32/eager"]["retried"]
    bad = rows["swin_t/b32/fp32/eager"]
    assert not bad["ok"] and "Segmentation fault" in bad["stderr_tail"] and doc["skipped"] == []
    # a rerun measures only the missing row; a spent budget launches nothing
    seen.clear()
    kept[0] = 50
    assert m.measure(m.parse(["--measure", str(out), "--jobs", "1"])) == 1
    assert seen == ["swin_t/b32/fp32/eager"]
    seen.clear()
    assert m.measure(m.parse(["--measure", str(out), "--fresh", "--budget-s", "-1"])) == 1
    assert seen == [] and len(json.loads(out.read_text())["skipped"]) == 51
