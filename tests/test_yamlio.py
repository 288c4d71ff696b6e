"""Tests for archspec.spec.yamlio: safe YAML loading with source positions."""

from __future__ import annotations

import copy
import json
import time

import pytest

from archspec.errors import Mark, SpecError
from archspec.spec.yamlio import LocDict, LocList, load_yaml, loads_yaml, mark_at, raw_at


def err_of(text: str, filename: str = "spec.yaml") -> SpecError:
    with pytest.raises(SpecError) as info:
        loads_yaml(text, filename=filename)
    return info.value


# -- values and types --------------------------------------------------------------------------


def test_values_and_types():
    data = loads_yaml('{a: 1, b: 2.5, c: "x", d: [1, 2], e: null, f: true}')
    assert data == {"a": 1, "b": 2.5, "c": "x", "d": [1, 2], "e": None, "f": True}
    assert type(data) is LocDict and isinstance(data, dict)
    assert type(data["d"]) is LocList and isinstance(data["d"], list)
    assert type(data["a"]) is int
    assert type(data["b"]) is float
    assert type(data["c"]) is str
    assert data["f"] is True
    assert list(data) == ["a", "b", "c", "d", "e", "f"]
    assert json.loads(json.dumps(data)) == data


def test_scalar_documents_and_timestamps():
    assert loads_yaml("42") == 42
    assert loads_yaml("hello") == "hello"
    data = loads_yaml("when: 2024-01-02\nat: 2001-12-14t21:59:43.10-05:00\n")
    assert data == {"when": "2024-01-02", "at": "2001-12-14t21:59:43.10-05:00"}
    assert loads_yaml("x: !!str 12\ny: !!int '7'\nz: !!float 1") == {"x": "12", "y": 7, "z": 1.0}


def test_explicit_tag_with_bad_value():
    err = err_of("x: !!int abc\n")
    assert err.code == "yaml_value"
    assert err.message == "cannot read 'abc' as !!int"
    assert err.mark == Mark("spec.yaml", 1, 4)


def test_number_like_strings_stay_strings_with_raw_text():
    data = loads_yaml("flops: 3.8e9\nratio: 0.50\nparams: 25_557_032\nq: '7'\n")
    assert data == {"flops": "3.8e9", "ratio": 0.5, "params": 25557032, "q": "7"}
    assert data.raw == {"flops": "3.8e9", "ratio": "0.50", "params": "25_557_032", "q": "7"}
    assert raw_at(data, ["ratio"]) == "0.50"
    assert raw_at(data, ["params"]) == "25_557_032"


# -- marks -------------------------------------------------------------------------------------

SPEC = """\
name: resnet
stages:
  - depth: 3
    width: 64
  - depth: 4
    width: 128
ratios: [0.50, 1.0]
flops: 3.8e9
"""


def test_marks_of_keys_values_and_items():
    data = loads_yaml(SPEC, filename="r.yaml")
    assert data.mark == Mark("r.yaml", 1, 1)
    assert data.key_marks["name"] == Mark("r.yaml", 1, 1)
    assert data.value_marks["name"] == Mark("r.yaml", 1, 7)
    assert data.key_marks["stages"] == Mark("r.yaml", 2, 1)
    assert data.value_marks["stages"] == Mark("r.yaml", 3, 3)
    stages = data["stages"]
    assert stages.mark == Mark("r.yaml", 3, 3)
    assert stages.item_marks == [Mark("r.yaml", 3, 5), Mark("r.yaml", 5, 5)]
    second = stages[1]
    assert second.mark == Mark("r.yaml", 5, 5)
    assert second.key_marks["width"] == Mark("r.yaml", 6, 5)
    assert second.value_marks["width"] == Mark("r.yaml", 6, 12)
    ratios = data["ratios"]
    assert ratios.mark == Mark("r.yaml", 7, 9)
    assert ratios.item_marks == [Mark("r.yaml", 7, 10), Mark("r.yaml", 7, 16)]
    assert ratios.raw == {0: "0.50", 1: "1.0"}
    assert data.mark_of("flops") == Mark("r.yaml", 8, 8)
    assert ratios.mark_of(1) == Mark("r.yaml", 7, 16)
    assert ratios.mark_of(5) == ratios.mark


def test_mark_of_falls_back_to_key_then_mapping():
    data = loads_yaml("a: 1\n", filename="f.yaml")
    del data.value_marks["a"]
    assert data.mark_of("a") == Mark("f.yaml", 1, 1)
    assert data.mark_of("zzz") == data.mark


