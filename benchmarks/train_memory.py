"""Training memory of the emitted scripts on a GPU: measured peak vs archspec's static estimate.

Usage (from the repository root)::

    # on a CUDA machine (one H200: ~4-5 min); each row is written to OUT.json as soon as it is in
    python benchmarks/train_memory.py --measure OUT.json
    python benchmarks/train_memory.py --measure OUT.json --jobs 2 --budget-s 420 --compile-subset
    # here, without a GPU: the same pipeline on the CPU, batch 2 (the script's own test)
    python benchmarks/train_memory.py --measure /tmp/smoke.json --cpu-smoke
    # here, without torch: estimate vs measurement per row, median and max |error|
    python benchmarks/train_memory.py --compare OUT.json [--markdown] [--components]

What is measured (``--measure``). Each configuration (network x batch x precision x eager/compile)
runs in a fresh Python process (this file with ``--child``) that imports the emitted
``generated/torchvision/train_<net>.py`` and calls its ``main(argv)`` with::

    --benchmark 2 --warmup-steps 2 --batch-size B --bf16|--no-bf16 --compile|--no-compile

and otherwise the script's defaults (on CUDA: channels_last, cudnn.benchmark, TF32, the recipe's
optimizer, fused where torch has it). The script's ``benchmark()`` resets the CUDA peak after the
warm-up, so ``peak_memory_mb`` is ``torch.cuda.max_memory_allocated`` over the timed steps: the
steady-state peak of a training step, optimizer state included. That is the figure compared.

After ``main`` returned (the peak is read, nothing can disturb it), the same process measures the
pieces an estimator is made of, on the model and optimizer the benchmark used (the driver wraps
the script's ``build_model``/``make_optimizer`` to keep them; the script is not edited):
parameter, buffer, gradient and optimizer-state bytes (raw, and rounded up to the caching
allocator's 512-byte blocks, which is what ``memory_allocated`` counts), ``memory_allocated``
before and right after one more forward (loss included, before backward) and after its backward,
that pass's own peak, and the bytes the forward saves for backward: unique storages seen by a
``torch.autograd.graph.saved_tensors_hooks`` pack hook, parameters excluded (by dtype, and whether
the input batch is among them, and how many are parameters' autocast copies: a parameter's shape
in another dtype). Compile rows record the peak only (the pieces are eager ones).

Rows go in order of importance (batch 128 then 32, fp32 then bf16, the 12 networks, all eager;
then the ``--compile-subset``); ``--jobs K`` of them run at once (each process has its own caching
allocator, so the peaks are independent); ``--budget-s`` stops launching rows, in-flight rows are
killed ``--grace-s`` later. A row that fails (OOM, a crash, a timeout) is recorded with its error
and the run goes on; rows that ran out of memory are retried alone at the end. Re-running with the
same OUT.json keeps its good rows and measures only the missing ones.

``--compare`` computes the estimate of each row with ``python -m archspec stats SPEC --train
--batch B --precision fp32|bf16-mixed --optimizer X --format json`` (the ``train.peak_bytes`` of
each network; one call per batch/precision/optimizer for all networks); where that command does not
exist yet (or fails) the row says "no estimate". Error = (estimate - measured) / measured, the
eager peak; the torch.compile peak is shown beside it where measured (the estimate is an eager one).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "generated" / "torchvision"
SPECS = ROOT / "specs" / "torchvision"

#: the 12 networks of issue #13, one per family
NETS = ("resnet18", "resnet50", "vgg16", "densenet121", "googlenet", "inception_v3", "vit_b_16",
        "mobilenet_v2", "efficientnet_b0", "convnext_tiny", "swin_t", "regnet_y_400mf")
COMPILE_SUBSET = ("resnet50", "vit_b_16", "convnext_tiny")
SMOKE_NETS = ("resnet18", "mobilenet_v2")
PRECISIONS = ("fp32", "bf16-mixed")
MARK = "@@train_memory@@ "  # the child's result line on stdout
BLOCK = 512  # the CUDA caching allocator rounds every allocation up to a multiple of this
MiB = 2 ** 20


# ------------------------------------------------------------------------------------ the plan
def row_id(r: dict) -> str:
    return f"{r['net']}/b{r['batch']}/{r['precision']}/{'compile' if r['compile'] else 'eager'}"


def plan(nets, batches, precisions, compile_nets, compile_batch, compile_precision) -> list[dict]:
    """The rows, most important first: every network eager at the first batch and precision, ...,
    then the compile subset."""
    rows = [{"net": n, "batch": b, "precision": p, "compile": False}
            for b in batches for p in precisions for n in nets]
    rows += [{"net": n, "batch": compile_batch, "precision": compile_precision, "compile": True}
             for n in compile_nets]
    return rows


def script_argv(r: dict, a) -> list[str]:
    """The emitted script's own flags for one row (its defaults otherwise)."""
    argv = ["--benchmark", str(a.steps), "--warmup-steps", str(a.warmup), "--batch-size",
            str(r["batch"]), "--bf16" if r["precision"] == "bf16-mixed" else "--no-bf16",
            "--compile" if r["compile"] else "--no-compile", "--no-progress", "--no-plot"]
    if a.device:
        argv += ["--device", a.device]
    if a.input_size:
        argv += ["--input-size", str(a.input_size)]
    return argv


