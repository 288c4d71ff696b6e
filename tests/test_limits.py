"""Hostile specs (issue #16, part 2): bounded work and linear time.

A spec that asks for too much (``repeat: 1000000000``, a dense block of a billion layers, a
ResNet column with a billion blocks) is refused before anything is allocated, with one error line at
its ``repeat:`` naming the limit and the flag that raises it (archspec.limits). Cell patterns whose
captures could split a number in many ways are refused when the file is loaded (their regex would
backtrack exponentially). Naming unnamed layers and resolving chains of parameters are linear; the
sizes that show it are in benchmarks/hostile_growth.py, here the outcomes are exact.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from archspec.analysis import compile_spec
from archspec.cli.main import app
from archspec.limits import DEFAULT_MAX_EDGES, DEFAULT_MAX_NODES, configure, limits, restore
from archspec.load.loader import resolve_params

from .test_errors import assert_error, write

HEAD = "name: t\ninput: [3, 32, 32]\n"


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(autouse=True)
def _default_limits():
    previous = configure(DEFAULT_MAX_NODES, DEFAULT_MAX_EDGES)
    yield
    restore(previous)


def test_defaults_leave_the_zoo_a_wide_margin():
    assert (limits().max_nodes, limits().max_edges) == (100_000, 1_000_000)
    (_, g, _), = compile_spec("specs/resnet1202_cifar.yaml")
    assert len(g) == 4807  # the zoo's largest network: 20 times below the cap
    assert sum(len(n.inputs) for n in g.nodes()) < DEFAULT_MAX_EDGES // 100


# ------------------------------------------------------------------------------- repeat: n
def test_repeat_a_billion_is_refused_before_expanding(tmp_path: Path):
    f = write(tmp_path, HEAD + "network:\n  - {relu: {}, repeat: 1000000000}\n")
    assert_error(run_cli("stats", f), f, 4, 24,
                 "repeat: 1000000000 gives at least 1,000,000,000 more nodes, 1,000,000,001 in all; "
                 "a network may have at most 100,000", "network[0].repeat",
                 hint="raise the limit with --max-nodes N")


def test_repeat_with_names_is_refused_before_naming(tmp_path: Path):
    f = write(tmp_path, HEAD + 'network:\n  body: {relu: {}, repeat: 1000000000, names: "layer{i}"}\n')
    assert_error(run_cli("validate", f), f, 4, 28, "repeat: 1000000000 gives at least 1,000,000,000 more "
                 "nodes", "network.body.repeat", hint="--max-nodes N")


def test_dense_a_billion_is_refused(tmp_path: Path):
    f = write(tmp_path, HEAD + "network:\n  block: {dense: {conv: {out: 4, kernel: 1}}, repeat: 1000000000}\n")
    assert_error(run_cli("stats", f), f, 4, 55, "dense: with repeat: 1000000000 gives at least "
                 "2,000,000,001 more nodes, 2,000,000,002 in all; a network may have at most 100,000",
                 "network.block.repeat", hint="raise the limit with --max-nodes N")


def test_a_column_of_a_billion_blocks_is_refused(tmp_path: Path):
    """`layers: [3, 4, 6, 1000000000]` in a ResNet table: the column's repeat: names the limit."""
    f = write(tmp_path, HEAD + "params:\n  layers: [1, 1]\ncolumns:\n  small: {layers: [2, 2]}\n"
              "  huge: {layers: [3, 1000000000]}\nnetwork:\n"
              '  stage1: {relu: {}, repeat: "layers[0]"}\n  stage2: {relu: {}, repeat: "layers[1]"}\n')
    assert_error(run_cli("stats", f + ":huge"), f, 10, 30, "repeat: 1000000000 gives at least "
                 "1,000,000,000 more nodes, 1,000,000,004 in all", "network.stage2.repeat")
    assert run_cli("stats", f + ":small").exit_code == 0