def test_mark_at_and_raw_at():
    data = loads_yaml(SPEC, filename="r.yaml")
    assert mark_at(data, []) == Mark("r.yaml", 1, 1)
    assert mark_at(data, ["stages", 1, "width"]) == Mark("r.yaml", 6, 12)
    assert mark_at(data, ["ratios", 0]) == Mark("r.yaml", 7, 10)
    # missing tail: the deepest element reached
    assert mark_at(data, ["stages", 1, "missing", "deeper"]) == Mark("r.yaml", 5, 5)
    assert mark_at(data, ["stages", 9]) == Mark("r.yaml", 3, 3)
    assert mark_at(data, ["nope"]) == Mark("r.yaml", 1, 1)
    # path continues below a scalar: mark of the scalar
    assert mark_at(data, ["name", "x"]) == Mark("r.yaml", 1, 7)
    assert raw_at(data, ["stages", 1, "width"]) == "128"
    assert raw_at(data, ["ratios", 0]) == "0.50"
    assert raw_at(data, ["ratios", -2]) == "0.50"
    assert raw_at(data, ["flops"]) == "3.8e9"
    assert raw_at(data, ["stages", 1]) is None  # not a scalar
    assert raw_at(data, ["stages", 1, "missing"]) is None
    assert raw_at(data, []) is None
    assert mark_at({"a": 1}, ["a"]) is None
    assert raw_at({"a": 1}, ["a"]) is None


# -- keys --------------------------------------------------------------------------------------


def test_duplicate_key():
    err = err_of("a: 1\nb:\n  c: 2\n  d: 3\n  c: 4\n")
    assert err.code == "duplicate_key"
    assert err.message == "duplicate key 'c'"
    assert err.mark == Mark("spec.yaml", 5, 3)
    assert err.hint == "first defined at line 3"
    assert err.format() == (
        "spec.yaml:5:3: error: duplicate key 'c'\n  hint: first defined at line 3"
    )
    assert err.format().splitlines()[0] == "spec.yaml:5:3: error: duplicate key 'c'"


def test_duplicate_key_across_spellings():
    err = err_of('on: 1\n"on": 2\n')
    assert (err.code, err.mark.line, err.message) == ("duplicate_key", 2, "duplicate key 'on'")


def test_bool_looking_keys_keep_their_text():
    data = loads_yaml("on: 1\noff: yes\nYes: no\n3: x\n")
    assert data == {"on": 1, "off": True, "Yes": False, 3: "x"}
    assert list(data) == ["on", "off", "Yes", 3]
    assert data.key_marks["off"] == Mark("<string>", 2, 1)


def test_non_scalar_key_rejected():
    err = err_of("? [a, b]\n: 1\n")
    assert err.code == "yaml_key"
    assert err.message == "mapping keys must be plain names"
    assert err.mark == Mark("spec.yaml", 1, 3)


# -- tags --------------------------------------------------------------------------------------


def test_python_tag_rejected_and_not_executed(tmp_path, monkeypatch):
    import os

    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a) or 0)
    marker = tmp_path / "pwned"
    err = err_of(f'cmd: !!python/object/apply:os.system ["touch {marker}"]\n')
    assert err.code == "yaml_tag"
    assert err.message == "tag '!!python/object/apply:os.system' is not allowed"
    assert err.mark == Mark("spec.yaml", 1, 6)
    assert err.hint == "specs are plain data: use include: to share blocks between files"
    assert calls == []
    assert not marker.exists()


def test_include_tag_rejected():
    err = err_of("model:\n  body: !include foo.yaml\n")
    assert err.code == "yaml_tag"
    assert err.format().splitlines()[0] == (
        "spec.yaml:2:9: error: tag '!include' is not allowed"
    )


@pytest.mark.parametrize(
    "text, tag",
    [
        ("x: !!set {a, b}", "!!set"),
        ("x: !!omap [a: 1]", "!!omap"),
        ("x: !!binary aGk=", "!!binary"),
        ("x: !foo 1", "!foo"),
        ("x: !!str {a: 1}", "!!str"),
        ("x: !!map [1]", "!!map"),
        ("!!python/name:os.system ''", "!!python/name:os.system"),
    ],
)
def test_other_tags_rejected(text, tag):
    err = err_of(text)
    assert err.code == "yaml_tag"
    assert err.message == f"tag '{tag}' is not allowed"