# ----------------------------------------------------------------------- the child: one row
def _bytes(tensors) -> tuple[int, int, int]:
    """(raw bytes, bytes in 512-byte allocator blocks, count) of the unique storages."""
    seen, raw, blocks = set(), 0, 0
    for t in tensors:
        st = t.untyped_storage()
        key = (st.device, st.data_ptr())
        if key in seen:
            continue
        seen.add(key)
        n = st.nbytes()
        raw += n
        blocks += -(-n // BLOCK) * BLOCK
    return raw, blocks, len(seen)


def _piece(name: str, tensors) -> dict:
    raw, blocks, n = _bytes(list(tensors))
    return {f"{name}_bytes": raw, f"{name}_alloc_bytes": blocks, f"{name}_tensors": n}


def _environment(torch) -> dict:
    from datetime import datetime, timezone
    from importlib import metadata
    try:
        tv = metadata.version("torchvision")
    except metadata.PackageNotFoundError:
        tv = None
    env = {"torch": torch.__version__, "torchvision": tv, "python": sys.version.split()[0],
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=torch.cuda.get_device_name(0), gpu_memory_bytes=p.total_memory,
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return env


def _components(script, cap: dict, torch) -> dict:
    """The pieces of the training memory, on the model/optimizer the benchmark used; one extra
    forward/backward, after the benchmark's peak was read."""
    model, run, opt, rt, args = cap["model"], cap["run"], cap["opt"], cap["rt"], cap["args"]
    dev = rt.device
    cuda = dev.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(dev)) if cuda else (lambda: None)
    alloc = (lambda: torch.cuda.memory_allocated(dev)) if cuda else (lambda: None)
    params = [p for p in model.parameters()]
    out = {**_piece("params", params), **_piece("buffers", list(model.buffers())),
           "params_count": sum(p.numel() for p in params),
           "param_dtypes": sorted({str(p.dtype) for p in params}),
           "optimizer": type(opt).__name__}
    state = [v for s in opt.state.values() for v in s.values()
             if isinstance(v, torch.Tensor) and v.device == dev]
    out.update(_piece("optimizer", state))
    out["optimizer_cpu_tensors"] = sum(1 for s in opt.state.values() for v in s.values()
                                       if isinstance(v, torch.Tensor) and v.device != dev)
    sync()
    out["allocated_idle_bytes"] = alloc()  # params + buffers + optimizer state (grads are None)
    # the extra pass, as train_step runs it: same model (eager), autocast, channels_last input
    # (the fallbacks keep this working if the emitted runtime renames its helpers)
    shape = tuple(cap["shape"])
    x = torch.randn(args.batch_size, *shape, device=dev)
    y = torch.randint(0, getattr(script, "NUM_CLASSES", 1000), (args.batch_size,), device=dev)
    if getattr(rt, "channels_last", cap["channels_last"]) and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=getattr(args, "label_smoothing", 0.0))
    weights = script.aux_weights(args, cap["module"]) if hasattr(script, "aux_weights") else {}
    loss_fn = getattr(script, "loss_fn", None) or (
        lambda out, y, crit, w: (crit(out[0] if isinstance(out, (tuple, list)) else out, y), None))
    autocast = rt.autocast if hasattr(rt, "autocast") else (
        lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bool(cap["bf16"])))
    param_keys = {(p.untyped_storage().device, p.untyped_storage().data_ptr()) for p in params}
    param_shapes = {(tuple(p.shape), p.dtype) for p in params}
    x_key = (x.untyped_storage().device, x.untyped_storage().data_ptr())
    saved: dict = {}

    def pack(t):
        try:
            st = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # a tensor without storage: nothing to count
            return t
        key = (st.device, st.data_ptr())
        if key not in param_keys and st.nbytes():
            # a parameter's autocast copy (bf16 weight): a parameter's shape, another dtype
            cast = any(shape == tuple(t.shape) and dt != t.dtype for shape, dt in param_shapes)
            saved[key] = (st.nbytes(), str(t.dtype), cast)
        return t

    model.train()
    sync()
    out["input_bytes"] = x.untyped_storage().nbytes()
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    out["allocated_before_forward_bytes"] = alloc()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with autocast():
            res = model(x)
            loss, _ = loss_fn(res, y, criterion, weights)
    sync()
    out["allocated_after_forward_bytes"] = alloc()
    out["saved_bytes"] = sum(n for n, _, _ in saved.values())
    out["saved_alloc_bytes"] = sum(-(-n // BLOCK) * BLOCK for n, _, _ in saved.values())
    out["saved_tensors"] = len(saved)
    out["saved_param_cast_bytes"] = sum(n for n, _, cast in saved.values() if cast)
    by_dtype: dict = {}
    for n, dt, _ in saved.values():
        by_dtype[dt] = by_dtype.get(dt, 0) + n
    out["saved_bytes_by_dtype"] = by_dtype
    out["saved_includes_input"] = x_key in saved
    loss.backward()
    sync()
    out["allocated_after_backward_bytes"] = alloc()
    out.update(_piece("grad", [p.grad for p in params if p.grad is not None]))
    out["pass_peak_bytes"] = torch.cuda.max_memory_allocated(dev) if cuda else None
    del res, loss
    opt.zero_grad(set_to_none=True)
    return out


def child(row: dict, argv: list[str]) -> dict:
    """Run one row in this process; returns its record."""
    import importlib.util

    path = GENERATED / f"train_{row['net']}.py"
    spec = importlib.util.spec_from_file_location(f"train_{row['net']}", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    import torch

    cap: dict = {}
    if hasattr(script, "build_model"):
        build = script.build_model

        def build_model(args, module, num_classes, rt, *more, **kw):
            model, run = build(args, module, num_classes, rt, *more, **kw)
            cap.update(model=model, run=run, module=module, rt=rt, args=args)
            return model, run
        script.build_model = build_model
    if hasattr(script, "make_optimizer"):
        make = script.make_optimizer

        def make_optimizer(*a, **kw):
            cap["opt"] = make(*a, **kw)
            return cap["opt"]
        script.make_optimizer = make_optimizer

    rec = {**row, "argv": argv, "environment": _environment(torch)}
    t0 = time.perf_counter()
    try:
        result = script.main(argv)
    except SystemExit as e:  # the script's usage/runtime errors: one line on stderr, exit 1 or 2
        raise RuntimeError(f"the script exited with {e.code}") from None
    rec["wall_s"] = round(time.perf_counter() - t0, 2)
    rec["result"] = result
    rec["peak_memory_mb"] = result["peak_memory_mb"]
    rec["peak_bytes"] = round(result["peak_memory_mb"] * MiB)
    rec["channels_last"] = result.get("channels_last")
    rec["bf16"] = result.get("bf16")
    rec["cudnn_benchmark"] = torch.backends.cudnn.benchmark
    rec["tf32"] = torch.backends.cuda.matmul.allow_tf32
    dev = cap.get("rt").device if cap.get("rt") is not None else None
    if dev is not None and dev.type == "cuda":
        rec["max_reserved_bytes"] = torch.cuda.max_memory_reserved(dev)
    rec["optimizer_name"] = getattr(cap.get("args"), "optimizer", None)
    if row["compile"]:
        rec["components"] = None  # eager pieces only: the eager row of the same config has them
    elif not {"model", "run", "opt", "rt", "args"} <= cap.keys():
        rec["components"] = {"error": "the script has no build_model/make_optimizer to wrap"}
    else:
        cap.update(shape=result.get("input") or script.INPUT_SHAPE,
                   channels_last=result.get("channels_last"), bf16=result.get("bf16"))
        t1 = time.perf_counter()
        try:
            rec["components"] = _components(script, cap, torch)
        except Exception as e:  # noqa: BLE001 - the peak is in; a failed extra pass is recorded
            rec["components"] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
        rec["components_s"] = round(time.perf_counter() - t1, 2)
    return rec


def child_main(payload: str) -> None:
    job = json.loads(payload)
    try:
        rec = child(job["row"], job["argv"])
        rec["ok"] = True
    except Exception as e:  # noqa: BLE001 - reported to the parent as the row's error
        msg = str(e).strip().splitlines()
        rec = {**job["row"], "argv": job["argv"], "ok": False,
               "error": f"{type(e).__name__}: {msg[0][:500] if msg else ''}",
               "oom": "out of memory" in str(e).lower() or type(e).__name__ == "OutOfMemoryError",
               "traceback": traceback.format_exc()[-2000:]}
    print(MARK + json.dumps(rec), flush=True)
    sys.stderr.flush()
    os._exit(0)  # the record is out: no teardown (Inductor's worker pool, CUDA) that could hang


def probe_main() -> None:
    import torch
    print(MARK + json.dumps(_environment(torch)), flush=True)


# ---------------------------------------------------------------------- the parent: all rows
def _run_child(cmd: list[str], timeout: float, env: dict | None = None
               ) -> tuple[dict | None, str, float]:
    """(the child's record or None, its stderr tail, seconds); the child is killed (its whole
    process group) at the timeout."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=ROOT, start_new_session=True, env=env)
    try:
        out, err = p.communicate(timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        err = f"timed out after {timeout:.0f} s\n" + err
    rec = None
    for line in out.splitlines():
        if line.startswith(MARK):
            rec = json.loads(line[len(MARK):])  # a record printed before a timeout still counts
    if rec is None and not err.startswith("timed out"):
        err = f"exit code {p.returncode}, no result\n" + err
    return rec, err[-3000:], time.perf_counter() - t0


def probe() -> dict:
    rec, err, _ = _run_child([sys.executable, str(Path(__file__).resolve()), "--probe"], 300)
    if rec is None:
        raise SystemExit(f"train_memory.py: cannot import torch here: {err.strip()[-500:]}")
    return rec


def _write(path: Path, doc: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)


def measure(a) -> int:
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    t_start = time.monotonic()
    env = {} if a.cpu_smoke else probe()  # the smoke test takes it from its first row
    if a.cpu_smoke:
        a.device = "cpu"
    elif not env.get("cuda_available"):
        print("train_memory.py: --measure needs a CUDA GPU (torch.cuda.is_available() is False "
              f"with torch {env.get('torch')}); --cpu-smoke runs the pipeline on the CPU instead",
              file=sys.stderr)
        return 2
    nets = a.nets or (SMOKE_NETS if a.cpu_smoke else NETS)
    batches = a.batches or ([2] if a.cpu_smoke else [128, 32])
    compile_nets = a.compile_subset if a.compile_subset is not None else (
        () if a.cpu_smoke else COMPILE_SUBSET)
    unknown = [n for n in {*nets, *compile_nets} if not (GENERATED / f"train_{n}.py").is_file()]
    if unknown:
        print(f"train_memory.py: no generated/torchvision/train_<net>.py for {', '.join(unknown)}",
              file=sys.stderr)
        return 2
    rows = plan(nets, batches, a.precisions, compile_nets, a.compile_batch, a.compile_precision)
    out = Path(a.measure)
    doc = {"benchmark": "train_memory", "environment": env, "settings": {
        "steps": a.steps, "warmup_steps": a.warmup, "jobs": a.jobs, "device": a.device or "cuda",
        "input_size": a.input_size, "cpu_smoke": a.cpu_smoke}, "rows": []}
    if out.exists() and not a.fresh:
        try:
            old = json.loads(out.read_text())
            doc["rows"] = [r for r in old.get("rows", []) if r.get("ok")]
            doc["earlier_environment"] = old.get("environment")
        except (OSError, ValueError):
            pass
    done = {row_id(r) for r in doc["rows"]}
    todo = [r for r in rows if row_id(r) not in done]
    where = "CPU smoke" if a.cpu_smoke else (f"{env.get('gpu')}; torch {env.get('torch')}, "
                                             f"torchvision {env.get('torchvision')}, cudnn {env.get('cudnn')}")
    print(f"{where}; {len(rows)} rows ({len(rows) - len(todo)} already in {out}), "
          f"--jobs {a.jobs}, budget {a.budget_s:.0f} s", flush=True)
    _write(out, doc)
    me = str(Path(__file__).resolve())
    # K processes share the cores: each gets its share of CPU threads (model init, data, the
    # optimizer's CPU side); GPU memory does not depend on it
    child_env = {**os.environ}
    child_env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // a.jobs)))

    def one(r: dict, deadline: float) -> dict:
        argv = script_argv(r, a)
        payload = json.dumps({"row": r, "argv": argv})
        limit = min(a.row_timeout_s * (3 if r["compile"] else 1), deadline - time.monotonic())
        rec, err, secs = _run_child([sys.executable, me, "--child", payload], limit, child_env)
        if rec is None:
            rec = {**r, "argv": argv, "ok": False, "error": err.strip().splitlines()[0] if err.strip()
                   else "no result", "oom": "out of memory" in err.lower()}
        if not rec.get("ok"):
            rec["stderr_tail"] = err[-1500:]
            last = [ln for ln in err.splitlines() if ln.strip()]
            if "exited with" in rec["error"] and last:  # the script's own one-line error
                rec["error"] += f": {last[-1].strip()[:300]}"
        rec["process_s"] = round(secs, 2)
        return rec

    def record(rec: dict) -> None:
        doc["rows"] = [x for x in doc["rows"] if row_id(x) != row_id(rec)] + [rec]
        if not doc["environment"] and rec.get("environment"):
            doc["environment"] = rec["environment"]
        _write(out, doc)
        el = time.monotonic() - t_start
        if rec.get("ok"):
            c = rec.get("components") or {}
            extra = "" if not c or "error" in c else (
                f"  params {c['params_bytes'] / MiB:.0f} grad {c.get('grad_bytes', 0) / MiB:.0f} "
                f"opt {c['optimizer_bytes'] / MiB:.0f} saved {c['saved_bytes'] / MiB:.0f} MiB")
            print(f"[{el:6.1f}s] {row_id(rec):38} peak {rec['peak_memory_mb']:9.1f} MiB "
                  f"({rec['process_s']:.0f} s){extra}", flush=True)
        else:
            print(f"[{el:6.1f}s] {row_id(rec):38} FAILED: {rec['error']}", flush=True)

    hard = t_start + a.budget_s + a.grace_s
    skipped: list[dict] = []
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        pending, queue = set(), list(todo)
        while queue or pending:
            while queue and len(pending) < a.jobs:
                if time.monotonic() - t_start > a.budget_s:
                    skipped, queue = queue, []
                    break
                pending.add(pool.submit(one, queue.pop(0), hard))
            if not pending:
                break
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                record(f.result())
        # rows that ran out of memory next to others: once more, alone
        for r in [x for x in doc["rows"] if x.get("oom") and not x.get("retried")]:
            if time.monotonic() - t_start > a.budget_s:
                break
            base = {k: r[k] for k in ("net", "batch", "precision", "compile")}
            rec = one(base, hard)
            rec["retried"] = True
            record(rec)
    for r in skipped:
        print(f"not run (budget): {row_id(r)}")
    doc["skipped"] = [row_id(r) for r in skipped]
    doc["elapsed_s"] = round(time.monotonic() - t_start, 1)
    _write(out, doc)
    bad = [r for r in doc["rows"] if not r.get("ok")]
    print(f"{len(doc['rows']) - len(bad)} rows measured, {len(bad)} failed, {len(skipped)} not run; "
          f"{doc['elapsed_s']:.0f} s; {out}")
    return 0 if not bad and not skipped else 1


# ------------------------------------------------------------------ estimate vs measurement
def run_stats(nets: list[str], batch: int, precision: str, optimizer: str | None) -> dict:
    """{net: the `train` object of archspec stats --train} for one batch/precision/optimizer, or
    {net: error text}; archspec runs in a subprocess (no torch needed)."""
    cmd = [sys.executable, "-m", "archspec", "stats", *[str(SPECS / f"{n}.yaml") for n in nets],
           "--train", "--batch", str(batch), "--precision", precision, "--format", "json"]
    if optimizer:
        cmd += ["--optimizer", optimizer]
    envv = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=envv)
    if r.returncode:
        lines = [ln.strip(" │╭╮╰╯─") for ln in (r.stderr or r.stdout).splitlines()]
        lines = [ln for ln in lines if ln and not ln.startswith(("Usage:", "Try ", "Error"))]
        why = lines[0][:120] if lines else None
        return {n: f"no estimate ({why or f'archspec stats exit {r.returncode}'})" for n in nets}
    try:
        items = json.loads(r.stdout)
    except ValueError:
        return {n: "no estimate (archspec stats printed no JSON)" for n in nets}
    found = {}
    for item in items if isinstance(items, list) else [items]:
        name = item.get("name") or Path(item.get("ref", "")).stem
        found[name] = item.get("train") or "no estimate (no `train` object)"
    return {n: found.get(n, "no estimate (network missing from the output)") for n in nets}


def row_optimizer(r: dict) -> str | None:
    """The ``--optimizer`` of ``archspec stats --train`` for a row: None (the spec's ``train:``
    recipe, which the script's defaults are) unless the row's argv chose one; the script's
    ``sgd`` keeps the recipe's momentum (> 0 in every recipe that uses SGD) unless argv sets
    ``--momentum 0``. (``optimizer_name`` alone says ``sgd`` for SGD with momentum too.)"""
    argv = list(r.get("argv") or [])
    if "--optimizer" not in argv:
        return None
    name = argv[argv.index("--optimizer") + 1]
    if name == "sgd":
        m = argv[argv.index("--momentum") + 1] if "--momentum" in argv else None
        return "sgd" if m is not None and float(m) == 0 else "sgd-momentum"
    return name


def estimates(rows: list[dict], stats=run_stats) -> dict:
    """{(net, batch, precision): train object or 'no estimate ...' text}, one stats call per
    batch/precision/optimizer."""
    configs: dict = {}  # (net, batch, precision) -> optimizer, an eager row's first
    for r in sorted(rows, key=lambda r: bool(r["compile"])):
        configs.setdefault((r["net"], r["batch"], r["precision"]), row_optimizer(r))
    groups: dict = {}
    for (net, b, p), o in configs.items():
        groups.setdefault((b, p, o), set()).add(net)
    est = {}
    for (b, p, o), nets in sorted(groups.items(), key=lambda kv: str(kv[0])):
        for net, e in stats(sorted(nets), b, p, o).items():
            est[(net, b, p)] = e
    return est


def _fmt(v, spec=".0f") -> str:
    return "–" if v is None else format(v, spec)


def compare_rows(doc: dict, stats=run_stats) -> tuple[list[dict], dict]:
    """One line per configuration (eager row + compile row of the same config); the summary."""
    rows = [r for r in doc.get("rows", [])]
    est = estimates([r for r in rows if r.get("ok")], stats)
    lines: dict = {}
    for r in rows:
        key = (r["net"], r["batch"], r["precision"])
        line = lines.setdefault(key, {"net": r["net"], "batch": r["batch"],
                                      "precision": r["precision"], "measured_mib": None,
                                      "compile_mib": None, "estimate_mib": None, "error_pct": None,
                                      "note": ""})
        if not r.get("ok"):
            line["note"] += f"{'compile' if r['compile'] else 'eager'} failed: {r.get('error', '')[:60]} "
            continue
        if r["compile"]:
            line["compile_mib"] = r["peak_memory_mb"]
        else:
            line["measured_mib"] = r["peak_memory_mb"]
            line["components"] = r.get("components")
    for key, line in lines.items():
        e = est.get(key)
        if isinstance(e, dict) and e.get("peak_bytes") is not None:
            line["estimate_mib"] = e["peak_bytes"] / MiB
            line["estimate"] = e
            if line["measured_mib"]:
                line["error_pct"] = 100 * (line["estimate_mib"] - line["measured_mib"]) / line["measured_mib"]
        elif line["measured_mib"] is not None:
            line["note"] += e if isinstance(e, str) else "no estimate"
    out = sorted(lines.values(), key=lambda x: (x["batch"], x["precision"], x["net"]))
    errs = [abs(x["error_pct"]) for x in out if x["error_pct"] is not None]
    summary = {"rows": len(out), "compared": len(errs),
               "median_abs_error_pct": statistics.median(errs) if errs else None,
               "max_abs_error_pct": max(errs) if errs else None}
    summary["goal_met"] = (None if not errs else
                           summary["median_abs_error_pct"] <= 5 and summary["max_abs_error_pct"] <= 10)
    return out, summary


def _table(header: list[str], body: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])
    w = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    fmt = lambda r: "  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(r))  # noqa: E731
    return "\n".join([fmt(header)] + [fmt(r) for r in body])


PIECES = (("params", "params_bytes", "params_bytes"), ("grads", "grad_bytes", "grad_bytes"),
          ("optimizer", "optimizer_bytes", "optimizer_bytes"), ("saved", "saved_bytes", "saved_bytes"))


def compare(a, stats=run_stats) -> int:
    doc = json.loads(Path(a.compare).read_text())
    out, summary = compare_rows(doc, stats)
    env = doc.get("environment", {})
    print(f"{env.get('gpu') or 'CPU'}; torch {env.get('torch')}, torchvision {env.get('torchvision')}, "
          f"cudnn {env.get('cudnn')}; {env.get('date')}; "
          f"{doc.get('settings', {}).get('steps')} timed steps after {doc.get('settings', {}).get('warmup_steps')}")
    if a.markdown:
        print()
    header = ["net", "batch", "precision", "estimate MiB (eager)", "measured MiB (eager)", "error %",
              "torch.compile MiB", "note"]
    body = [[x["net"], str(x["batch"]), x["precision"], _fmt(x["estimate_mib"]), _fmt(x["measured_mib"]),
             _fmt(x["error_pct"], "+.1f"), _fmt(x["compile_mib"]), x["note"].strip()] for x in out]
    print(_table(header, body, a.markdown))
    if a.components:
        print("\ncomponents, MiB: measured / estimated (measured in the same process, after the peak)")
        ch = ["net", "batch", "precision"] + [p[0] for p in PIECES] + ["alloc after fwd", "idle"]
        cb = []
        for x in out:
            c, e = x.get("components") or {}, x.get("estimate") or {}
            if "error" in c:
                c = {}
            cells = [f"{_fmt(c.get(m) and c[m] / MiB)} / {_fmt(e.get(k) and e[k] / MiB)}"
                     for _, m, k in PIECES]
            cb.append([x["net"], str(x["batch"]), x["precision"], *cells,
                       _fmt(c.get("allocated_after_forward_bytes") and c["allocated_after_forward_bytes"] / MiB),
                       _fmt(c.get("allocated_idle_bytes") and c["allocated_idle_bytes"] / MiB)])
        print(_table(ch, cb, a.markdown))
    med, mx = summary["median_abs_error_pct"], summary["max_abs_error_pct"]
    print()
    if med is None:
        print(f"{summary['rows']} configurations, no estimate to compare (archspec stats --train)")
    else:
        print(f"{summary['compared']} of {summary['rows']} configurations compared: median |error| "
              f"{med:.1f} %, max |error| {mx:.1f} % (goal: median <= 5 %, max <= 10 %: "
              f"{'met' if summary['goal_met'] else 'not met'})")
    return 0


# --------------------------------------------------------------------------------- options
def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--measure", metavar="OUT.json", help="measure on the GPU, rows into OUT.json")
    mode.add_argument("--compare", metavar="OUT.json", help="estimate vs measurement (no torch)")
    mode.add_argument("--child", help=argparse.SUPPRESS)
    mode.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    g = p.add_argument_group("--measure")
    g.add_argument("--cpu-smoke", action="store_true",
                   help="without a GPU: the same pipeline on the CPU, batch 2, 2 networks")
    g.add_argument("--nets", nargs="+", default=None, help=f"default: {' '.join(NETS)}")
    g.add_argument("--batches", type=int, nargs="+", default=None, help="default: 128 32")
    g.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    g.add_argument("--compile-subset", nargs="*", default=None, metavar="NET",
                   help=f"also measured with torch.compile (default: {' '.join(COMPILE_SUBSET)}; "
                        "none: give the flag alone)")
    g.add_argument("--compile-batch", type=int, default=128)
    g.add_argument("--compile-precision", choices=PRECISIONS, default="bf16-mixed")
    g.add_argument("--jobs", type=int, default=4, help="rows (processes) at once")
    g.add_argument("--steps", type=int, default=2, help="timed steps (the peak is over these)")
    g.add_argument("--warmup", type=int, default=2, help="warm-up steps before the peak is reset")
    g.add_argument("--budget-s", type=float, default=270,
                   help="launch no row after this many seconds")
    g.add_argument("--grace-s", type=float, default=120,
                   help="kill rows still running this long after the budget")
    g.add_argument("--row-timeout-s", type=float, default=150,
                   help="kill an eager row after this long (compile rows: 3x)")
    g.add_argument("--device", default=None, help="passed to the script (default: its own)")
    g.add_argument("--input-size", type=int, default=None, help="passed to the script")
    g.add_argument("--fresh", action="store_true", help="ignore the rows already in OUT.json")
    g = p.add_argument_group("--compare")
    g.add_argument("--markdown", action="store_true", help="markdown tables (for docs/)")
    g.add_argument("--components", action="store_true",
                   help="also params/grads/optimizer/saved: measured vs estimated")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse(argv)
    if a.child:
        child_main(a.child)
        return 0
    if a.probe:
        probe_main()
        return 0
    if a.compare:
        return compare(a)
    return measure(a)


if __name__ == "__main__":
    sys.exit(main())
