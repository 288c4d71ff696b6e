"""A small, safe arithmetic expression language for spec fields.

Spec authors write ``width * 4``, ``in.c // r`` or ``2 if i == 0 else 1``.  Such text comes from
untrusted YAML, so it is read by a hand-written tokenizer and Pratt parser into a tree of the
node classes below and evaluated by walking that tree; it never reaches ``eval``, ``exec``,
``compile`` or the ``ast`` module.

Grammar, lowest to highest precedence:

======================  ======================================================
``a if c else b``       conditional (right-associative)
``or``  ``and``         short-circuit, Python values
``not x``               boolean negation
``== != < <= > >=``     comparisons, chainable like Python (``0 < i < n``)
``+ -``                 addition, subtraction, concatenation
``* / // %``            multiplication, division, floor division, remainder
``-x  +x``              unary sign
``**``                  power, right-associative (``-2**2 == -4``)
``f(a)  x[i]  x.name``  call (whitelisted functions only), index, record field
atoms                   ``1_000 0.5 2.5e9 'str' "str" true none [a, b] (e) name``
======================  ======================================================

``in`` is an ordinary name, so ``in.c`` is field ``c`` of the variable ``in``.  Names and
fields starting with ``_`` are rejected.  Callable functions: see ``FUNCTIONS``.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections import ChainMap
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Callable, NamedTuple

__all__ = ["FUNCTIONS", "Expr", "ExprError", "evaluate", "looks_like_expression", "parse"]

MAX_LENGTH = 2000
MAX_NESTING = 64
MAX_TREE_DEPTH = 100
MAX_EXPONENT = 64
MAX_MAGNITUDE = 10**30
MAX_SEQUENCE = 10_000
MAX_COMPREHENSION = 1_000


class ExprError(Exception):
    """A parse or evaluation error; ``offset`` is a 0-based index into the expression text."""

    def __init__(self, message: str, *, offset: int | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.hint = hint


# --------------------------------------------------------------------------- tokenizer

class _Token(NamedTuple):
    kind: str  # 'num', 'str', 'name', 'kw', 'op' or 'end'
    value: Any
    start: int
    end: int


_KEYWORDS = {"if", "else", "and", "or", "not", "true", "True", "false", "False", "none", "None", "for"}
_CONSTANTS = {"true": True, "True": True, "false": False, "False": False, "none": None, "None": None}
_OPERATORS = ("**", "//", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%",
              "(", ")", "[", "]", ",", ".")
_DIGITS = r"[0-9](?:_?[0-9])*"
_NUMBER = re.compile(rf"{_DIGITS}(\.{_DIGITS})?([eE][+-]?{_DIGITS})?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_CHAR = re.compile(r"[A-Za-z0-9_]")
_WORD_TAIL = re.compile(r"[A-Za-z0-9_.]*")
_CHAR_HINTS = {"=": "use '==' to compare", "!": "use 'not'", "&": "use 'and'", "|": "use 'or'",
               ":": "slices are not supported"}


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch in " \t\r\n":
            pos += 1
            continue
        if m := _NUMBER.match(text, pos):
            if _NAME_CHAR.match(text, m.end()):
                tail = _WORD_TAIL.match(text, m.end()).end()
                raise ExprError(f"invalid number '{text[pos:tail]}'", offset=pos)
            value = float(m.group()) if m.group(1) or m.group(2) else int(m.group())
            tokens.append(_Token("num", value, pos, m.end()))
        elif m := _NAME.match(text, pos):
            kind = "kw" if m.group() in _KEYWORDS else "name"
            tokens.append(_Token(kind, m.group(), pos, m.end()))
        elif ch in "'\"":
            tokens.append(_string(text, pos))
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, pos)), None)
            if op is None:
                raise ExprError(f"unexpected character {ch!r}", offset=pos, hint=_CHAR_HINTS.get(ch))
            tokens.append(_Token("op", op, pos, pos + len(op)))
        pos = tokens[-1].end
    tokens.append(_Token("end", None, len(text), len(text)))
    return tokens


def _string(text: str, start: int) -> _Token:
    quote, chars, pos = text[start], [], start + 1
    while pos < len(text):
        ch = text[pos]
        if ch == quote:
            return _Token("str", "".join(chars), start, pos + 1)
        if ch == "\\":
            nxt = text[pos + 1 : pos + 2]
            if not nxt:
                break
            if nxt not in ("'", '"', "\\"):
                raise ExprError(f"unsupported escape '\\{nxt}'", offset=pos,
                                hint="only \\' \\\" and \\\\ are allowed")
            ch, pos = nxt, pos + 1
        chars.append(ch)
        pos += 1
    raise ExprError("unterminated string", offset=start)


# --------------------------------------------------------------------------- values

def _kind(value: Any) -> str:
    """A short article + type name for messages: 'an int', 'a record', ..."""
    if value is None:
        return "none"
    for types, name in ((bool, "a boolean"), (int, "an int"), (float, "a float"), (str, "a string"),
                        ((list, tuple), "a list"), (Mapping, "a record")):
        if isinstance(value, types):
            return name
    return f"a {type(value).__name__}"


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float))


def _check_value(value: Any, offset: int | None) -> Any:
    if isinstance(value, complex):
        raise ExprError("result is not a real number", offset=offset)
    if isinstance(value, float) and not math.isfinite(value):
        raise ExprError("result is not a finite number", offset=offset)
    if _is_num(value) and abs(value) > MAX_MAGNITUDE:
        raise ExprError("value too large", offset=offset, hint="values are limited to 10**30")
    return value


def _suggest(word: str, candidates: Any, what: str) -> str | None:
    names = sorted(k for k in candidates if isinstance(k, str) and not k.startswith("_"))
    close = difflib.get_close_matches(word, names, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    if not names:
        return None
    return f"available {what}: " + ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge}


def _sequence_op_ok(op: str, a: Any, b: Any, offset: int) -> bool:
    """Allow ``str + str``, ``list + list`` and bounded ``seq * int`` besides numbers."""
    if op == "+":
        return (isinstance(a, str) and isinstance(b, str)) or (
            isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)))
    if op == "*":
        seq, n = (a, b) if isinstance(b, int) else (b, a)
        if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
            if len(seq) * max(n, 0) > MAX_SEQUENCE:
                raise ExprError("result is too long", offset=offset)
            return True
    return False


def _arith(op: str, a: Any, b: Any, offset: int) -> Any:
    def mismatch() -> ExprError:
        return ExprError(f"cannot apply '{op}' to {_kind(a)} and {_kind(b)}", offset=offset)

    if not (_is_num(a) and _is_num(b)) and not _sequence_op_ok(op, a, b, offset):
        raise mismatch()
    if op == "**" and b > MAX_EXPONENT:
        raise ExprError(f"exponent {b} is too large (max {MAX_EXPONENT})", offset=offset)
    try:
        return _check_value(_ARITH[op](a, b), offset)
    except ZeroDivisionError:
        raise ExprError("division by zero", offset=offset) from None
    except OverflowError:
        raise ExprError("value too large", offset=offset) from None
    except (TypeError, ValueError):
        raise mismatch() from None


def _round(x: Any, ndigits: Any = None) -> Any:
    return round(x) if ndigits is None else round(x, ndigits)


def _make_divisible(v: Any, divisor: Any, min_value: Any = None) -> int:
    """A width rounded to a multiple of ``divisor``, never more than 10% below ``v`` (MobileNet's
    ``_make_divisible``, torchvision.models._utils: width multipliers keep channels divisible by 8)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)