def test_tag_on_key_rejected():
    err = err_of("!foo k: 1\n")
    assert (err.code, err.mark) == ("yaml_tag", Mark("spec.yaml", 1, 1))


# -- anchors, aliases, merges --------------------------------------------------------------------


def test_aliases_give_equal_independent_copies():
    text = "base: &b\n  k: 3\n  ch: [16, 32]\none: *b\ntwo: *b\n"
    data = loads_yaml(text)
    assert data["one"] == data["two"] == data["base"] == {"k": 3, "ch": [16, 32]}
    assert data["one"] is not data["two"] and data["one"] is not data["base"]
    assert data["one"]["ch"] is not data["two"]["ch"]
    data["one"]["ch"].append(64)
    data["one"]["k"] = 5
    assert data["two"] == {"k": 3, "ch": [16, 32]}
    assert data["base"] == {"k": 3, "ch": [16, 32]}
    # marks of an alias's content point at the anchor's definition
    assert data["two"].key_marks["k"] == Mark("<string>", 2, 3)
    # a node's start mark includes its anchor: `&b` on line 1
    assert data.value_marks["two"] == data.value_marks["one"] == Mark("<string>", 1, 7)
    assert data["two"].mark == Mark("<string>", 1, 7)
    assert isinstance(data["two"], LocDict) and isinstance(data["two"]["ch"], LocList)


def test_merge_keys():
    text = (
        "defaults: &d {act: relu, norm: bn, k: 3}\n"
        "extra: &e {k: 5, bias: false, act: gelu}\n"
        "layer:\n"
        "  <<: [*d, *e]\n"
        "  k: 7\n"
        "  name: conv1\n"
        "single:\n"
        "  <<: *e\n"
        "  bias: true\n"
    )
    data = loads_yaml(text)
    # explicit keys win; among merged mappings the first listed wins
    assert data["layer"] == {"act": "relu", "norm": "bn", "k": 7, "bias": False, "name": "conv1"}
    # merged keys take the place of the `<<` entry, explicit keys keep their own place
    assert list(data["layer"]) == ["act", "norm", "bias", "k", "name"]
    assert data["single"] == {"k": 5, "bias": True, "act": "gelu"}
    assert "<<" not in data["layer"]
    layer = data["layer"]
    assert layer.value_marks["k"] == Mark("<string>", 5, 6)
    assert layer.value_marks["act"] == Mark("<string>", 1, 20)  # from the anchored mapping
    assert layer.raw["k"] == "7" and layer.raw["norm"] == "bn"
    # the merged values are copies
    data["layer"]["norm"] = "ln"
    assert data["defaults"]["norm"] == "bn"


def test_merge_needs_mappings():
    err = err_of("a:\n  <<: 3\n")
    assert (err.code, err.mark) == ("yaml_merge", Mark("spec.yaml", 2, 7))


def test_quoted_merge_key_is_a_plain_key():
    assert loads_yaml('"<<": 1\n') == {"<<": 1}


def test_recursive_alias_rejected():
    err = err_of("a: &x\n  - 1\n  - *x\n")
    assert err.code == "yaml_alias"
    assert err.message == "recursive alias"
    assert err.mark == Mark("spec.yaml", 1, 4)  # the anchor's definition


def test_billion_laughs_rejected_fast():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
        prev = name
    text = "\n".join(lines) + "\n"
    start = time.perf_counter()
    err = err_of(text)
    elapsed = time.perf_counter() - start
    assert err.code == "yaml_too_large"
    assert err.message == "document too large (alias expansion?)"
    assert err.mark is not None and err.mark.file == "spec.yaml"
    assert elapsed < 1.0


def test_moderate_alias_expansion_allowed():
    text = "a: &a [1, 2, 3]\nb: &b [*a, *a, *a]\nc: [*b, *b]\n"
    data = loads_yaml(text)
    assert data["c"] == [[[1, 2, 3]] * 3] * 2
    assert data["c"][0][0] is not data["c"][1][0]


def test_deep_nesting_rejected():
    err = err_of("[" * 300 + "]" * 300)
    assert err.code == "yaml_too_large"
    assert loads_yaml("[" * 50 + "]" * 50) == eval("[" * 50 + "]" * 50)


# -- documents ---------------------------------------------------------------------------------


