"""The fast YAML path (libyaml's parser under PyYAML's Python composer) against the reference
(PyYAML's pure-Python loader): the same values, types, marks and raw texts, and the same error for
a document either rejects (archspec.spec.yamlio.loads_yaml)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from archspec.errors import SpecError
from archspec.spec import yamlio
from archspec.spec.yamlio import LocDict, LocList, loads_yaml

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p for p in (ROOT / "specs").rglob("*.yaml"))


def tree(v: Any) -> Any:
    """Everything a loaded document holds, marks included, as plain comparable data."""
    if isinstance(v, LocDict):
        return ("dict", v.mark, [(type(k).__name__, k, tree(x)) for k, x in v.items()],
                sorted(map(repr, v.key_marks.items())), sorted(map(repr, v.value_marks.items())),
                sorted(map(repr, v.raw.items())))
    if isinstance(v, LocList):
        return ("list", v.mark, [tree(x) for x in v], list(v.item_marks), sorted(v.raw.items()))
    if isinstance(v, float):
        return ("float", repr(v))
    return (type(v).__name__, v)


def outcome(text: str, fast: bool) -> Any:
    try:
        return tree(loads_yaml(text, filename="t.yaml", fast=fast))
    except SpecError as err:
        return ("error", err.format())


def same(text: str) -> None:
    assert outcome(text, True) == outcome(text, False), text


def test_the_fast_path_is_there_when_pyyaml_has_libyaml():
    assert (yamlio._FastLoader is not None) == bool(getattr(yaml, "__with_libyaml__", False))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_spec_loads_the_same(path: Path):
    text = path.read_text(encoding="utf-8")
    fast = outcome(text, True)
    assert fast[0] != "error"
    assert fast == outcome(text, False)


CASES = [
    "",
    "# only a comment\n",
    "---\n",
    "---\na: 1\n...\n",
    "a: 1\n---\nb: 2\n",
    "a: 1\na: 2\n",
    "a: &x {b: 1, c: [1, 2]}\nd: *x\ne: {<<: *x, c: 3}\n",
    "a: &x [1, *x]\n",
    "a: *nothing\n",
    "base: &b {x: 1}\nother: &o {y: 2}\nm: {<<: [*b, *o], z: 3}\n",
    "m: {<<: 1}\n",
    "a: !!python/object:os.system ls\n",
    "a: !!int 12\nb: !!str 12\nc: !!float 1\nd: !!bool yes\ne: !!null ''\n",
    "a: !!int abc\n",
    "a: !custom 1\n",
    "a: ! 12\nb: ! x\n",
    "on: 1\noff: 2\nyes: 3\nno: 4\nnull: 5\n~: 6\n",
    "'': 1\n",
    "? [a, b]\n: 1\n",
    "? a\n: 1\n",
    "a: 0x1F\nb: 0o17\nc: 1_000\nd: 1e3\ne: 3.8e9\nf: .5\ng: -0.0\nh: 0.50\ni: 2001-12-14\nj: 1:20\n",
    "a: .nan\n",
    "a: .inf\n",
    "a: 1e999\n",
    "a: 'it''s'\nb: \"tab\\there\"\nc: \"\\u00e9\"\n",
    "a: |\n  line 1\n  line 2\nb: >-\n  folded\n  text\n",
    "a: plain\n  continued\nb: 2\n",
    "é: ü\nnested:\n  ключ: 值\n  x: [α, β, {γ: δ}]\n",
    "a: 1\x85b: 2\n",
    "a: 1\u2028b: 2\n",
    "a:\n\t- 1\n",
    "a: [1, 2\n",
    "a: {b: 1\n",
    "a: b: c\n",
    "- a\nb: 1\n",
    "a: 'unterminated\n",
    "a: \"bad \\q escape\"\n",
    "a: 1\x07\n",
    "a: \ud800\n",
    "a: [1,2,]\n",
    "{a: 1, b: [x, y], c: {d: e}}\n",
    "[1, [2, [3, [4]]]]\n",
    "a: {b:1}\n",
    "a: [b:1]\n",
    "a: [b: 1, c]\n",
    "a: -1\nb: - 1\n",
    "a: *\n",
    "a: &\n",
    "a: @x\n",
    "a: `x`\n",
    "%YAML 1.1\n---\na: 1\n",
    "%YAML 2.0\n---\na: 1\n",
    "%TAG !e! tag:example.com,2000:\n---\na: !e!x 1\n",
    "%FOO bar\n---\na: 1\n",
    "a: 1 # comment\n#b: 2\n",
    "a:    \n  - 1\n  -\n  - 3\n",
    "x" * 2000 + ": 1\n",
    "a: [" + "[" * 150 + "]" * 150 + "]\n",
    "[" * 300 + "]" * 300 + "\n",
    "[" * 5000 + "]" * 5000 + "\n",
    "- " * 400 + "x\n",
    "a: " + "{b: " * 300 + "1" + "}" * 300 + "\n",
]


@pytest.mark.parametrize("text", CASES, ids=range(len(CASES)))
def test_edge_cases_load_or_fail_the_same(text: str):
    same(text)


def test_mutated_specs_load_or_fail_the_same():
    """Random edits of real specs (typos, stray indicators, tabs, lost or doubled lines)."""
    rng = random.Random(0)
    texts = [p.read_text(encoding="utf-8") for p in SPECS[::7]]
    alphabet = ":-[]{},&*!|>'\"#%@`?\t\n\r x0é~=<.;\\\u00a0\ufeff\x85\u2028"
    for case in range(600):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(text) + 1)
            kind = rng.randrange(4)
            if kind == 0:
                text = text[:i] + rng.choice(alphabet) + text[i:]
            elif kind == 1:
                text = text[:i] + text[i + 1:]
            elif kind == 2:
                lines = text.split("\n")
                j = rng.randrange(len(lines))
                lines.insert(j, lines[j])
                text = "\n".join(lines)
            else:
                text = text[:i] + " " * rng.randint(1, 3) + text[i:]
        same(text)


def test_a_file_loaded_again_is_parsed_once_and_handed_out_as_a_copy(tmp_path: Path, monkeypatch):
    f = tmp_path / "lib.yaml"
    f.write_text("blocks:\n  B: {body: [relu, {conv: {out: 8}}]}\ninclude: [a.yaml]\n")
    first = yamlio.load_yaml(f)
    parses = []
    real = yamlio.loads_yaml
    monkeypatch.setattr(yamlio, "loads_yaml", lambda *a, **k: parses.append(1) or real(*a, **k))
    dict.__setitem__(first, "include", ["changed"])  # what the loader does with the document it gets
    first["blocks"]["B"]["body"].append("x")
    first.key_marks.clear()
    second = yamlio.load_yaml(f)
    assert parses == []
    assert tree(second) == tree(loads_yaml(f.read_text(), filename=str(f), fast=False))
    assert second is not first and second["blocks"] is not first["blocks"]
    f.write_text("blocks: {}\n")  # changed on disk: read and parsed again
    assert yamlio.load_yaml(f) == {"blocks": {}} and parses == [1]
