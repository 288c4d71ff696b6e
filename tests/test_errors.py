"""Every bad spec yields exactly one ``file:line:col: error: key.path: message`` line on stderr
(plus at most one ``  hint: ...`` line), exit code 1, and never a Python traceback.

The CLI runs in-process through typer's test runner; specs are written into ``tmp_path``. Each case
states the exact position a user would expect the error to point at, a key part of the message,
the key path (where there is one) and, where useful, the hint.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archspec.cli.main import app

ROOT = Path(__file__).resolve().parent.parent

HEAD = "name: t\ninput: [3, 32, 32]\n"  # lines 1-2 of most specs below


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args))


def assert_error(result, file: str, line: int, col: int, message: str, path: str | None = None,
                 hint: str | None = None) -> str:
    """``result`` failed with one error line at ``file:line:col`` naming ``path`` and ``message``."""
    out, err = result.stdout, result.stderr
    detail = f"exit={result.exit_code} exception={result.exception!r}\nstdout:\n{out}\nstderr:\n{err}"
    # an uncaught exception also gives exit code 1 under CliRunner: it must be a clean typer.Exit
    assert result.exception is None or isinstance(result.exception, SystemExit), detail
    assert "Traceback" not in out and "Traceback" not in err, detail
    assert result.exit_code == 1, detail
    lines = err.rstrip("\n").split("\n")
    assert 1 <= len(lines) <= 2, detail
    m = re.match(rf"^{re.escape(file)}:(\d+):(\d+): error: (.*)$", lines[0])
    assert m, detail
    assert (int(m.group(1)), int(m.group(2))) == (line, col), detail
    rest = m.group(3)
    if path is not None:  # the key path, possibly continued ([1], .attr) before the ': '
        assert re.match(rf"{re.escape(path)}([.\[][^:]*)?: ", rest), detail
    assert message in rest, detail
    if len(lines) == 2:
        assert lines[1].startswith("  hint: "), detail
    if hint is not None:
        assert len(lines) == 2 and hint in lines[1], detail
    return rest


def check_spec(tmp_path: Path, text: str, line: int, col: int, message: str, path: str | None = None,
               hint: str | None = None, command: str = "validate", suffix: str = "") -> str:
    file = write(tmp_path, text)
    result = run_cli(command, file + suffix)
    return assert_error(result, file, line, col, message, path, hint)


def no_pwned(tmp_path: Path) -> None:
    for where in (tmp_path, ROOT, Path.cwd()):
        assert not (where / "PWNED").exists(), f"code from a spec ran: {where / 'PWNED'}"


# ------------------------------------------------------------------------------- positive control
def test_valid_spec_validates(tmp_path):
    file = write(tmp_path, HEAD + textwrap.dedent("""\
        network:
          - {conv: {out: 16, kernel: 3, padding: 1}}
          - relu
          - {maxpool: 2}
          - flatten
          - {linear: 10}
        """))
    result = run_cli("validate", file)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert "ok" in result.stdout
    assert result.stderr == ""


# ------------------------------------------------------------------------------------ 1. unknown op
@pytest.mark.parametrize("layer, line, col, path, word, suggestion", [
    ("  - {cnov: {out: 16, kernel: 3}}", 5, 6, "network[1]", "cnov", "conv"),
    ("  - rleu", 5, 5, "network[1]", "rleu", "relu"),
    ("  - {maxpoool: 2}", 5, 6, "network[1]", "maxpoool", "maxpool"),
    ("  - {cnov: {out: 16, kernel: 3, padding: same}}", 5, 6, "network[1]", "cnov", "conv"),
], ids=["call", "bare-word", "scalar-arg", "attr-word"])
def test_unknown_op_in_list(tmp_path, layer, line, col, path, word, suggestion):
    spec = HEAD + "network:\n  - {conv: {out: 16, kernel: 3}}\n" + layer + "\n"
    check_spec(tmp_path, spec, line, col, f"unknown op or block '{word}'", path,
               hint=f"did you mean '{suggestion}'")


def test_unknown_op_named_layer(tmp_path):
    spec = HEAD + "network:\n  conv1: {conv: {out: 16, kernel: 3}}\n  act1: rleu\n"
    check_spec(tmp_path, spec, 5, 9, "unknown op or block 'rleu'", "network.act1",
               hint="did you mean 'relu'")


def test_unknown_op_in_block_body(tmp_path):
    spec = HEAD + textwrap.dedent("""\
        blocks:
          b:
            params: {width: int}
            body: [{cnov: {out: width, kernel: 3}}, relu]
        network:
          - {b: {width: 16}}
        """)
    check_spec(tmp_path, spec, 6, 13, "unknown op or block 'cnov'", "blocks.b.body[0]",
               hint="did you mean 'conv'")


# ------------------------------------------------------------------------- 2. unknown top-level key
def test_unknown_top_level_key(tmp_path):
    spec = HEAD + "netwrok:\n  - relu\n"
    rest = check_spec(tmp_path, spec, 3, 1, "unknown key 'netwrok'", hint="did you mean 'network'")
    assert "netwrok" in rest


def test_unknown_key_in_paper(tmp_path):
    spec = HEAD + "paper: {authers: [LeCun]}\nnetwork: [relu]\n"
    check_spec(tmp_path, spec, 3, 9, "unknown key 'authers'", "paper", hint="did you mean 'authors'")


# ---------------------------------------------------------------------------- 3. unknown attribute
def test_unknown_attribute_misspelled_required(tmp_path):
    # `kernal` for the required `kernel`: the user needs to hear about the typo, not about a
    # missing kernel
    spec = HEAD + "network:\n  - {conv: {out: 16, kernal: 3}}\n"
    check_spec(tmp_path, spec, 4, 22, "'conv' has no attribute 'kernal'", "network[0].conv",
               hint="did you mean 'kernel'")


def test_unknown_attribute_misspelled_optional(tmp_path):
    spec = HEAD + "network:\n  - {conv: {out: 16, kernel: 3, strid: 2}}\n"
    check_spec(tmp_path, spec, 4, 33, "'conv' has no attribute 'strid'", "network[0].conv",
               hint="did you mean 'stride'")


# ------------------------------------------------------------------------------------ 4. wrong type
@pytest.mark.parametrize("layer, col, attr, word", [
    ("  - {conv: {out: sixteen, kernel: 3}}", 18, "out", "sixteen"),
    ("  - {conv: {out: 16, kernel: 3, bias: maybe}}", 39, "bias", "maybe"),
    ("  - {conv: {out: 16, kernel: [3, x]}}", 34, "kernel", "x"),
], ids=["out-word", "bias-maybe", "kernel-pair-word"])
def test_wrong_attribute_type(tmp_path, layer, col, attr, word):
    spec = HEAD + "network:\n" + layer + "\n"
    rest = check_spec(tmp_path, spec, 4, col, word, f"network[0].conv.{attr}")
    assert "valid" in rest  # e.g. "input should be a valid integer"


def test_wrong_type_top_level_input(tmp_path):
    spec = "name: t\ninput: [3, x, 32]\nnetwork: [relu]\n"
    check_spec(tmp_path, spec, 2, 12, "'x'", "input[1]")


def test_wrong_type_num_classes(tmp_path):
    spec = HEAD + "num_classes: many\nnetwork: [relu]\n"
    check_spec(tmp_path, spec, 3, 14, "'many'", "num_classes")


# ------------------------------------------------------------------------------ 5. zero / negative
@pytest.mark.parametrize("layer, col, attr", [
    ("  - {conv: {out: 0, kernel: 3}}", 18, "out"),
    ("  - {conv: {out: -4, kernel: 3}}", 18, "out"),
    ("  - {conv: {out: 16, kernel: -1}}", 30, "kernel"),
    ("  - {conv: {out: 16, kernel: 3, stride: 0}}", 41, "stride"),
], ids=["out-0", "out-neg", "kernel-neg", "stride-0"])
def test_non_positive_attribute(tmp_path, layer, col, attr):
    spec = HEAD + "network:\n" + layer + "\n"
    check_spec(tmp_path, spec, 4, col, "greater than 0", f"network[0].conv.{attr}")


def test_non_positive_input(tmp_path):
    # the rule is on the whole list, so the error points at the list
    spec = "name: t\ninput: [3, 0, 32]\nnetwork: [relu]\n"
    check_spec(tmp_path, spec, 2, 8, "positive", "input")


# -------------------------------------------------------------------------------- 6. shape collapses
def test_shape_collapses_big_kernel(tmp_path):
    spec = "name: t\ninput: [3, 8, 8]\nnetwork:\n  - {conv: {out: 16, kernel: 11, stride: 4}}\n"
    check_spec(tmp_path, spec, 4, 30, "collapses", "network[0].conv.kernel")


def test_shape_collapses_too_many_pools(tmp_path):
    spec = "name: t\ninput: [3, 8, 8]\nnetwork:\n" + "  - {maxpool: 2}\n" * 4  # 8 -> 4 -> 2 -> 1 -> 0
    check_spec(tmp_path, spec, 7, 15, "collapses", "network[3].maxpool")


def test_shape_collapses_in_repeat(tmp_path):
    spec = "name: t\ninput: [3, 8, 8]\nnetwork:\n  - {maxpool: {kernel: 2}, repeat: 4}\n"
    check_spec(tmp_path, spec, 4, 24, "collapses", "network[0].maxpool")


# --------------------------------------------------------------------------- 7. add channel mismatch
def test_add_channel_mismatch(tmp_path):
    spec = HEAD + textwrap.dedent("""\
        network:
          - {conv: {out: 16, kernel: 3, padding: 1}}
          - add:
              - [{conv: {out: 16, kernel: 3, padding: 1}}]
              - [{conv: {out: 32, kernel: 3, padding: 1}}]
        """)
    check_spec(tmp_path, spec, 5, 5, "channel mismatch on add", "network[1].add",
               hint="project the shortcut")


def test_add_channel_mismatch_identity_shortcut(tmp_path):
    spec = HEAD + textwrap.dedent("""\
        network:
          - add:
              - [{conv: {out: 32, kernel: 3, padding: 1}}]
              - []
        """)
    check_spec(tmp_path, spec, 4, 5, "channel mismatch on add", "network[0].add")


# ------------------------------------------------------------------------ 8. concat spatial mismatch
def test_concat_spatial_mismatch(tmp_path):
    spec = HEAD + textwrap.dedent("""\
        network:
          - concat:
              - [{conv: {out: 16, kernel: 3, padding: 1}}]
              - [{conv: {out: 16, kernel: 3, stride: 2, padding: 1}}]
        """)
    check_spec(tmp_path, spec, 4, 5, "concat of different spatial sizes", "network[0].concat")


# ---------------------------------------------------------------------------------------- 9. cycle
def test_cycle_via_from(tmp_path):
    spec = HEAD + textwrap.dedent("""\
        network:
          a: {conv: {out: 16, kernel: 3}, from: b}
          b: {conv: {out: 16, kernel: 3}, from: a}
        """)
    check_spec(tmp_path, spec, 4, 41, "cycle", "network.a.from")


def test_forward_reference_via_from(tmp_path):
    spec = HEAD + textwrap.dedent("""\
        network:
          a: {conv: {out: 16, kernel: 3, padding: 1}}
          b: {relu: null, from: c}
          c: {conv: {out: 16, kernel: 3, padding: 1}, from: a}
        """)
    check_spec(tmp_path, spec, 5, 25, "cycle", "network.b.from")


# ------------------------------------------------------------------------------- 10. undefined ref
def test_undefined_reference(tmp_path):
    spec = HEAD + "network:\n  a: {conv: {out: 16, kernel: 3}, from: nowhere}\n"
    check_spec(tmp_path, spec, 4, 41, "undefined reference 'nowhere'", "network.a.from")


def test_undefined_reference_in_list(tmp_path):
    spec = HEAD + textwrap.dedent("""\
        network:
          conv1: {conv: {out: 16, kernel: 3, padding: 1}}
          c2: {conv: {out: 16, kernel: 3, padding: 1}}
          cat: {concat: null, from: [conv1, cnov2]}
        """)
    check_spec(tmp_path, spec, 6, 37, "undefined reference 'cnov2'", "network.cat.from")


# ----------------------------------------------------------------------------- 11. bad expressions
BLOCK_SPEC = HEAD + """\
blocks:
  b:
    params: {{width: int}}
    body:
      - {{conv: {{out: "{expr}", kernel: 3}}}}
