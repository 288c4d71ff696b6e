"""A short fixed-seed sample of the hostile fuzz harness (benchmarks/fuzz_hostile.py).

Every mutant of the zoo must end in success or one clean error line: no traceback, no hang, no
running out of memory under RLIMIT_AS. The long runs are in docs/benchmarks.md.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the harness forks")


def _harness():
    spec = importlib.util.spec_from_file_location("fuzz_hostile", ROOT / "benchmarks" / "fuzz_hostile.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_hostile"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_classifier():
    fh = _harness()
    ok, one = 0, 1 << 8
    assert fh.classify(ok, False, "", "table") == "ok"
    assert fh.classify(one, False, "x.yaml:3:4: error: network: bad\n  hint: h\n", "") == "clean"
    assert fh.classify(one, False, "x.yaml:3:4: error: a\nx.yaml:5:1: error: b\n", "") == "traceback"
    assert fh.classify(one, False, "error: no position\n", "") == "traceback"
    assert fh.classify(one, False, "Traceback (most recent call last):\n", "") == "traceback"
    assert fh.classify(2 << 8, False, "Usage: ...\n", "") == "traceback"
    assert fh.classify(fh.EXIT_MEMORY << 8, False, "MemoryError\n", "") == "over-memory"
    assert fh.classify(signal.SIGKILL, True, "", "") == "hang"
    assert fh.classify(signal.SIGSEGV, False, "", "") == "crash"


def test_mutants_are_reproducible():
    fh = _harness()
    seeds = fh.load_seeds(ROOT / "specs")
    assert len(seeds) >= 80
    a = [fh.make_case(i, seeds, 7) for i in range(30)]
    b = [fh.make_case(i, seeds, 7) for i in range(30)]
    assert [(c.seed_file, c.mutations, c.data) for c in a] == [(c.seed_file, c.mutations, c.data) for c in b]
    assert len({c.data for c in a}) == 30


def test_a_fixed_sample_ends_cleanly():
    fh = _harness()
    counts, failing, _ = fh.fuzz(20, jobs=2, seed=16, timeout=20.0, progress=False)
    assert sum(counts.values()) == 40
    detail = [(c.seed_file, c.mutations, {k: v[:2] for k, v in c.results.items()}) for c in failing]
    assert not failing, detail
    assert counts["clean"] > 0