def test_resnet_table_with_a_huge_stage(tmp_path: Path):
    f = write(tmp_path, "extends: " + str(Path("specs/resnet.yaml").resolve()) + "\ncolumn: resnet34\n"
              "name: resnet34_huge\ncolumns:\n  resnet34: {layers: [3, 4, 6, 1000000000]}\n")
    base = str(Path("specs/resnet.yaml").resolve())
    line = next(k for k, l in enumerate(Path(base).read_text().splitlines(), 1) if l.lstrip().startswith("conv5_x:"))
    assert_error(run_cli("stats", f, "--allow-path", "specs"), base, line, 44, "repeat: 1000000000 gives at least 1,000,000,000 more "
                 "nodes, 1,000,000,111 in all; a network may have at most 100,000", "network.conv5_x.repeat")


# ------------------------------------------------------------------------------- the flags
DENSE40 = HEAD + "network:\n  block: {dense: {conv: {out: 4, kernel: 1}}, repeat: 40}\n"


def test_dense_edges_are_counted_arithmetically(tmp_path: Path):
    """40 layers: 41 concatenations reading 1 + 2 + ... + 41 = 861 outputs, and 40 layers reading one."""
    f = write(tmp_path, DENSE40)
    assert_error(run_cli("validate", f, "--max-edges", "900"), f, 4, 55,
                 "dense: with repeat: 40 gives at least 901 more edges (inputs of layers), 901 in all; "
                 "a network may have at most 900", "network.block.repeat",
                 hint="raise the limit with --max-edges N")
    r = run_cli("stats", f, "--max-edges", "901", "-f", "csv")
    assert r.exit_code == 0, r.stderr


def test_max_nodes_counts_the_input(tmp_path: Path):
    f = write(tmp_path, DENSE40)
    assert_error(run_cli("stats", f, "--max-nodes", "81"), f, 4, 55,
                 "dense: with repeat: 40 gives at least 81 more nodes, 82 in all; a network may have at most 81")
    assert run_cli("stats", f, "--max-nodes", "82").exit_code == 0


def test_the_node_cap_on_a_flat_list(tmp_path: Path):
    f = write(tmp_path, HEAD + "network:\n" + "  - relu\n" * 12)
    assert_error(run_cli("stats", f, "--max-nodes", "10"), f, 13, 5,
                 "the network has more than 10 nodes", "network[9]", hint="raise the limit with --max-nodes N")
    for cmd in ("check", "validate", "build --check"):
        r = run_cli(*cmd.split(), f, "--max-nodes", "10")
        assert r.exit_code == 1 and "the network has more than 10 nodes" in r.stderr, (cmd, r.stderr)
    r = run_cli("diff", f, f, "--max-nodes", "10")
    assert r.exit_code == 1 and "the network has more than 10 nodes" in r.stderr


def test_a_flag_does_not_outlive_its_command(tmp_path: Path):
    f = write(tmp_path, HEAD + "network:\n" + "  - relu\n" * 12)
    assert run_cli("stats", f, "--max-nodes", "5").exit_code == 1
    assert limits().max_nodes == 5
    assert run_cli("stats", f).exit_code == 0
    assert limits().max_nodes == DEFAULT_MAX_NODES


def test_repetitions_that_lower_to_nothing_are_bounded(tmp_path: Path):
    """A false when: leaves no node; such repetitions count against the node budget all the same, so
    a block repeated n times around a repeat: of n empty layers is not n² free iterations."""
    f = write(tmp_path, HEAD + "blocks:\n  B:\n    params: {i: int}\n"
              '    body: {relu: {}, repeat: 5, when: "i == 0"}\nnetwork:\n  - {B: {i: 0}, repeat: 4}\n')
    assert_error(run_cli("stats", f, "--max-nodes", "20"), f, 6, 30,
                 "repeat: 5 gives at least 5 more nodes, 21 in all; a network may have at most 20",
                 "blocks.B.body.repeat")
    assert run_cli("stats", f, "--max-nodes", "21").exit_code == 0


# ------------------------------------------------------------------------------- cells
@pytest.mark.parametrize("pattern, first, second", [
    ("conv{k}{out}", "k", "out"),
    ("c{a}x{b}0{c}", "b", "c"),  # only digits between: still ambiguous
    ("".join("{c%d}" % i for i in range(20)), "c0", "c1"),  # the 189-byte probe's shape
])
def test_captures_need_a_non_digit_between_them(tmp_path: Path, pattern: str, first: str, second: str):
    f = write(tmp_path, HEAD + f'cells:\n  "{pattern}": relu\nnetwork:\n  - "{"1" * 30}x"\n')
    rest = assert_error(run_cli("stats", f), f, 4, 3,
                        f"the captures {{{first}}} and {{{second}}} have no separator, so a number could be "
                        f"split between them in many ways",
                        hint="put a character that is not a digit between captures: 'conv{k}-{out}'")
    assert rest.startswith("cells." + pattern[:37])