network:
  - {{b: {{width: 16}}}}
"""


def test_bad_expression_syntax(tmp_path):
    check_spec(tmp_path, BLOCK_SPEC.format(expr="width *"), 7, 22, "bad expression 'width *'",
               "blocks.b.body[0].conv.out")


def test_unknown_name_in_expression(tmp_path):
    check_spec(tmp_path, BLOCK_SPEC.format(expr="widht * 2"), 7, 22, "unknown name 'widht'",
               "blocks.b.body[0].conv.out", hint="did you mean 'width'")


@pytest.mark.parametrize("expr", [
    "__import__('os').system('touch PWNED')",
    "open('PWNED', 'w')",
    "width.__class__",
], ids=["import", "open", "dunder-field"])
def test_unsafe_expression(tmp_path, monkeypatch, expr):
    spec = HEAD + f'network:\n  - {{conv: {{out: "{expr}", kernel: 3}}}}\n'
    for cwd in (ROOT, tmp_path):
        monkeypatch.chdir(cwd)
        check_spec(tmp_path, spec, 4, 18, "", "network[0].conv.out")
        no_pwned(tmp_path)


def test_unsafe_expression_in_params(tmp_path):
    spec = HEAD + textwrap.dedent("""\
        params:
          width: "__import__('os').system('touch PWNED') + 1"
        network:
          - {conv: {out: width, kernel: 3}}
        """)
    # a string with `(`, `+` that does not parse is a bad expression (as it is in a layer's
    # attributes), reported where it is written, not a string literal that fails where it is used
    check_spec(tmp_path, spec, 4, 10, "bad expression", "params.width")
    no_pwned(tmp_path)


# ------------------------------------------------------------------------------------ 12. bad YAML
def test_yaml_unclosed_bracket(tmp_path):
    spec = "name: t\ninput: [3, 32, 32\nnetwork: [relu]\n"
    check_spec(tmp_path, spec, 3, 8, "invalid YAML", hint="line 2, column 8")


def test_yaml_tab_indentation(tmp_path):
    spec = HEAD + "network:\n\t- relu\n"
    check_spec(tmp_path, spec, 4, 1, "tab", hint="spaces")


def test_yaml_python_tag(tmp_path, monkeypatch):
    spec = HEAD + 'network: !!python/object/apply:os.system ["touch PWNED"]\n'
    for cwd in (ROOT, tmp_path):
        monkeypatch.chdir(cwd)
        check_spec(tmp_path, spec, 3, 10, "tag '!!python/object/apply:os.system' is not allowed")
        no_pwned(tmp_path)


def test_yaml_duplicate_key(tmp_path):
    spec = HEAD + "network: [relu]\ninput: [3, 16, 16]\n"
    check_spec(tmp_path, spec, 4, 1, "duplicate key 'input'", hint="line 2")


def test_yaml_duplicate_layer_name(tmp_path):
    spec = HEAD + "network:\n  conv1: {conv: {out: 16, kernel: 3}}\n  conv1: relu\n"
    check_spec(tmp_path, spec, 5, 3, "duplicate key 'conv1'", hint="line 4")


def test_yaml_two_documents(tmp_path):
    spec = HEAD + "network: [relu]\n---\nname: u\n"
    check_spec(tmp_path, spec, 4, 1, "one YAML document")


# --------------------------------------------------------------------------------- 13. missing files
def test_missing_file(tmp_path):
    file = str(tmp_path / "nothere.yaml")
    result = run_cli("validate", file)
    assert_error(result, file, 1, 1, "no such file")


def test_missing_file_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("validate", "nothere.yaml")
    assert_error(result, "nothere.yaml", 1, 1, "no such file")


def test_missing_extends_target(tmp_path):
    spec = "extends: base.yaml\ncolumn: A\n"
    check_spec(tmp_path, spec, 1, 10, "no such file 'base.yaml'", "extends",
               hint="relative to the file")


def test_missing_include_target(tmp_path):
    spec = "name: t\ninclude: [lib.yaml]\ninput: [3, 32, 32]\nnetwork: [relu]\n"
    check_spec(tmp_path, spec, 2, 11, "no such file 'lib.yaml'", "include[0]")


# ------------------------------------------------------------------------------ 14. block call errors
BLOCK_HEAD = HEAD + """\
blocks:
  b:
    params: {width: int, stride: 1}
    body: [{conv: {out: width, kernel: 3, stride: stride, padding: 1}}]
