"""Tests for archspec.spec.expr: the safe expression language used in spec fields."""

from __future__ import annotations

import builtins
import re

import pytest

from archspec.spec.expr import Expr, ExprError, evaluate, looks_like_expression, parse

ENV = {
    "in": {"c": 256, "h": 56, "w": 56},
    "width": 64,
    "layers": [3, 4, 6, 3],
    "i": 0,
    "stride": 1,
    "shortcut": "C",
    "depth": 20,
    "r": 16,
}


def err(text: str, env: dict | None = None) -> ExprError:
    with pytest.raises(ExprError) as info:
        evaluate(text, ENV if env is None else env)
    return info.value


# --------------------------------------------------------------------------- values

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("-2**2", -4),
        ("2**3**2", 512),
        ("2 ** -1", 0.5),
        ("7 // 2", 3),
        ("7 / 2", 3.5),
        ("7 % 3", 1),
        ("10 - 4 - 3", 3),
        ("-3 + +5", 2),
        ("1_000", 1000),
        ("1_000_000 * 2", 2_000_000),
        ("2.5e9", 2.5e9),
        ("1e-3", 0.001),
        ("0.5", 0.5),
        ("width * 4", 256),
        ("in.c // 16", 16),
        ("in.c // r", 16),
        ("(depth - 2) // 6", 3),
        ("layers[0]", 3),
        ("layers[-1]", 3),
        ("layers[i + 2]", 6),
        ("[1, 2, width]", [1, 2, 64]),
        ("[]", []),
        ("[[1, 2], [3]][0][1]", 2),
        ("'abc'", "abc"),
        ('"it\\"s"', 'it"s'),
        ("'a\\\\b'", "a\\b"),
        ("'ab' + 'cd'", "abcd"),
        ("true", True),
        ("False", False),
        ("none", None),
        ("None", None),
        ("True + 1", 2),
    ],
)
def test_values(text: str, expected: object) -> None:
    result = evaluate(text, ENV)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 if i == 0 else 1", 2),
        ("2 if i == 1 else 1", 1),
        ("1 if i else 2 if stride == 1 else 3", 2),
        ("1 + 1 if false else 10", 10),
        ("1 < 2 < 3", True),
        ("3 > 2 > 2", False),
        ("0 <= i < len(layers)", True),
        ("1 < 2 > 5", False),
        ("0 or 7", 7),
        ("3 or 7", 3),
        ("0 and 7", 0),
        ("3 and 7", 7),
        ("not 0", True),
        ("not width", False),
        ("not width == 64", False),
        ("not 0 and 5", 5),
        ("shortcut == 'C'", True),
        ("shortcut != \"C\"", False),
        ("shortcut == 'C' or stride != 1 or in.c != width * 4", True),
        ("shortcut == 'B' or stride != 1 or in.c != width * 4", False),
        ("1 == 1.0", True),
    ],
)
def test_logic(text: str, expected: object) -> None:
    assert evaluate(text, ENV) == expected


def test_short_circuit_skips_errors() -> None:
    assert evaluate("0 and missing", ENV) == 0
    assert evaluate("1 or missing", ENV) == 1
    assert evaluate("1 if true else 1 / 0", ENV) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max(1, 3)", 3),
        ("min(4, 2, 9)", 2),
        ("max(layers)", 6),
        ("max(1, in.c // 16)", 16),
        ("abs(-5)", 5),
        ("int(3.9)", 3),
        ("float(2)", 2.0),
        ("ceil(2.1)", 3),
        ("floor(2.9)", 2),
        ("round(2.5)", 2),
        ("round(3.7)", 4),
        ("round(3.14159, 2)", 3.14),
        ("len(layers)", 4),
        ("sum(layers)", 16),
        ("sum([])", 0),
    ],
)
def test_functions(text: str, expected: object) -> None:
    result = evaluate(text, ENV)
    assert result == expected
    assert type(result) is type(expected)


def test_round_ceil_floor_return_int() -> None:
    for text in ("round(2.5)", "ceil(2.1)", "floor(2.9)"):
        assert isinstance(evaluate(text, {}), int)


