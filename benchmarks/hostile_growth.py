"""Does the work grow linearly with the spec? Hostile-spec families at growing sizes (issue #16).

Usage (from the repository root)::

    .venv/bin/python benchmarks/hostile_growth.py [--quick]

Families (each spec is written to a temporary folder):

* ``flat``: a network that is one flat list of n unnamed ``relu`` (named relu, relu_1, ...; the
  naming was O(n²)), n = 5k, 10k, 20k, 40k;
* ``dense``: ``{dense: {conv: {out: 1, kernel: 1}}, repeat: n}``, n = 250, 500, 1k, 2k (its graph
  holds ~n²/2 edges: concatenation j reads j + 1 outputs, which is inherent, so the element counted
  is the edge; n = 2k needs ``--max-edges``, which the run raises), and n = 8k at the default limits,
  which must be refused at once;
* ``params``: a chain of n parameters ``p{i}: $p{i-1} + 1`` written last-first (the resolution
  was a fixed point, O(n²)), n = 500, 1k, 2k, 3k;
* ``repeat``: ``repeat: 1000000000`` (plain, with ``names:``, in ``dense:``): refused at once;
* ``cells``: a pattern of k adjacent captures ``{c0}{c1}...`` (refused when loaded: the regex
  backtracked exponentially) and k captures separated by ``-`` matched against a word that fails
  only at its end, k = 5, 10, 15, 20.

Each spec is compiled (load + lower + stats, what ``archspec stats`` does) in a fresh child process
that has imported archspec first: wall time (``perf_counter``) and peak RSS of the child
(``ru_maxrss``) are reported. A family grows linearly when its time per element (node, edge,
parameter) at the largest size is at most 2x that at the smallest; a refused spec must be refused in
under a second.

This file imports only the standard library; archspec runs in child processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAD = "name: hostile\ninput: [3, 8, 8]\n"

CHILD = r"""
import json, resource, sys, time
import archspec.analysis, archspec.cli.main
from archspec.analysis import compile_spec
from archspec.errors import SpecError
from archspec.limits import configure
path, max_edges = sys.argv[1], int(sys.argv[2])
if max_edges:
    configure(max_edges=max_edges)
t = time.perf_counter()
try:
    (net, g, st), = compile_spec(path)
    out = {"ok": True, "nodes": len(g), "edges": sum(len(n.inputs) for n in g.nodes())}
except SpecError as e:
    out = {"ok": False, "error": e.format().split(chr(10))[0]}
out["seconds"] = time.perf_counter() - t
out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def flat(n: int) -> str:
    return HEAD + "network:\n" + "  - relu\n" * n


def dense(n: int) -> str:
    return HEAD + f"network:\n  block: {{dense: {{conv: {{out: 1, kernel: 1}}}}, repeat: {n}}}\n"


def params(n: int) -> str:
    lines = "".join(f"  p{i}: {1 if i == 0 else f'$p{i - 1} + 1'}\n" for i in reversed(range(n)))
    return HEAD + "params:\n" + lines + f"network:\n  - {{conv: {{out: p{n - 1}, kernel: 1}}}}\n"


def cells_adjacent(k: int) -> str:
    pattern = "".join("{c%d}" % i for i in range(k))
    return HEAD + f'cells:\n  "{pattern}": relu\nnetwork:\n  - "{"1" * 30}x"\n'


def cells_separated(k: int) -> str:
    pattern = "-".join("{c%d}" % i for i in range(k))
    word = "-".join(["1" * 50] * (k - 1)) + "-x"
    return HEAD + f'cells:\n  "{pattern}": relu\nnetwork:\n  - "{"-".join(["7"] * k)}"\n  - "{word}"\n'


REPEATS = {
    "repeat 1e9": HEAD + "network:\n  - {relu: {}, repeat: 1000000000}\n",
    "repeat 1e9 names:": HEAD + 'network:\n  body: {relu: {}, repeat: 1000000000, names: "l{i}"}\n',
    "dense 1e9": dense(1_000_000_000),
    "dense 8k (default caps)": dense(8000),
}


def run(text: str, tmp: Path, name: str, max_edges: int = 0) -> dict:
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), str(max_edges)], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=600)
    if proc.returncode != 0:
        return {"ok": False, "error": "child failed: " + proc.stderr.strip().split("\n")[-1], "seconds": 0.0,
                "rss_mb": 0.0}
    res = json.loads(proc.stdout.strip().split("\n")[-1])
    res["bytes"] = len(text.encode())
    return res


def family(title: str, unit: str, sizes: list[int], make, tmp: Path, count, max_edges: int = 0) -> bool:
    print(f"\n{title}")
    print(f"  {'n':>7}  {'file':>9}  {'seconds':>8}  {'peak RSS':>9}  {unit + 's':>10}  {'µs/' + unit:>9}  result")
    per = []
    for n in sizes:
        r = run(make(n), tmp, f"{title.split()[0]}{n}", max_edges)
        elems = count(n, r)
        us = r["seconds"] / max(elems, 1) * 1e6
        per.append(us)
        result = f"ok, {r['nodes']:,} nodes" if r["ok"] else "error: " + r["error"].split(": error: ", 1)[-1][:70]
        print(f"  {n:>7,}  {r['bytes'] / 1024:>7.0f}KB  {r['seconds']:>8.2f}  {r['rss_mb']:>7.0f}MB  {elems:>10,}  "
              f"{us:>9.2f}  {result}")
    ratio = per[-1] / per[0] if per[0] else float("inf")
    linear = ratio <= 2.0
    print(f"  growth: µs per {unit} at n = {sizes[-1]:,} vs n = {sizes[0]:,}: {ratio:.2f}x -> "
          f"{'linear' if linear else 'NOT linear'}")
    return linear


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke test)")
    args = ap.parse_args()
    q = args.quick
    ok = True
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ok &= family("flat list of unnamed relus", "node", [500, 1000, 2000] if q else [5000, 10000, 20000, 40000],
                     flat, tmp, lambda n, r: r.get("nodes", n))
        ok &= family("dense block (--max-edges raised to 10^7)", "edge", [125, 250, 500] if q else [250, 500, 1000, 2000],
                     dense, tmp, lambda n, r: r.get("edges", n), max_edges=10_000_000)
        ok &= family("params chain, last-first", "param", [100, 200, 400] if q else [500, 1000, 2000, 3000],
                     params, tmp, lambda n, r: n)
        ok &= family("cells, k captures separated by '-' (a word failing at its end)", "capture",
                     [5, 10, 15, 20], cells_separated, tmp, lambda n, r: n)
        print("\nrefused at once (default limits)")
        for k in [5, 10, 15, 20]:
            REPEATS[f"cells, {k} adjacent captures"] = cells_adjacent(k)
        for name, text in REPEATS.items():
            r = run(text, tmp, name.replace(" ", "_").replace(":", "").replace("(", "").replace(")", ""))
            fast = not r["ok"] and r["seconds"] < 1.0
            ok &= fast
            print(f"  {name:<26} {r['seconds']:>6.3f} s {r['rss_mb']:>5.0f}MB  "
                  f"{'refused' if fast else 'NOT REFUSED FAST'}: {r.get('error', '').split(': error: ', 1)[-1][-100:]}")
    print(f"\nverdict: {'every family linear, every hostile spec refused at once' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