def test_multi_document_rejected():
    err = err_of("a: 1\n---\nb: 2\n")
    assert err.code == "yaml_multi_document"
    assert err.message == "a spec file holds one YAML document"
    assert err.mark == Mark("spec.yaml", 2, 1)


def test_leading_document_marker_is_fine():
    assert loads_yaml("---\na: 1\n...\n") == {"a": 1}


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n  # another\n", "---\n"])
def test_empty_documents_are_none(text):
    assert loads_yaml(text) is None


# -- syntax errors -----------------------------------------------------------------------------


def test_unclosed_flow_mapping():
    err = err_of("{a: [1, 2}\n")
    assert err.code == "yaml_syntax"
    assert err.message == "invalid YAML: expected ',' or ']', but got '}'"
    assert err.mark == Mark("spec.yaml", 1, 10)
    assert err.hint == "while parsing a flow sequence that starts at line 1, column 5"
    assert err.format() == (
        "spec.yaml:1:10: error: invalid YAML: expected ',' or ']', but got '}'\n"
        "  hint: while parsing a flow sequence that starts at line 1, column 5"
    )


def test_unclosed_flow_mapping_at_end_of_file():
    err = err_of("model: {a: 1, b: 2\n")
    assert err.code == "yaml_syntax"
    assert err.message.startswith("invalid YAML: ")
    assert err.mark is not None and err.mark.file == "spec.yaml"
    assert err.hint is not None and "flow mapping" in err.hint


def test_tab_indentation():
    err = err_of("model:\n  depth: 3\n\twidth: 64\n")
    assert err.code == "yaml_syntax"
    assert err.mark == Mark("spec.yaml", 3, 1)
    assert err.message == "invalid YAML: found a tab character where YAML expects indentation or a value"
    assert err.hint == "indent YAML with spaces, not tabs"


def test_control_character():
    err = err_of("a: 1\nb: x\x07y\n")
    assert err.code == "yaml_syntax"
    assert err.mark == Mark("spec.yaml", 2, 5)


# -- files -------------------------------------------------------------------------------------


def test_load_file_and_display_name(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text("name: net\nwidth: 64\n", encoding="utf-8")
    data = load_yaml(path)
    assert data == {"name": "net", "width": 64}
    assert data.value_marks["width"] == Mark(str(path), 2, 8)
    data = load_yaml(path, display_name="specs/net.yaml")
    assert data.key_marks["width"] == Mark("specs/net.yaml", 2, 1)
    data = load_yaml("virtual.yaml", text="x: [1]\n")
    assert data["x"].item_marks == [Mark("virtual.yaml", 1, 5)]


def test_utf8_bom_is_ignored(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffa: 1\n".encode("utf-8"))
    data = load_yaml(path)
    assert data == {"a": 1}
    assert data.key_marks["a"] == Mark(str(path), 1, 1)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load_yaml(path)
    err = info.value
    assert err.code == "missing_file"
    assert err.message == "no such file"
    assert err.mark == Mark(str(path), 1, 1)
    assert err.format().splitlines()[0] == f"{path}:1:1: error: no such file"


def test_directory(tmp_path):
    with pytest.raises(SpecError) as info:
        load_yaml(tmp_path)
    assert info.value.message == "is a directory"
    assert info.value.mark == Mark(str(tmp_path), 1, 1)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"a: 1\nname: caf\xe9\n")
    with pytest.raises(SpecError) as info:
        load_yaml(path, display_name="latin1.yaml")
    err = info.value
    assert err.message == "file is not valid UTF-8"
    assert err.mark == Mark("latin1.yaml", 2, 10)


def test_empty_file_is_none(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_yaml(path) is None
    path.write_text("# nothing here\n")
    assert load_yaml(path) is None


# -- containers ----------------------------------------------------------------------------------


def test_containers_copy_and_behave_like_builtins():
    data = loads_yaml("a: {b: [1, 2]}\n", filename="c.yaml")
    clone = copy.deepcopy(data)
    assert clone == data and clone is not data
    assert isinstance(clone, LocDict) and clone.mark == Mark("c.yaml", 1, 1)
    assert clone["a"]["b"].item_marks == data["a"]["b"].item_marks
    assert dict(data) == {"a": {"b": [1, 2]}}
    empty = LocDict(x=1)
    assert empty == {"x": 1} and empty.mark is None and empty.mark_of("x") is None
    assert LocList([1]).mark_of(0) is None