def test_separated_captures_match_in_linear_time(tmp_path: Path):
    pattern = "-".join("{c%d}" % i for i in range(20))
    word = "-".join(["1" * 50] * 19) + "-x"  # fails only at the very end
    f = write(tmp_path, HEAD + f'cells:\n  "{pattern}": relu\n  "{"-".join(["7"] * 20)}": tanh\nnetwork:\n'
              f'  - "{"-".join(str(i) for i in range(20))}"\n  - "{word}"\n')
    r = run_cli("stats", f)
    assert_error(r, f, 8, 5, "unknown op or block '", "network[1]")


def test_a_digit_before_a_separator_still_splits_one_way(tmp_path: Path):
    """'{k}1x{out}': the 1 belongs to the literal, so 'c71x5' is k = 7, out = 5."""
    f = write(tmp_path, HEAD + 'cells:\n  "c{k}1x{out}": {conv: {out: out, kernel: k}}\nnetwork:\n  - c31x5\n')
    (_, g, _), = compile_spec(f)
    conv = [n for n in g.nodes() if n.op == "conv"][0]
    assert (conv.attrs.kernel, conv.attrs.out, g.output_shape) == (3, 5, (5, 30, 30))


# ------------------------------------------------------------------------------- naming
def test_unnamed_layers_are_numbered_per_hint(tmp_path: Path):
    """relu, relu_1, ... as before; a taken name is skipped; each op keeps its own count."""
    f = write(tmp_path, HEAD + "network:\n" + "  - relu\n" * 3 + "  - {relu: {}, name: relu_4}\n"
              + "  - tanh\n  - relu\n  - relu\n  - tanh\n")
    (_, g, _), = compile_spec(f)
    assert [n.id for n in g.nodes()][1:] == ["relu", "relu_1", "relu_2", "relu_4", "tanh", "relu_3",
                                             "relu_5", "tanh_1"]


def test_a_long_flat_list_is_named_in_order(tmp_path: Path):
    f = write(tmp_path, HEAD + "network:\n" + "  - relu\n" * 2000)
    (_, g, _), = compile_spec(f)
    ids = [n.id for n in g.nodes()][1:]
    assert ids[:3] == ["relu", "relu_1", "relu_2"] and ids[-1] == "relu_1999" and len(set(ids)) == 2000


def test_names_duplicates_are_still_found(tmp_path: Path):
    f = write(tmp_path, HEAD + 'network:\n  body: {relu: {}, repeat: 300, names: "r{i % 250}"}\n')
    assert_error(run_cli("stats", f), f, 4, 40, "names: gives 'r0' twice (i = 0 and i = 250)",
                 "network.body.names")


# ------------------------------------------------------------------------------- parameters
def _chain(n: int, reverse: bool) -> dict:
    order = reversed(range(n)) if reverse else range(n)
    return {f"p{i}": (1 if i == 0 else f"$p{i - 1} + 1") for i in order}


@pytest.mark.parametrize("reverse", [False, True])
def test_a_chain_of_parameters_resolves_in_any_order(reverse: bool):
    env = resolve_params(_chain(3000, reverse), {"num_classes": 10}, {}, ("params",))
    assert env["p2999"] == 3000 and env["p0"] == 1 and len(env) == 3001


def test_a_parameter_cycle_is_still_named():
    with pytest.raises(Exception) as e:
        resolve_params({"a": "$b + 1", "b": "$c", "c": "$a", "d": "$a", "e": 2}, {}, {}, ("params",))
    assert e.value.message == "parameters refer to each other in a cycle: a, b, c, d"


