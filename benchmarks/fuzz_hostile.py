"""A resource-bounded fuzz harness for hostile specs (issue #16, part 5).

Usage (from the repository root)::

    .venv/bin/python benchmarks/fuzz_hostile.py [--n 10000] [--jobs 2] [--seed 0] [--keep DIR]

The zoo (``specs/**/*.yaml``) gives the seeds. Each case takes one seed and applies one to three
random mutations: huge numbers (10^9 .. 10^30, 2^63), negative numbers and zero, 1000-deep lists and
mappings, hostile names and paths (``../../x``, ``/etc/passwd``, NUL bytes, unicode, right-to-left
marks, 10,000-character words, Python keywords), deleted and duplicated keys, values swapped for
another type, a ``repeat:`` blown up, random bytes written over the text, truncation. The mutant is
written next to a copy of its seed in a private copy of ``specs/`` (so ``include:`` and ``extends:``
still resolve), then ``archspec validate`` and ``archspec stats`` run on it.

Speed: the harness imports archspec once and **forks one child per command** (no interpreter
start-up per case). The child sets ``RLIMIT_AS`` (1 GiB by default, on top of the address space it
inherits: ~100 MB here, more in a test process) and ``RLIMIT_CPU`` (the timeout,
20 s of CPU time), sends its stdout and stderr to files and runs the typer app in-process, as
``python -m archspec`` would; the parent keeps ``--jobs`` children running and kills one that is
still running after three times the timeout of wall-clock time. The timeout is CPU time because the
machines this runs on are shared (2 cores, load 4-8): wall time there measures the neighbours.

Each run is classified:

* ``ok``: exit 0;
* ``clean``: exit 1 and stderr's first line matches ``^[^\\n]+:\\d+:\\d+: error: `` (at most one
  ``  hint:`` line after it), no traceback;
* ``traceback``: an uncaught exception, ``Traceback`` in the output, an error line in another form,
  or another exit code;
* ``hang``: past 20 s of CPU time (``RLIMIT_CPU``), or 60 s of wall-clock time;
* ``over-memory``: a ``MemoryError`` under ``RLIMIT_AS``;
* ``crash``: killed by another signal (a C stack overflow, say).

It prints counts per class (and per mutation for the failures), saves every failing case under
``--keep`` (default ``fuzz-failures/``) with the command and its output, and exits 1 if any run was a
traceback, hang, over-memory or crash. ``tests/test_fuzz_hostile.py`` runs a short fixed-seed sample.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CLEAN = re.compile(r"^[^\n]+:\d+:\d+: error: ")
FAILURES = ("traceback", "hang", "over-memory", "crash")
EXIT_MEMORY, EXIT_EXCEPTION = 77, 78

HOSTILE_STRINGS = [
    "../../x", "/etc/passwd", "../" * 40 + "etc/passwd", "a\x00b", "\x00", "ünïcödé_名前", "\u202ereversed",
    "x" * 10_000, "{i}{i}{i}", "{", "}", "$", "$$x", "${a}", "-1", "", " ", "in", "class", "None", "~",
    "1e309", "nan", "inf", "0x10", "__import__('os')", "conv3-64" * 500, "\t\n", "'", '"', "\\", "*", "&a",
    "1" * 5000 + "x", "i" * 2001, "[" * 100, "(" * 100 + "1" + ")" * 100, "2 ** 64 ** 64", "layers[10**9]",
]
HUGE = [10**9, 10**12, 10**15, 10**18, 10**24, 10**30, 2**63, 2**64 + 1, 10**31]


@dataclass
class Case:
    index: int
    seed_file: str
    mutations: list[str]
    data: bytes
    path: str = ""
    results: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------ mutations
def _slots(obj, out: list, depth: int = 0) -> list:
    """Every (container, key) in the document, for picking a place to mutate."""
    if depth > 60:
        return out
    if isinstance(obj, dict):
        for k in list(obj):
            out.append((obj, k))
            _slots(obj[k], out, depth + 1)
    elif isinstance(obj, list):
        for i in range(len(obj)):
            out.append((obj, i))
            _slots(obj[i], out, depth + 1)
    return out


def _deep(rng: random.Random) -> str:
    n = rng.choice([100, 500, 1000, 1000, 5000])
    if rng.random() < 0.5:
        return "[" * n + "1" + "]" * n
    return "{a: " * n + "1" + "}" * n


def _random_value(rng: random.Random):
    return rng.choice([None, True, False, 0, -1, 1.5, float("inf"), "relu", [], {}, [1, 2], {"conv": 3},
                       rng.choice(HUGE), rng.choice(HOSTILE_STRINGS), "$nope", [[[]]], {"repeat": 3}])


def mutate(doc, rng: random.Random, deep: dict) -> str:
    """One structural mutation of the parsed document, in place; returns its name."""
    slots = _slots(doc, [])
    kind = rng.choice(["huge", "negative", "deep", "name", "key", "path", "delete", "swap", "repeat", "repeat",
                       "cells", "params"])
    if not slots:
        kind = "path"
    if kind in ("huge", "negative"):
        ints = [(c, k) for c, k in slots if isinstance(c[k], int) and not isinstance(c[k], bool)]
        c, k = rng.choice(ints or slots)
        c[k] = rng.choice(HUGE) * rng.choice([1, 1, -1]) if kind == "huge" else rng.choice([0, -1, -(10**9), -3])
    elif kind == "deep":
        c, k = rng.choice(slots)
        marker = f"__DEEP{len(deep)}__"
        deep[marker] = _deep(rng)
        c[k] = marker
    elif kind == "name":
        c, k = rng.choice(slots)
        c[k] = rng.choice(HOSTILE_STRINGS)
    elif kind == "key":
        dicts = [(c, k) for c, k in slots if isinstance(c, dict)]
        if dicts:
            c, k = rng.choice(dicts)
            c[rng.choice(HOSTILE_STRINGS) or "k"] = c.pop(k)
    elif kind == "path":
        if isinstance(doc, dict):
            key = rng.choice(["extends", "include"])
            p = rng.choice(["../../x", "/etc/passwd", "a\x00b.yaml", "ünï.yaml", ".", "..", "/", "blocks",
                            "../specs/resnet.yaml", "~/x.yaml", "x" * 300])
            doc[key] = p if key == "extends" else [p, rng.choice(HOSTILE_STRINGS)]
    elif kind == "delete":
        c, k = rng.choice(slots)
        del c[k]
    elif kind == "swap":
        c, k = rng.choice(slots)
        c[k] = _random_value(rng)
    elif kind == "repeat":
        reps = [(c, k) for c, k in slots if k == "repeat"]
        if reps:
            c, k = rng.choice(reps)
            c[k] = rng.choice(HUGE + [-1, 0, "1e9", "10**30", "$layers"])
        else:
            calls = [(c, k) for c, k in slots if isinstance(c[k], dict) and len(c[k]) == 1]
            if calls:
                c, k = rng.choice(calls)
                c[k]["repeat"] = rng.choice(HUGE)
                if rng.random() < 0.5:
                    c[k]["names"] = rng.choice(["l{i}", "{i}", "x", "{i}{i}"])
    elif kind == "cells" and isinstance(doc, dict):
        n = rng.randint(2, 25)
        sep = rng.choice(["", "", "-", "0", "1x"])
        pattern = sep.join("{c%d}" % i for i in range(n))
        doc.setdefault("cells", {})
        if isinstance(doc["cells"], dict):
            doc["cells"][pattern] = "relu"
        net = doc.get("network")
        word = "1" * rng.randint(20, 60) + "x"
        if isinstance(net, list):
            net.insert(0, word)
        elif isinstance(net, dict):
            net["zz"] = word
    elif kind == "params" and isinstance(doc, dict):
        n = rng.randint(50, 3000)
        chain = {f"p{i}": (1 if i == 0 else f"$p{i - 1} + p{i - 1}") for i in range(n)}
        if rng.random() < 0.5:
            chain = dict(reversed(list(chain.items())))
        if rng.random() < 0.2:
            chain["p0"] = f"$p{n - 1}"  # a cycle
        doc["params"] = chain
    return kind


def text_mutation(text: bytes, rng: random.Random) -> tuple[bytes, str]:
    kind = rng.choice(["bytes", "truncate", "dupline", "dupline", "flip", "indent"])
    if not text:
        return os.urandom(rng.randint(1, 64)), "bytes"
    if kind == "bytes":
        pos = rng.randrange(len(text))
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        return text[:pos] + junk + text[pos + (len(junk) if rng.random() < 0.5 else 0):], kind
    if kind == "truncate":
        return text[:rng.randrange(len(text))], kind
    lines = text.split(b"\n")
    i = rng.randrange(len(lines))
    if kind == "dupline":  # a duplicated key, usually
        lines.insert(i, lines[i])
    elif kind == "flip":
        line = bytearray(lines[i])
        if line:
            line[rng.randrange(len(line))] = rng.choice(b":-[]{}&*!|>'\"%@`#,? 0123456789")
        lines[i] = bytes(line)
    else:
        lines[i] = b" " * rng.randint(1, 7) + lines[i]
    return b"\n".join(lines), kind


def make_case(index: int, seeds: list[tuple[str, bytes, object]], seed: int) -> Case:
    rng = random.Random(f"{seed}:{index}")
    seed_file, raw, parsed = rng.choice(seeds)
    mutations: list[str] = []
    if parsed is not None and rng.random() < 0.8:
        doc = yaml.safe_load(raw)  # a fresh copy to mutate
        deep: dict[str, str] = {}
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            mutations.append(mutate(doc, rng, deep))
        try:
            text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=rng.random() < 0.5, width=100)
        except (yaml.YAMLError, RecursionError, ValueError):
            text = raw.decode("utf-8", "replace")
            mutations.append("undumpable")
        for marker, value in deep.items():
            text = text.replace(marker, value)
        data = text.encode("utf-8", "surrogatepass")
        if rng.random() < 0.15:
            data, kind = text_mutation(data, rng)
            mutations.append(kind)
    else:
        data = raw
        for _ in range(rng.choice([1, 1, 2])):
            data, kind = text_mutation(data, rng)
            mutations.append(kind)
    return Case(index, seed_file, mutations, data)


# ------------------------------------------------------------------------------------ running
def child(argv: list[str], out_path: str, err_path: str, mem_bytes: int, cpu_s: int) -> None:
    """In the forked child: limits, redirected output, the CLI in-process; never returns."""
    code = EXIT_EXCEPTION
    try:
        # the budget is on top of what the fork inherits (about 100 MB from this script; more from a
        # test process that has compiled the zoo), so a child starts with the same room to work in
        limit = _address_space() + mem_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 2))
        out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), write_through=True)
        sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), write_through=True)
        from archspec.cli.main import app
        try:
            app(args=argv, prog_name="archspec")
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except MemoryError:
            code = EXIT_MEMORY
            sys.stderr.write("MemoryError\n")
        except BaseException:  # what `python -m archspec` would print as a traceback
            traceback.print_exc()
            code = EXIT_EXCEPTION
        sys.stdout.flush()
        sys.stderr.flush()
    except MemoryError:
        code = EXIT_MEMORY
    finally:
        os._exit(code)


def _address_space() -> int:
    """Bytes of virtual memory this process maps now (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def classify(status: int, killed: bool, stderr: str, stdout: str) -> str:
    if killed:
        return "hang"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return "hang" if sig in (signal.SIGXCPU, signal.SIGKILL) else "crash"
    code = os.WEXITSTATUS(status)
    if code == EXIT_MEMORY:
        return "over-memory"
    if "Traceback" in stderr or "Traceback" in stdout:
        return "traceback"
    if code == 0:
        return "ok"
    lines = stderr.rstrip("\n").split("\n")
    if code == 1 and CLEAN.match(lines[0]) and (len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("  hint: "))):
        return "clean"
    return "traceback"


