"""Time ``archspec stats`` against torchvision + FlopCounterMode, as whole processes.

Usage (from the repository root)::

    .venv/bin/python benchmarks/stats_vs_torch.py [--repeat N] [--specs DIR]

Side (a): ``archspec stats DIR --format json`` -- static params/MACs from the YAML specs.
Side (b): ``benchmarks/_torch_reference.py`` -- for every ``DIR/*.yaml`` the file stem is
taken as a torchvision builder name; the process imports torch + torchvision, builds
``torchvision.models.get_model(stem, weights=None)`` on the CPU in eval mode, counts
params with ``sum(p.numel())`` and FLOPs with ``FlopCounterMode`` on one random image
of the input size that archspec reports (field ``input``), and prints JSON.

Both are timed with ``time.perf_counter`` around ``subprocess.run`` (start-up and
imports included). One untimed archspec run first reads the input sizes; then each of
the N rounds runs (a) then (b). The script checks that both sides agree on params and
MACs (MACs = FlopCounterMode total / 2) for every network and exits with 1 if any differ
(2 if a process fails or the outputs cannot be matched).

This file imports only the standard library; torch is imported by the reference
process only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path(__file__).resolve().parent / "_torch_reference.py"
GOAL = 50.0


def archspec_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "archspec"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "archspec.cli.main"]


def run_timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}\n")
        raise SystemExit(2)
    return elapsed, proc.stdout


def resolve_specs(arg: str) -> Path:
    p = Path(arg)
    if not p.is_absolute():
        p = (Path.cwd() / p) if (Path.cwd() / p).is_dir() else (ROOT / p)
    if not p.is_dir():
        raise SystemExit(f"--specs: no such folder: {arg}")
    return p.resolve()


def index_archspec(rows: list[dict], files: list[Path]) -> dict[str, dict]:
    """archspec rows keyed by the stem of the spec file they came from."""
    by_stem: dict[str, dict] = {}
    for row in rows:
        stem = Path(str(row.get("ref", row["name"])).split(":")[0]).stem
        if stem in by_stem:
            raise SystemExit(f"more than one archspec network for {stem}.yaml; expected one per file")
        # the module holds its training-time outputs' parameters (GoogLeNet, Inception-v3): compare
        # with params_with_aux, which archspec reports besides the inference network's params
        by_stem[stem] = {**row, "params": row.get("params_with_aux", row["params"])}
    missing = [f.stem for f in files if f.stem not in by_stem]
    if missing:
        raise SystemExit(f"archspec reported nothing for: {', '.join(missing)}")
    return by_stem


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="timed rounds per side (default 3)")
    ap.add_argument("--specs", default="specs/torchvision", help="folder of specs (default specs/torchvision)")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")

    specs = resolve_specs(args.specs)
    files = sorted(specs.glob("*.yaml"))
    if not files:
        raise SystemExit(f"no *.yaml in {specs}")
    try:
        spec_arg = str(specs.relative_to(ROOT))
    except ValueError:
        spec_arg = str(specs)

    a_cmd = archspec_cmd() + ["stats", spec_arg, "--format", "json"]
    print(f"archspec : {' '.join(a_cmd)}")

    # Untimed first run: read the input sizes so both sides measure the same thing.
    _, out = run_timed(a_cmd)
    ours = index_archspec(json.loads(out), files)
    names = [f.stem for f in files]
    ref_args = [f"{n}:{','.join(str(v) for v in ours[n]['input'])}" for n in names]
    b_cmd = [sys.executable, str(REFERENCE.relative_to(ROOT))] + ref_args
    print(f"reference: {' '.join(b_cmd[:2])} <{len(ref_args)} NAME:C,H,W args>")
    print(f"networks : {len(names)} ({', '.join(names)})")
    print()

    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    a_times: list[float] = []
    b_times: list[float] = []
    a_outs: list[str] = []
    b_outs: list[dict] = []
    for i in range(args.repeat):
        ta, out_a = run_timed(a_cmd)
        a_times.append(ta)
        a_outs.append(out_a)
        tb, out_b = run_timed(b_cmd)
        b_times.append(tb)
        b_outs.append(json.loads(out_b))
        print(
            f"round {i + 1}/{args.repeat}: archspec {fmt_s(ta)}   torch reference {fmt_s(tb)}   ratio {tb / ta:.1f}x",
            flush=True,
        )
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    print()

    # Agreement: archspec (last timed run) vs torch (last run); runs must also be stable.
    ours = index_archspec(json.loads(a_outs[-1]), files)
    ref = b_outs[-1]
    theirs = {n["name"]: n for n in ref["networks"]}
    failures = 0
    if any(o != a_outs[-1] for o in a_outs):
        print("WARNING: archspec output differs between runs")
        failures += 1
    if any(
        [(n["params"], n["flops"]) for n in o["networks"]] != [(n["params"], n["flops"]) for n in ref["networks"]]
        for o in b_outs
    ):
        print("WARNING: torch reference counts differ between runs")
        failures += 1

    print("agreement (archspec vs torchvision; MACs = FlopCounterMode total / 2):")
    width = max(len(n) for n in names)
    for n in names:
        a, t = ours[n], theirs.get(n)
        if t is None:
            print(f"  FAIL {n:<{width}}  missing from the torch reference output")
            failures += 1
            continue
        odd = t["flops"] % 2 != 0
        p_ok = a["params"] == t["params"]
        m_ok = a["macs"] == t["macs"] and not odd
        ok = p_ok and m_ok
        failures += not ok
        line = f"  {'ok  ' if ok else 'FAIL'} {n:<{width}}  input {'x'.join(map(str, a['input']))}"
        line += f"  params {a['params']:>12,}" + ("" if p_ok else f" != torch {t['params']:,}")
        line += f"  MACs {a['macs']:>15,}" + ("" if a["macs"] == t["macs"] else f" != torch {t['macs']:,}")
        if odd:
            line += f"  (odd FLOP total {t['flops']:,})"
        print(line)
    print()

    a_med, b_med = statistics.median(a_times), statistics.median(b_times)
    a_min, b_min = min(a_times), min(b_times)
    ratio_med, ratio_min = b_med / a_med, b_min / a_min
    rows = [
        ("", "median", "min"),
        ("archspec stats (a)", fmt_s(a_med), fmt_s(a_min)),
        ("torch reference (b)", fmt_s(b_med), fmt_s(b_min)),
        ("ratio b / a", f"{ratio_med:.1f}x", f"{ratio_min:.1f}x"),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    for r in rows:
        print(f"{r[0]:<{w0}}  {r[1]:>{w1}}  {r[2]:>{w2}}")
    print(f"rounds   : {args.repeat} per side (wall clock of the whole process)")
    print(f"per round: {', '.join(f'{b / a:.1f}x' for a, b in zip(a_times, b_times))} (ratio b / a of each round)")
    if load_before and load_after:
        print(
            f"load avg : {' '.join(f'{v:.2f}' for v in load_before)} before, "
            f"{' '.join(f'{v:.2f}' for v in load_after)} after (1/5/15 min; {os.cpu_count()} CPUs)"
        )
    print(f"networks : {len(names)} from {spec_arg}")
    print(
        f"machine  : {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {ref.get('torch', '?')}, torchvision {ref.get('torchvision', '?')}"
    )
    verdict = "met" if ratio_med >= GOAL else "NOT met"
    print(f"goal: archspec >= {GOAL:g}x faster -> {verdict} (median ratio {ratio_med:.1f}x)")
    if failures:
        print(f"FAILED: {failures} disagreement(s)")
        return 1
    print(f"all {len(names)} networks agree on params and MACs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
