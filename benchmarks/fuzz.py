"""The compiler contract on random specs (issue #10): validate ok => build ok => the module imports,
builds, runs, and agrees with the IR (params, output shape, FlopCounterMode / 2 = MACs), and a
rebuild is byte-identical; a spec that does not validate gives one file:line:col error.

    python benchmarks/fuzz.py --n 10000 [--seed 0] [--mutate 0.3]

Prints the counts (ok / rejected / violations) and the first violations with their specs.
"""

from __future__ import annotations

import argparse
import collections
import functools
import multiprocessing
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from tests.contract import Violation, check_spec  # noqa: E402
from tests.specgen import RandomChooser, SpecGen, dump, mutate, table_specs  # noqa: E402


def one(seed: int, work: Path, p_mutate: float) -> tuple[str, str, str]:
    ch = RandomChooser(seed)
    d = work / f"s{seed}"
    d.mkdir()
    if seed % 10 == 9:
        files = table_specs(ch)
        for name, text in files.items():
            (d / name).write_text(text)
        target = d / ch.choice(sorted(files))
    else:
        text = dump(SpecGen(ch).spec())
        if ch.coin(p_mutate):
            text = mutate(text, ch)
        target = d / "fuzz.yaml"
        target.write_text(text)
    try:
        out = check_spec(target, d / "out", tag=str(seed))
        return out.kind, out.detail, ""
    except Violation as v:
        return "violation", str(v), target.read_text()
    except Exception as e:  # noqa: BLE001 - a crash of archspec itself
        return "violation", f"crash: {type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}", target.read_text()


def _one(seed: int, work: Path, p_mutate: float) -> tuple[str, str, str]:
    return one(seed, work, p_mutate)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mutate", type=float, default=0.3, help="share of specs given a random edit")
    ap.add_argument("--show", type=int, default=5, help="violations to print in full")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    args = ap.parse_args()
    torch.set_num_threads(1)
    counts: collections.Counter = collections.Counter()
    shown = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        seeds = range(args.seed, args.seed + args.n)
        work = functools.partial(_one, work=Path(tmp), p_mutate=args.mutate)
        if args.jobs > 1:
            pool = multiprocessing.get_context("fork").Pool(args.jobs)
            results = pool.imap(work, seeds, chunksize=8)
        else:
            results = map(work, seeds)
        for done, (seed, (kind, detail, text)) in enumerate(zip(seeds, results), 1):
            if done % 500 == 0:
                print(f"  {done} specs, {time.perf_counter() - t0:.0f} s: {dict(counts)}", flush=True)
            counts[kind] += 1
            if kind == "violation":
                counts["violation: " + detail.splitlines()[0][:90]] += 0
                if shown < args.show:
                    shown += 1
                    print(f"--- seed {seed}: {detail}\n{text}", flush=True)
    dt = time.perf_counter() - t0
    print(f"fuzz: {args.n} specs in {dt:.0f} s: {counts['ok']} ok (built, ran, agreed), "
          f"{counts['rejected']} rejected with one file:line:col error, {counts['violation']} violations")
    return 1 if counts["violation"] else 0


if __name__ == "__main__":
    sys.exit(main())