def _log(x: Any, base: Any = None) -> float:
    if x <= 0 or (base is not None and (base <= 0 or base == 1)):
        raise ExprError(f"log is defined for x > 0 and a base > 0 other than 1, got log({x}"
                        + (f", {base})" if base is not None else ")"))
    return math.log(x) if base is None else math.log(x, base)


def _quantized_linear(w_0: Any, w_a: Any, w_m: Any, depth: Any, q: Any = 8) -> list[int]:
    """RegNet's block widths (Radosavovic et al. 2020, §3.3, Eq. 2-4): the linear widths
    u_j = w_0 + w_a·j (0 <= j < depth), each snapped to w_0·w_m^s_j with s_j = round(log_{w_m}(u_j / w_0)),
    then rounded to a multiple of q."""
    for v in (w_0, w_a, w_m, q):
        if not _is_num(v):
            raise TypeError
    if not isinstance(depth, int) or isinstance(depth, bool) or not isinstance(q, int) or isinstance(q, bool):
        raise ExprError("quantized_linear(w_0, w_a, w_m, depth, q): depth and q are integers")
    if not (w_0 > 0 and w_a >= 0 and w_m > 1 and 1 <= depth <= MAX_SEQUENCE and q >= 1):
        raise ExprError(f"quantized_linear needs w_0 > 0, w_a >= 0, w_m > 1, 1 <= depth <= {MAX_SEQUENCE} and "
                        f"q >= 1, got ({w_0}, {w_a}, {w_m}, {depth}, {q})")
    out = []
    for j in range(depth):
        s = round(math.log((w_0 + w_a * j) / w_0) / math.log(w_m))
        out.append(int(round(w_0 * w_m ** s / q) * q))
    return out