def test_parameters_in_a_spec_file(tmp_path: Path):
    params = "".join(f"  p{i}: {'$p%d * 1' % (i + 1) if i < 199 else 4}\n" for i in range(200))
    f = write(tmp_path, HEAD + "params:\n" + params + "network:\n  - {conv: {out: p0, kernel: 1}}\n")
    (_, g, _), = compile_spec(f)
    assert g.output_shape == (4, 32, 32)
    f2 = write(tmp_path, HEAD + "params:\n  a: $b\n  b: $nope\nnetwork:\n  - relu\n", "bad.yaml")
    assert_error(run_cli("stats", f2), f2, 5, 6, "unknown name 'nope' in 'nope'", "params.b")


# ------------------------------------------------------------------------------- found by fuzzing
# benchmarks/fuzz_hostile.py, seed 1: each of these was a traceback or a multi-line "error" before.
@pytest.mark.parametrize("text, line, col, message", [
    (HEAD + 'network:\n  - "\\t\\n"\n', 4, 5, "network[0]: unknown op or block '\\t\\n'"),
    (HEAD + 'network:\n  - "a\\0b"\n', 4, 5, "network[0]: unknown op or block 'a\\x00b'"),
    ('extends: "\\t\\n"\n' + HEAD + "network: [relu]\n", 1, 10, "extends: '\\t\\n' is not a .yaml file"),
    (HEAD + 'paper: {"\\t\\n": 1}\nnetwork: [relu]\n', 3, 9, "paper: unknown key '\\t\\n'"),
])
def test_an_error_naming_a_control_character_stays_one_line(tmp_path: Path, text: str, line: int, col: int,
                                                             message: str):
    f = write(tmp_path, text)
    assert message in assert_error(run_cli("stats", f), f, line, col, "")


def test_a_strict_parameter_that_does_not_parse(tmp_path: Path):
    f = write(tmp_path, HEAD + "params:\n  p1: 2\n  p2: $p}1 + p1\nnetwork: [relu]\n")
    assert_error(run_cli("stats", f), f, 5, 7, "bad expression 'p}1 + p1': unexpected character '}'", "params.p2")


@pytest.mark.parametrize("column, line, col, message", [
    ("a", 4, 14, "input is a list of sizes such as [3, 224, 224], got 'abc'"),
    ("b", 5, 14, "input sizes must be positive"),
    ("c", 6, 14, "input sizes are at most 65,536"),
    ("d", 7, 20, "num_classes is a positive integer, got 'x'"),
    ("e", 8, 20, "num_classes is a positive integer, got 0"),
])
def test_a_column_input_and_num_classes_are_checked(tmp_path: Path, column: str, line: int, col: int,
                                                    message: str):
    f = write(tmp_path, HEAD + 'columns:\n  a: {input: "abc"}\n  b: {input: [0, 1]}\n'
              "  c: {input: [3, 9223372036854775808, 2]}\n  d: {num_classes: x}\n  e: {num_classes: 0}\n"
              "network: [{conv: {out: 4, kernel: 1}}, flatten, {linear: num_classes}]\n")
    assert_error(run_cli("validate", f + ":" + column), f, line, col, message, f"columns.{column}")


def test_a_huge_input_is_refused(tmp_path: Path):
    """[2^63, 299, 299] reached the training-script template, which builds a per-channel list."""
    f = write(tmp_path, "name: t\ninput: [9223372036854775808, 299, 299]\nnetwork: [relu]\n")
    assert_error(run_cli("validate", f), f, 2, 8, "input sizes are at most 65,536", "input")
    r = run_cli("stats", "specs/lenet5.yaml", "--input", "1,65537,32")
    assert r.exit_code == 2 and "--input takes sizes up to 65,536" in r.stderr


def test_a_dollar_head_naming_a_dollar_word_is_one_error(tmp_path: Path):
    """make fuzz-hostile N=10000 (seed 0, case 8016): a table cell holding '${a}' used as the op of a
    call ({"$stages[0][0]": ...}) passed the check (it starts with $) and failed in the registry."""
    f = write(tmp_path, HEAD + 'params:\n  stages: [["${a}"]]\n'
              'network: [{"$stages[0][0]": {}}, flatten, {linear: num_classes}]\n')
    assert_error(run_cli("validate", f), f, 5, 12, "'$stages[0][0]' names '${a}', which is not an op or block",
                 "network[0]")
