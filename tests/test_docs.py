"""docs/spec.md's complete examples: the valid ones build, run and agree with the IR (the compiler
contract, tests/contract.py); the error examples print exactly the documented error lines."""

import re

import pytest

from archspec.errors import SpecError
from archspec.ir import lower
from archspec.load import load_networks

from .conftest import ROOT
from .contract import check_spec

BLOCKS = re.findall(r"```(\w*)\n(.*?)```", (ROOT / "docs" / "spec.md").read_text(encoding="utf-8"), re.S)


def _named(first_comment: str) -> list[tuple[str, str, str]]:
    """(file name, yaml, the block after it) for yaml blocks whose first line is '# NAME.yaml'."""
    out = []
    for k, (lang, body) in enumerate(BLOCKS):
        m = re.match(r"# ([\w.]+\.yaml)", body)
        if lang == "yaml" and m and m.group(1).startswith(first_comment):
            out.append((m.group(1), body, BLOCKS[k + 1][1] if k + 1 < len(BLOCKS) else ""))
    return out


def test_the_one_minute_spec_builds_and_agrees(tmp_path):
    lenet = next(b for lang, b in BLOCKS if lang == "yaml" and b.startswith("name: lenet5"))
    f = tmp_path / "lenet5.yaml"
    f.write_text(lenet)
    assert check_spec(f, tmp_path / "out").kind == "ok"


def test_the_include_example_builds_and_agrees(tmp_path):
    (name_lib, lib, _), = _named("lib")
    (name_net, net, _), = _named("net")
    (tmp_path / name_lib).write_text(lib)
    (tmp_path / name_net).write_text(net)
    assert check_spec(tmp_path / name_net, tmp_path / "out").kind == "ok"
    ids = [n.id for n in lower(load_networks(str(tmp_path / name_net))[0]).nodes()]
    assert ids[:4] == ["input", "stem.conv", "stem.bn", "stem.relu"] and "head.2" in ids


@pytest.mark.parametrize("name", ["typo.yaml", "shortcut.yaml", "table.yaml"])
def test_the_error_examples_print_what_the_docs_show(tmp_path, name, monkeypatch):
    (fname, body, expected), = [t for t in _named(name[:-5]) if t[0] == name]
    (tmp_path / fname).write_text(body.split("\n", 1)[1])  # the docs name the file in a comment above it
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as e:
        for net in load_networks(fname):
            lower(net)
    assert e.value.format() == expected.strip()