def _range(a: Any, b: Any = None) -> list[int]:
    lo, hi = (0, a) if b is None else (a, b)
    for v in (lo, hi):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError
    if hi - lo > MAX_SEQUENCE:
        raise ExprError(f"range() gives at most {MAX_SEQUENCE} numbers, got {hi - lo}")
    return list(range(lo, hi))


def _unique(xs: Any) -> list:
    """The distinct values of a list, in order of first appearance."""
    if not isinstance(xs, (list, tuple)):
        raise TypeError
    return list(dict.fromkeys(xs))


def _count(xs: Any, v: Any) -> int:
    if not isinstance(xs, (list, tuple)):
        raise TypeError
    return sum(1 for x in xs if x == v)


#: calls that stay symbolic over a block's parameters (the result is an int written as the call)
_SYMBOLIC_CALLS = frozenset({"min", "max", "abs", "int", "round", "ceil", "floor", "make_divisible"})

#: name -> (min args, max args or None, implementation); the only callables in the language.
FUNCTIONS: dict[str, tuple[int, int | None, Callable[..., Any]]] = {
    "min": (1, None, min), "max": (1, None, max), "abs": (1, 1, abs), "int": (1, 1, int),
    "float": (1, 1, float), "round": (1, 2, _round), "ceil": (1, 1, math.ceil),
    "floor": (1, 1, math.floor), "len": (1, 1, len), "sum": (1, 1, sum), "log": (1, 2, _log),
    "make_divisible": (2, 3, _make_divisible), "quantized_linear": (4, 5, _quantized_linear),
    "unique": (1, 1, _unique), "count": (2, 2, _count), "range": (1, 2, _range)}


# --------------------------------------------------------------------------- tree nodes

class _Node:
    def __init__(self, offset: int, *children: _Node):
        self.offset = offset
        self.depth = 1 + max((c.depth for c in children), default=0)
        if self.depth > MAX_TREE_DEPTH:
            raise ExprError("expression is too complex", offset=offset)

    def eval(self, env: Mapping[str, Any]) -> Any:
        raise NotImplementedError


class _Const(_Node):
    def __init__(self, value: Any, offset: int):
        super().__init__(offset)
        self.value = _check_value(value, offset)

    def eval(self, env: Mapping[str, Any]) -> Any:
        return self.value


class _Name(_Node):
    def __init__(self, name: str, offset: int):
        super().__init__(offset)
        self.name = name

    def eval(self, env: Mapping[str, Any]) -> Any:
        if self.name not in env:
            raise ExprError(f"unknown name '{self.name}'", offset=self.offset,
                            hint=_suggest(self.name, env, "names"))
        return env[self.name]


class _List(_Node):
    def __init__(self, items: list[_Node], offset: int):
        super().__init__(offset, *items)
        self.items = items

    def eval(self, env: Mapping[str, Any]) -> Any:
        return [item.eval(env) for item in self.items]


class _Comprehension(_Node):
    def __init__(self, element: _Node, var: str, source: _Node, offset: int):
        super().__init__(offset, element, source)
        self.element, self.var, self.source = element, var, source

    def eval(self, env: Mapping[str, Any]) -> Any:
        xs = self.source.eval(env)
        if not isinstance(xs, (list, tuple)):
            raise ExprError(f"a comprehension runs over a list, got {_kind(xs)}", offset=self.source.offset)
        if len(xs) > MAX_COMPREHENSION:
            raise ExprError(f"a comprehension runs over at most {MAX_COMPREHENSION} items, got {len(xs)}",
                            offset=self.offset)
        out, held = [], 0
        for x in xs:
            value = self.element.eval(ChainMap({self.var: x}, env))
            held += len(value) if isinstance(value, (list, tuple, str)) else 1
            if held > MAX_SEQUENCE * 10:  # a list of lists stays bounded too
                raise ExprError(f"a comprehension builds at most {MAX_SEQUENCE * 10:,} values", offset=self.offset)
            out.append(value)
        return out