def run_all(cases: list[Case], commands: list[list[str]], jobs: int, timeout: float, mem_bytes: int,
            work: Path, progress: bool = True) -> None:
    """Fork one child per (case, command), at most ``jobs`` at a time."""
    todo = [(c, cmd) for c in cases for cmd in commands]
    running: dict[int, tuple] = {}
    done = 0
    t0 = time.perf_counter()
    outdir = work / "out"
    outdir.mkdir(exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    while todo or running:
        while todo and len(running) < jobs:
            case, cmd = todo.pop(0)
            tag = f"{case.index}-{cmd[0]}"
            out_path, err_path = str(outdir / f"{tag}.out"), str(outdir / f"{tag}.err")
            pid = os.fork()
            if pid == 0:
                child(cmd + [case.path], out_path, err_path, mem_bytes, max(1, int(timeout)))
            running[pid] = (case, cmd, out_path, err_path, time.perf_counter(), False)
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            now = time.perf_counter()
            for p, (case, cmd, o, e, start, killed) in list(running.items()):
                if not killed and now - start > 3 * timeout:
                    os.kill(p, signal.SIGKILL)
                    running[p] = (case, cmd, o, e, start, True)
            time.sleep(0.005)
            continue
        if pid not in running:
            continue
        case, cmd, o, e, start, killed = running.pop(pid)
        stdout = Path(o).read_text(errors="replace") if os.path.exists(o) else ""
        stderr = Path(e).read_text(errors="replace") if os.path.exists(e) else ""
        for p in (o, e):
            if os.path.exists(p):
                os.unlink(p)
        case.results[cmd[0]] = (classify(status, killed, stderr, stdout), time.perf_counter() - start,
                                stderr[-3000:])
        done += 1
        if progress and done % 500 == 0:
            el = time.perf_counter() - t0
            print(f"  {done}/{done + len(todo) + len(running)} runs, {el:.0f} s", file=sys.stderr, flush=True)


def load_seeds(spec_root: Path) -> list[tuple[str, bytes, object]]:
    seeds = []
    for p in sorted(spec_root.rglob("*.yaml")):
        raw = p.read_bytes()
        try:
            parsed = yaml.safe_load(raw)
        except yaml.YAMLError:
            parsed = None
        seeds.append((str(p.relative_to(spec_root)), raw, parsed))
    return seeds


def fuzz(n: int, jobs: int = 2, seed: int = 0, timeout: float = 20.0, mem_mb: int = 1024,
         keep: Path | None = None, commands: tuple[str, ...] = ("validate", "stats"),
         progress: bool = True) -> tuple[Counter, list[Case], float]:
    """Run ``n`` cases; returns the counts, the failing cases and the wall time."""
    import archspec.analysis  # noqa: F401  (imported once, before forking)
    import archspec.check  # noqa: F401
    import archspec.cli.main  # noqa: F401
    import archspec.codegen  # noqa: F401
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fuzz-hostile-") as d:
        work = Path(d)
        specs = work / "specs"
        shutil.copytree(ROOT / "specs", specs)
        seeds = load_seeds(ROOT / "specs")
        cases = []
        for i in range(n):
            case = make_case(i, seeds, seed)
            target = specs / case.seed_file
            case.path = str(target.with_name(f"{target.stem}.fuzz{i}.yaml"))
            Path(case.path).write_bytes(case.data)
            cases.append(case)
        run_all(cases, [[c] for c in commands], jobs, timeout, mem_mb * 2**20, work, progress)
    counts: Counter = Counter()
    failing = []
    for c in cases:
        for cmd, (cls, _, _) in c.results.items():
            counts[cls] += 1
        if any(cls in FAILURES for cls, _, _ in c.results.values()):
            failing.append(c)
    elapsed = time.perf_counter() - t0
    if keep is not None and failing:
        keep.mkdir(parents=True, exist_ok=True)
        for c in failing:
            stem = f"case{c.index}"
            (keep / f"{stem}.yaml").write_bytes(c.data)
            report = [f"seed: specs/{c.seed_file}", f"mutations: {', '.join(c.mutations)}"]
            for cmd, (cls, secs, err) in c.results.items():
                report.append(f"--- archspec {cmd}: {cls} ({secs:.1f} s)\n{err}")
            (keep / f"{stem}.txt").write_text("\n".join(report) + "\n")
    return counts, failing, elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description="fuzz archspec with hostile mutants of the zoo")
    ap.add_argument("--n", type=int, default=1000, help="number of cases (each runs validate and stats)")
    ap.add_argument("--jobs", type=int, default=2, help="children at a time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=20.0,
                    help="CPU seconds per command (wall clock: three times as many)")
    ap.add_argument("--mem-mb", type=int, default=1024, help="RLIMIT_AS of each child, MiB")
    ap.add_argument("--keep", type=Path, default=Path("fuzz-failures"), help="where failing cases go")
    args = ap.parse_args()
    print(f"fuzz_hostile: {args.n} cases x (validate, stats), seed {args.seed}, {args.jobs} jobs, "
          f"timeout {args.timeout:g} s, RLIMIT_AS {args.mem_mb} MiB", flush=True)
    counts, failing, elapsed = fuzz(args.n, args.jobs, args.seed, args.timeout, args.mem_mb, args.keep)
    total = sum(counts.values())
    print(f"runs: {total} in {elapsed:.0f} s ({elapsed / max(total, 1) * 1000:.0f} ms per run)")
    for cls in ("ok", "clean") + FAILURES:
        print(f"  {cls:<12} {counts.get(cls, 0):>7}")
    if failing:
        by_mutation: Counter = Counter()
        for c in failing:
            by_mutation["+".join(c.mutations)] += 1
        print(f"failing cases: {len(failing)} (saved under {args.keep}/)")
        for m, k in by_mutation.most_common(20):
            print(f"  {k:>5}  {m}")
        for c in failing[:10]:
            for cmd, (cls, secs, err) in c.results.items():
                if cls in FAILURES:
                    last = [ln for ln in err.strip().split("\n") if ln.strip()][-1:] or [""]
                    print(f"  case {c.index} ({c.seed_file}; {'+'.join(c.mutations)}) {cmd}: {cls} "
                          f"{secs:.1f} s: {last[0][:150]}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