def test_names() -> None:
    assert parse("in.c // width").names() == frozenset({"in", "width"})
    assert parse("max(1, in.c // r)").names() == frozenset({"in", "r"})
    assert parse("layers[i] * 2").names() == frozenset({"layers", "i"})
    assert parse("2 + 3").names() == frozenset()
    assert parse("'in' == 'x'").names() == frozenset()


def test_expr_object() -> None:
    expr = parse("width * 4")
    assert isinstance(expr, Expr)
    assert expr.text == "width * 4"
    assert repr(expr) == "Expr('width * 4')"
    assert expr.evaluate({"width": 3}) == 12
    assert parse("width * 4") is expr  # cached


def test_env_is_not_mutated() -> None:
    env = {"in": {"c": 8}, "xs": [1, 2]}
    snapshot = {"in": {"c": 8}, "xs": [1, 2]}
    evaluate("in.c + xs[0] + sum(xs + [3])", env)
    evaluate("xs * 2", env)
    assert env == snapshot


def test_tuple_values() -> None:
    assert evaluate("xs[1] + len(xs)", {"xs": (5, 6)}) == 8


def test_whitespace_and_newlines() -> None:
    assert evaluate("  width\n *\t2 ", ENV) == 128


def test_looks_like_expression() -> None:
    assert looks_like_expression("width * 4")
    assert looks_like_expression("width")
    assert looks_like_expression("in.c")
    assert not looks_like_expression("conv 3x3")
    assert not looks_like_expression("1 +")
    assert not looks_like_expression("__import__('os')")


# --------------------------------------------------------------------------- parse errors

@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("__import__('os')", "names starting with '_' are not allowed", 0),
        ("x.__class__", "names starting with '_' are not allowed", 2),
        ("1 + _x", "names starting with '_' are not allowed", 4),
        ("open('f')", "unknown function 'open'", 0),
        ("1 +", "expected an expression, got end of text", 3),
        ("", "expected an expression, got end of text", 0),
        ("(1", "expected ')', got end of text", 2),
        ("1)", "unexpected ')'", 1),
        ("1 2", "unexpected '2'", 2),
        ("'abc", "unterminated string", 0),
        ("x + 'ab\\", "unterminated string", 4),
        ("'a\\nb'", "unsupported escape", 2),
        ("[1, 2", "expected ']', got end of text", 5),
        ("a if b", "expected 'else', got end of text", 6),
        ("x = 1", "unexpected character '='", 2),
        ("layers[1:2]", "unexpected character ':'", 8),
        ("1e", "invalid number '1e'", 0),
        ("1__0", "invalid number", 0),
        ("x.", "expected a field name after '.', got end of text", 2),
        ("x.y(1)", "only functions", 3),
        ("abs(1, 2)", "abs() expects 1 argument, got 2", 0),
        ("max()", "max() expects at least 1 argument, got 0", 0),
        ("1e31", "value too large", 0),
        ("a in b", "unexpected 'in'", 2),
    ],
)
def test_parse_errors(text: str, message: str, offset: int) -> None:
    with pytest.raises(ExprError) as info:
        parse(text)
    assert message in info.value.message
    assert info.value.offset == offset


def test_unknown_function_hint_lists_allowed() -> None:
    with pytest.raises(ExprError) as info:
        parse("open('f')")
    assert "max" in info.value.hint and "ceil" in info.value.hint


def test_deep_nesting_is_an_expr_error() -> None:
    text = "(" * 500 + "1" + ")" * 500
    with pytest.raises(ExprError) as info:
        parse(text)
    assert "nested too deeply" in info.value.message
    assert info.value.offset == 65
    assert evaluate("(" * 60 + "1" + ")" * 60, {}) == 1


@pytest.mark.parametrize(
    "text", ["-" * 500 + "1", "not " * 300 + "1", "2" + "**2" * 300, "[" * 300 + "]" * 300]
)
def test_other_deep_nesting_is_an_expr_error(text: str) -> None:
    with pytest.raises(ExprError):
        parse(text)


def test_long_flat_expression_is_an_expr_error() -> None:
    with pytest.raises(ExprError) as info:
        parse("1+" * 999 + "1")
    assert "too complex" in info.value.message


def test_too_long_text() -> None:
    with pytest.raises(ExprError) as info:
        parse("1" + " " * 2000)
    assert "too long" in info.value.message


# --------------------------------------------------------------------------- evaluation errors