class _Unary(_Node):
    def __init__(self, op: str, operand: _Node, offset: int):
        super().__init__(offset, operand)
        self.op, self.operand = op, operand

    def eval(self, env: Mapping[str, Any]) -> Any:
        value = self.operand.eval(env)
        if self.op == "not":
            return not value
        if not _is_num(value):
            raise ExprError(f"cannot apply unary '{self.op}' to {_kind(value)}", offset=self.offset)
        return -value if self.op == "-" else +value


class _Binary(_Node):
    def __init__(self, op: str, left: _Node, right: _Node, offset: int):
        super().__init__(offset, left, right)
        self.op, self.left, self.right = op, left, right

    def eval(self, env: Mapping[str, Any]) -> Any:
        left = self.left.eval(env)
        if self.op == "and":
            return self.right.eval(env) if left else left
        if self.op == "or":
            return left if left else self.right.eval(env)
        return _arith(self.op, left, self.right.eval(env), self.offset)


class _Compare(_Node):
    def __init__(self, first: _Node, rest: list[tuple[str, _Node, int]], offset: int):
        super().__init__(offset, first, *(node for _, node, _ in rest))
        self.first, self.rest = first, rest

    def eval(self, env: Mapping[str, Any]) -> Any:
        left, result = self.first.eval(env), True
        for op, node, offset in self.rest:
            right = node.eval(env)
            try:
                result = _COMPARE[op](left, right)
            except TypeError:
                raise ExprError(f"cannot compare {_kind(left)} and {_kind(right)} with '{op}'",
                                offset=offset) from None
            if not result:
                return result
            left = right
        return result


class _Cond(_Node):
    def __init__(self, cond: _Node, then: _Node, orelse: _Node, offset: int):
        super().__init__(offset, cond, then, orelse)
        self.cond, self.then, self.orelse = cond, then, orelse

    def eval(self, env: Mapping[str, Any]) -> Any:
        return self.then.eval(env) if self.cond.eval(env) else self.orelse.eval(env)


class _Field(_Node):
    def __init__(self, obj: _Node, name: str, obj_text: str, offset: int):
        super().__init__(offset, obj)
        self.obj, self.name, self.obj_text = obj, name, obj_text

    def eval(self, env: Mapping[str, Any]) -> Any:
        obj = self.obj.eval(env)
        if not isinstance(obj, Mapping):
            raise ExprError("attribute access is only allowed on records such as in.c",
                            offset=self.offset, hint=f"'{self.obj_text}' is {_kind(obj)}")
        if self.name not in obj:
            raise ExprError(f"'{self.obj_text}' has no field '{self.name}'", offset=self.offset,
                            hint=_suggest(self.name, obj, "fields"))
        return obj[self.name]


class _Index(_Node):
    def __init__(self, obj: _Node, index: _Node, offset: int):
        super().__init__(offset, obj, index)
        self.obj, self.index = obj, index

    def eval(self, env: Mapping[str, Any]) -> Any:
        obj, index = self.obj.eval(env), self.index.eval(env)
        if not isinstance(obj, (list, tuple, str)):
            raise ExprError(f"cannot index {_kind(obj)}", offset=self.offset)
        if isinstance(index, bool) or not isinstance(index, int):
            raise ExprError(f"index must be an int, got {_kind(index)}", offset=self.offset)
        if not -len(obj) <= index < len(obj):
            raise ExprError(f"index {index} out of range for {_kind(obj)} of {len(obj)}",
                            offset=self.offset)
        return obj[index]