network:
"""  # the first layer is on line 8


def test_block_unknown_parameter(tmp_path):
    check_spec(tmp_path, BLOCK_HEAD + "  - {b: {widht: 16}}\n", 8, 10, "block 'b' has no parameter 'widht'",
               "network[0].b", hint="did you mean 'width'")


@pytest.mark.parametrize("layer, col", [
    ("  - {b: {stride: 2}}", 9),
    ("  - b", 5),
], ids=["with-args", "bare-word"])
def test_block_missing_parameter(tmp_path, layer, col):
    check_spec(tmp_path, BLOCK_HEAD + layer + "\n", 8, col, "block 'b' needs 'width'", "network[0].b")


def test_block_too_many_positional(tmp_path):
    check_spec(tmp_path, BLOCK_HEAD + "  - {b: [16, 2, 3]}\n", 8, 9, "block 'b' takes 2 arguments",
               "network[0].b")


def test_block_parameter_wrong_type(tmp_path):
    check_spec(tmp_path, BLOCK_HEAD + "  - {b: {width: 1.5}}\n", 8, 17, "parameter 'width' of block 'b'",
               "network[0].b.width")


def test_op_too_many_positional(tmp_path):
    spec = HEAD + "network:\n  - {maxpool: [2, 2, 0, 1]}\n"
    check_spec(tmp_path, spec, 4, 15, "'maxpool' takes at most 3 positional arguments", "network[0].maxpool")


# ------------------------------------------------------------------------------------- 15. columns
COLUMN_SPEC = HEAD + """\
params: {width: 16}
columns:
  small: {width: 8}
  big: {width: 32}