def test_unknown_name_did_you_mean() -> None:
    e = err("foo + 1", {"food": 1, "bar": 2})
    assert e.message == "unknown name 'foo'"
    assert e.offset == 0
    assert e.hint == "did you mean 'food'?"


def test_unknown_name_lists_available() -> None:
    e = err("zzz", {"b": 1, "a": 2})
    assert e.hint == "available names: a, b"
    e = err("zzz", {f"v{n}": n for n in range(12)})
    assert e.hint.count(",") == 8  # at most 8 names, then "..."


def test_missing_field_did_you_mean() -> None:
    e = err("in.cc")
    assert e.message == "'in' has no field 'cc'"
    assert e.offset == 3
    assert e.hint == "did you mean 'c'?"


def test_attribute_on_non_mapping() -> None:
    e = err("width.c")
    assert e.message == "attribute access is only allowed on records such as in.c"
    assert e.offset == 6
    e = err("3 .c", {})
    assert "only allowed on records" in e.message


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("2 ** 1000", "too large", 2),
        ("10 ** 30 * 10", "value too large", 9),
        ("1 / 0", "division by zero", 2),
        ("5 // 0", "division by zero", 2),
        ("5 % 0.0", "division by zero", 2),
        ("'a' * 'b'", "cannot apply '*' to a string and a string", 4),
        ("width + 'x'", "cannot apply '+' to an int and a string", 6),
        ("'%s' % width", "cannot apply '%'", 5),
        ("-'a'", "cannot apply unary '-' to a string", 0),
        ("layers < 1", "cannot compare a list and an int with '<'", 7),
        ("[1, 2][5]", "index 5 out of range for a list of 2", 6),
        ("layers[-5]", "index -5 out of range for a list of 4", 6),
        ("layers[1.0]", "index must be an int", 6),
        ("width[0]", "cannot index an int", 5),
        ("'ab' * 100000", "too long", 5),
        ("(-8) ** 0.5", "not a real number", 5),
        ("len(width)", "len() expects a list, got an int", 0),
        ("sum('abc')", "sum() expects a list", 0),
        ("max([])", "empty", 0),
        ("ceil('a')", "cannot apply ceil() to a string", 0),
        ("int('x')", "invalid literal", 0),
    ],
)
def test_eval_errors(text: str, message: str, offset: int) -> None:
    e = err(text)
    assert message in e.message
    assert e.offset == offset


def test_env_must_be_mapping() -> None:
    with pytest.raises(ExprError):
        evaluate("1", [("a", 1)])  # type: ignore[arg-type]


def test_misbehaving_env_value_is_wrapped() -> None:
    class Weird:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("boom")

    with pytest.raises(ExprError):
        evaluate("x == 1", {"x": Weird()})


def test_non_string_text() -> None:
    with pytest.raises(ExprError):
        parse(42)  # type: ignore[arg-type]


def test_error_attributes() -> None:
    e = ExprError("boom", offset=3, hint="try this")
    assert (e.message, e.offset, e.hint, str(e)) == ("boom", 3, "try this", "boom")
    assert ExprError("x").offset is None and ExprError("x").hint is None


# --------------------------------------------------------------------------- safety

def test_never_uses_eval_or_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval/exec/compile must not be used")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", forbidden)
    env = {"in": {"c": 96}, "width": 7, "xs": [1, 2, 3]}
    # fresh texts so the parse cache cannot hide a call
    assert evaluate("width * 4 + 0 * 17", env) == 28
    assert evaluate("in.c // 16 + 0 * 17", env) == 6
    assert evaluate("max(1, xs[-1]) if width > 3 else 0 * 17", env) == 3
    assert evaluate("'A' == 'A' and not (1 < 0 * 17)", env) is True
    assert evaluate("ceil(width / 2) + round(2.5e0) + sum([1_0, 1.5e1]) * 17", env) == 4 + 2 + 25 * 17


def test_module_does_not_import_ast() -> None:
    import archspec.spec.expr as mod

    source = open(mod.__file__, encoding="utf-8").read()
    assert not re.search(r"^\s*(import|from)\s+ast\b", source, re.MULTILINE)
    # bare calls of eval/exec/compile (method calls such as node.eval(env) are fine)
    assert not re.search(r"(?<![\w.])(eval|exec|compile)\s*\(", source.replace("def eval(", ""))