class _Call(_Node):
    def __init__(self, name: str, args: list[_Node], offset: int):
        super().__init__(offset, *args)
        self.name, self.args = name, args

    def eval(self, env: Mapping[str, Any]) -> Any:
        args = [arg.eval(env) for arg in self.args]
        wants_list = self.name in ("len", "sum") or (self.name in ("min", "max") and len(args) == 1)
        if wants_list and not isinstance(args[0], (list, tuple)):
            raise ExprError(f"{self.name}() expects a list, got {_kind(args[0])}", offset=self.offset)
        try:
            value = _check_value(FUNCTIONS[self.name][2](*args), self.offset)
            if self.name in _SYMBOLIC_CALLS and isinstance(value, int) and not isinstance(value, bool) \
                    and any(hasattr(a, "expr") for a in args):
                # over a block's symbolic numbers (codegen): keep the call, so the generated class
                # computes it (max(1, in.c // 4) must not become in_channels // 4)
                from ..ir.sym import Sym
                return Sym(value, f"{_PY_FUNCS[self.name]}({', '.join(str(a) for a in args)})")
            return value
        except TypeError:
            kinds = ", ".join(_kind(a) for a in args)
            raise ExprError(f"cannot apply {self.name}() to {kinds}", offset=self.offset) from None
        except (ValueError, ArithmeticError) as exc:
            message = str(exc) if str(exc).startswith(self.name) else f"{self.name}(): {exc}"
            raise ExprError(message, offset=self.offset) from None


# --------------------------------------------------------------------------- parser

_INFIX_BP = {"if": 1, "or": 2, "and": 3, "==": 5, "!=": 5, "<": 5, "<=": 5, ">": 5, ">=": 5,
             "+": 6, "-": 6, "*": 7, "/": 7, "//": 7, "%": 7, "**": 9}
_NOT_BP, _COMPARE_BP, _UNARY_BP = 4, 5, 8