network:
  - {conv: {out: width, kernel: 3}}
"""


def test_unknown_column(tmp_path):
    file = write(tmp_path, COLUMN_SPEC)
    result = run_cli("validate", file + ":bgi")
    assert_error(result, file, 5, 3, "no column 'bgi'", "columns", hint="did you mean 'big'")


def test_column_on_file_without_columns(tmp_path):
    file = write(tmp_path, HEAD + "network: [relu]\n")
    result = run_cli("validate", file + ":A")
    assert_error(result, file, 1, 1, "has no columns")


def test_column_sets_undeclared_parameter(tmp_path):
    spec = COLUMN_SPEC.replace("big: {width: 32}", "big: {widht: 32}")
    # the unknown key is `widht` at column 9 of line 6
    check_spec(tmp_path, spec, 6, 9, "column 'big' sets 'widht', which is not a parameter",
               "columns.big.widht", hint="did you mean 'width'")


# ------------------------------------------------------------------------ 16. empty / non-mapping
@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"], ids=["empty", "comment", "blank"])
def test_empty_file(tmp_path, text):
    file = tmp_path / "spec.yaml"
    file.write_text(text)
    result = run_cli("validate", str(file))
    assert_error(result, str(file), 1, 1, "the spec is empty")


def test_top_level_list(tmp_path):
    check_spec(tmp_path, "- relu\n- {conv: {out: 16, kernel: 3}}\n", 1, 1, "a spec is a mapping")


def test_top_level_scalar(tmp_path):
    check_spec(tmp_path, "relu\n", 1, 1, "a spec is a mapping")


def test_missing_network(tmp_path):
    check_spec(tmp_path, HEAD, 1, 1, "missing required key 'network'")


# ---------------------------------------------------------------------------------- 17. bad repeat
@pytest.mark.parametrize("n", ["0", "-2", "1.5", "many"])
def test_bad_repeat(tmp_path, n):
    spec = HEAD + "network:\n  - {conv: {out: 16, kernel: 3, padding: 1}, repeat: " + n + "}\n"
    check_spec(tmp_path, spec, 4, 54, "repeat", "network[0].repeat")


@pytest.mark.parametrize("n", ["0", "-2"])
def test_bad_repeat_message(tmp_path, n):
    spec = HEAD + "network:\n  - {conv: {out: 16, kernel: 3, padding: 1}, repeat: " + n + "}\n"
    check_spec(tmp_path, spec, 4, 54, f"repeat must be a positive integer, got {n}", "network[0].repeat")


# ------------------------------------------------------------------------------ 18. bad expect
def test_expect_misspelled_metric(tmp_path):
    spec = HEAD + "network:\n  - {conv: {out: 16, kernel: 3}}\nexpect:\n  parms: 448\n"
    # the unknown key `parms` is at line 6, column 3
    check_spec(tmp_path, spec, 6, 3, "unknown metric 'parms'", "expect.parms",
               hint="did you mean 'params'", command="check")


def test_expect_layer_misspelled_metric(tmp_path):
    spec = HEAD + textwrap.dedent("""\
        network:
          conv1: {conv: {out: 16, kernel: 3}}
        expect:
          layers:
            conv1: {parms: 448}
        """)
    # the unknown key `parms` is at line 7, column 13
    check_spec(tmp_path, spec, 7, 13, "unknown metric 'parms'", "expect.layers.conv1.parms", command="check")


def test_expect_unknown_layer(tmp_path):
    spec = HEAD + textwrap.dedent("""\
        network:
          conv1: {conv: {out: 16, kernel: 3}}
        expect:
          layers:
            cnov1: {params: 448}
        """)
    # the unknown layer name `cnov1` is the key at line 7, column 5
    check_spec(tmp_path, spec, 7, 5, "'cnov1'", "expect.layers.cnov1", command="check")


# ----------------------------------------------------------------------------------- more cases
def test_linear_on_feature_map(tmp_path):
    spec = HEAD + "network:\n  - {conv: {out: 16, kernel: 3}}\n  - {linear: 10}\n"
    check_spec(tmp_path, spec, 5, 6, "'linear' needs a vector", "network[1].linear", hint="flatten")


def test_repeat_huge_expression(tmp_path):
    spec = HEAD + 'network:\n  - {conv: {out: 16, kernel: 3}, repeat: "10**100"}\n'
    check_spec(tmp_path, spec, 4, 42, "too large", "network[0].repeat")


def test_block_uses_itself(tmp_path):
    spec = HEAD + textwrap.dedent("""\
        blocks:
          b:
            params: {width: int}
            body: [{b: {width: width}}]
        network:
          - {b: {width: 16}}
        """)
    check_spec(tmp_path, spec, 6, 11, "nest too deeply", "blocks.b.body")