class _Parser:
    def __init__(self, text: str):
        self.text, self.tokens, self.pos = text, _tokenize(text), 0
        self.nesting, self.names = -1, set()
        self.comprehending = False
        self.made = 0  # comprehensions parsed so far

    @property
    def tok(self) -> _Token:
        return self.tokens[self.pos]

    def advance(self) -> _Token:
        tok = self.tok
        self.pos += tok.kind != "end"
        return tok

    def at(self, value: str) -> bool:
        return self.tok.kind in ("op", "kw") and self.tok.value == value

    def describe(self, tok: _Token) -> str:
        if tok.kind == "end":
            return "end of text"
        return "a string" if tok.kind == "str" else f"'{self.text[tok.start:tok.end]}'"

    def expect(self, value: str) -> _Token:
        if self.at(value):
            return self.advance()
        raise ExprError(f"expected '{value}', got {self.describe(self.tok)}", offset=self.tok.start)

    def parse(self) -> _Node:
        node = self.expr(1)
        if self.tok.kind != "end":
            raise ExprError(f"unexpected {self.describe(self.tok)}", offset=self.tok.start)
        return node

    def expr(self, min_bp: int) -> _Node:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise ExprError(f"expression is nested too deeply (max {MAX_NESTING} levels)",
                            offset=self.tok.start)
        left = self.prefix()
        while self.tok.kind in ("op", "kw"):
            bp = _INFIX_BP.get(self.tok.value)
            if bp is None or bp < min_bp:
                break
            left = self.infix(left, self.advance(), bp)
        self.nesting -= 1
        return left

    def infix(self, left: _Node, tok: _Token, bp: int) -> _Node:
        op = tok.value
        if op == "if":
            cond = self.expr(_INFIX_BP["or"])
            self.expect("else")
            return _Cond(cond, left, self.expr(bp), tok.start)
        if bp == _COMPARE_BP:
            rest = [(op, self.expr(bp + 1), tok.start)]
            while self.tok.kind == "op" and _INFIX_BP.get(self.tok.value) == _COMPARE_BP:
                nxt = self.advance()
                rest.append((nxt.value, self.expr(bp + 1), nxt.start))
            return _Compare(left, rest, tok.start)
        right = self.expr(_UNARY_BP if op == "**" else bp + 1)
        return _Binary(op, left, right, tok.start)

    def prefix(self) -> _Node:
        tok = self.advance()
        if tok.kind in ("num", "str"):
            node: _Node = _Const(tok.value, tok.start)
        elif tok.kind == "kw" and tok.value in _CONSTANTS:
            node = _Const(_CONSTANTS[tok.value], tok.start)
        elif tok.kind == "name":
            node = self.name_or_call(tok)
        elif tok.value == "(":
            node = self.expr(1)
            self.expect(")")
        elif tok.value == "[":
            node = self.list_or_comprehension(tok)
        elif tok.value in ("-", "+"):
            return _Unary(tok.value, self.expr(_UNARY_BP), tok.start)
        elif tok.value == "not":
            return _Unary("not", self.expr(_NOT_BP), tok.start)
        else:
            raise ExprError(f"expected an expression, got {self.describe(tok)}", offset=tok.start)
        return self.postfix(node, tok.start)

    def name_or_call(self, tok: _Token) -> _Node:
        name = tok.value
        if name.startswith("_"):
            raise ExprError("names starting with '_' are not allowed", offset=tok.start)
        if not self.at("("):
            self.names.add(name)
            return _Name(name, tok.start)
        if name not in FUNCTIONS:
            raise ExprError(f"unknown function '{name}'", offset=tok.start,
                            hint="allowed functions: " + ", ".join(sorted(FUNCTIONS)))
        self.advance()
        args = self.items(")")
        lo, hi, _ = FUNCTIONS[name]
        if not lo <= len(args) <= (hi if hi is not None else len(args)):
            wanted = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi else f"at least {lo}"
            plural = "s" * (wanted.split()[-1] != "1")
            raise ExprError(f"{name}() expects {wanted} argument{plural}, "
                            f"got {len(args)}", offset=tok.start)
        return _Call(name, args, tok.start)

    def list_or_comprehension(self, tok: _Token) -> _Node:
        """``[a, b]``, or ``[EXPR for NAME in LIST]`` (one ``for``, not nested: at most
        MAX_COMPREHENSION items, so the work stays bounded)."""
        if self.at("]"):
            self.advance()
            return _List([], tok.start)
        names_before, self.names = self.names, set()
        made_before = self.made
        first = self.expr(1)
        if self.at("for") and self.made != made_before:
            raise ExprError("comprehensions do not nest", offset=self.tok.start)
        if not self.at("for"):
            self.names |= names_before
            items = [first]
            if self.at(","):
                self.advance()
                items += self.items("]")
            else:
                self.expect("]")
            return _List(items, tok.start)
        if self.comprehending:
            raise ExprError("comprehensions do not nest", offset=self.tok.start)
        self.advance()
        var = self.advance()
        if var.kind != "name" or var.value.startswith("_") or var.value == "in":
            raise ExprError(f"expected a loop variable after 'for', got {self.describe(var)}", offset=var.start)
        if not (self.tok.kind == "name" and self.tok.value == "in"):
            raise ExprError(f"expected 'in' after 'for {var.value}', got {self.describe(self.tok)}",
                            offset=self.tok.start)
        self.advance()
        inner = self.names - {var.value}
        self.names = set()
        self.comprehending = True
        try:
            source = self.expr(1)
        finally:
            self.comprehending = False
        self.names |= names_before | inner
        self.expect("]")
        self.made += 1
        return _Comprehension(first, var.value, source, tok.start)

    def items(self, closer: str) -> list[_Node]:
        items: list[_Node] = []
        while not self.at(closer):
            items.append(self.expr(1))
            if not self.at(","):
                break
            self.advance()
        self.expect(closer)
        return items

    def postfix(self, node: _Node, start: int) -> _Node:
        while self.tok.kind == "op" and self.tok.value in (".", "[", "("):
            obj_end = self.tokens[self.pos - 1].end
            tok = self.advance()
            if tok.value == "(":
                raise ExprError("only functions such as max(...) can be called", offset=tok.start)
            if tok.value == "[":
                index = self.expr(1)
                self.expect("]")
                node = _Index(node, index, tok.start)
                continue
            field = self.tok
            if field.kind != "name":
                raise ExprError(f"expected a field name after '.', got {self.describe(field)}",
                                offset=field.start)
            if field.value.startswith("_"):
                raise ExprError("names starting with '_' are not allowed", offset=field.start)
            self.advance()
            node = _Field(node, field.value, self.text[start:obj_end], field.start)
        return node


# --------------------------------------------------------------------------- public API

class Expr:
    """A parsed expression; build one with :func:`parse` (cached) or ``Expr(text)``."""

    __slots__ = ("text", "_root", "_names")

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise ExprError(f"an expression must be a string, got {type(text).__name__}")
        if len(text) > MAX_LENGTH:
            raise ExprError(f"expression is too long ({len(text)} characters, max {MAX_LENGTH})",
                            offset=MAX_LENGTH)
        parser = _Parser(text)
        self.text = text
        try:
            self._root = parser.parse()
        except RecursionError:  # only reachable when the caller's stack is already deep
            raise ExprError("expression is nested too deeply") from None
        self._names = frozenset(parser.names)

    def names(self) -> frozenset[str]:
        """The free variable names the expression reads (``{'in', 'width'}`` for ``in.c // width``)."""
        return self._names

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        """Evaluate against ``env`` (never mutated); every failure is an :class:`ExprError`."""
        if not isinstance(env, Mapping):
            raise ExprError(f"the environment must be a mapping, got {type(env).__name__}")
        try:
            return self._root.eval(env)
        except ExprError:
            raise
        except RecursionError:
            raise ExprError("expression is too complex") from None
        except Exception as exc:  # a misbehaving value in env; never leak a raw exception
            raise ExprError(f"cannot evaluate '{self.text}': {exc}") from None

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and other.text == self.text

    def __hash__(self) -> int:
        return hash(("Expr", self.text))


@lru_cache(maxsize=2048)
def _parse_cached(text: str) -> Expr:
    return Expr(text)


def parse(text: str) -> Expr:
    """Parse ``text`` into an :class:`Expr` (results are cached); raises :class:`ExprError`."""
    if not isinstance(text, str):
        raise ExprError(f"an expression must be a string, got {type(text).__name__}")
    return _parse_cached(text)


def evaluate(text: str, env: Mapping[str, Any]) -> Any:
    """``parse(text).evaluate(env)``."""
    return parse(text).evaluate(env)


def looks_like_expression(text: str) -> bool:
    """True iff ``text`` parses as an expression."""
    try:
        parse(text)
    except ExprError:
        return False
    return True


# --------------------------------------------------------------------------- rendering as Python

_PY_FUNCS = {"min": "min", "max": "max", "abs": "abs", "int": "int", "float": "float", "round": "round",
             "ceil": "math.ceil", "floor": "math.floor", "len": "len", "sum": "sum", "log": "math.log",
             "make_divisible": "make_divisible"}  # generated files define make_divisible when they use it


def to_python(expr: "Expr", name: Callable[[str], str], field: Callable[[str, str], str]) -> str:
    """Render ``expr`` as Python source for generated code.

    ``name`` maps a variable to a (validated) Python identifier; ``field`` maps ``in.c`` style
    record fields. Only the constructs of this language appear in the output: literals go through
    ``repr``, so no spec text can break out of the expression."""

    def go(node: _Node, parent_bp: int) -> str:
        if isinstance(node, _Const):
            return repr(node.value)
        if isinstance(node, _Name):
            return name(node.name)
        if isinstance(node, _List):
            return "[" + ", ".join(go(i, 0) for i in node.items) + "]"
        if isinstance(node, _Field):
            if not isinstance(node.obj, _Name):
                raise ExprError("only fields of a name can be rendered", offset=node.offset)
            return field(node.obj.name, node.name)
        if isinstance(node, _Index):
            return f"{go(node.obj, 100)}[{go(node.index, 0)}]"
        if isinstance(node, _Comprehension):
            raise ExprError("a list comprehension cannot be written into generated code (in a when: or a "
                            "parameter default of a block)", offset=node.offset,
                            hint="compute the list in the network's params: and pass what the block needs")
        if isinstance(node, _Call):
            if node.name not in _PY_FUNCS:
                raise ExprError(f"'{node.name}' cannot be written into generated code (in a when: or "
                                f"a parameter default of a block)", offset=node.offset,
                                hint="compute the value outside: pass it as a block argument")
            return f"{_PY_FUNCS[node.name]}({', '.join(go(a, 0) for a in node.args)})"
        if isinstance(node, _Unary):
            bp = _NOT_BP if node.op == "not" else _UNARY_BP
            text = ("not " if node.op == "not" else node.op) + go(node.operand, bp)
        elif isinstance(node, _Binary):
            bp = _INFIX_BP[node.op]
            right_bp = bp if node.op == "**" else bp + 1
            text = f"{go(node.left, bp + (1 if node.op == '**' else 0))} {node.op} {go(node.right, right_bp)}"
        elif isinstance(node, _Compare):
            bp = _COMPARE_BP
            parts = [go(node.first, bp + 1)] + [f"{op} {go(n, bp + 1)}" for op, n, _ in node.rest]
            text = " ".join(parts)
        elif isinstance(node, _Cond):
            bp = _INFIX_BP["if"]
            text = f"{go(node.then, bp + 1)} if {go(node.cond, bp + 1)} else {go(node.orelse, bp)}"
        else:  # pragma: no cover - the parser builds no other node
            raise ExprError("cannot render this expression")
        return f"({text})" if bp < parent_bp else text

    return go(expr._root, 0)
