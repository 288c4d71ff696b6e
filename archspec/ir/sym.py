"""Symbolic integers: a concrete value that remembers the expression it came from.

When lowering for code generation, a block's integer parameters (and its input channels) are bound
as ``Sym`` values. Arithmetic on them keeps the value exact *and* builds the Python expression
(``planes * 4``), so an op's attributes record both the number the analysis needs and the
constructor argument the generated class should write. Anything else (floats, functions such as
``int()``) falls back to plain numbers; the code generator then checks that every instance of a
block agrees before it shares one class between them.
"""

from __future__ import annotations

from typing import Any

from ..ops.registry import like

__all__ = ["Sym", "SymFloat", "SymPair", "has_sym", "plain"]

_ATOM, _POW, _NEG, _MUL, _ADD = 100, 40, 30, 20, 10


class Sym(int):
    """An ``int`` with the Python expression (``expr``) that computes it."""

    expr: str
    prec: int
    op: str

    def __new__(cls, value: int, expr: str, prec: int = _ATOM, op: str = "") -> "Sym":
        obj = super().__new__(cls, int(value))
        obj.expr, obj.prec, obj.op = expr, prec, op
        return obj

    def __str__(self) -> str:
        return self.expr

    __repr__ = __str__

    def __reduce__(self):  # pickling/copying keeps the symbol
        return (Sym, (int(self), self.expr, self.prec, self.op))


def _text(v: Any) -> tuple[str, int, str]:
    if isinstance(v, Sym):
        return v.expr, v.prec, v.op
    return str(int(v)), _ATOM, ""


def _binop(op: str, prec: int, fn):
    def forward(self: Sym, other: Any) -> Any:
        if isinstance(other, bool) or not isinstance(other, int):
            return NotImplemented
        return _combine(op, prec, fn, self, other)

    def reverse(self: Sym, other: Any) -> Any:
        if isinstance(other, bool) or not isinstance(other, int):
            return NotImplemented
        return _combine(op, prec, fn, other, self)

    return forward, reverse


def _combine(op: str, prec: int, fn, a: int, b: int) -> Any:
    value = fn(int(a), int(b))
    if op == "+" and not isinstance(a, Sym) and int(a) == 0:
        return b
    if op in ("+", "-") and not isinstance(b, Sym) and int(b) == 0:
        return a
    if op in ("*", "//") and not isinstance(b, Sym) and int(b) == 1:
        return a
    if op == "*" and not isinstance(a, Sym) and int(a) == 1:
        return b
    ta, pa, oa = _text(a)
    tb, pb, ob = _text(b)
    if pa < prec:
        ta = f"({ta})"
    if pb < prec or (pb == prec and not (ob == op and op in "+*")):
        tb = f"({tb})" if pb != _ATOM else tb
    return Sym(value, f"{ta} {op} {tb}", prec, op)


for _name, _op, _prec, _fn in (
    ("add", "+", _ADD, lambda x, y: x + y),
    ("sub", "-", _ADD, lambda x, y: x - y),
    ("mul", "*", _MUL, lambda x, y: x * y),
    ("floordiv", "//", _MUL, lambda x, y: x // y),
    ("mod", "%", _MUL, lambda x, y: x % y),
):
    _f, _r = _binop(_op, _prec, _fn)
    setattr(Sym, f"__{_name}__", _f)
    setattr(Sym, f"__r{_name}__", _r)


def _neg(self: Sym) -> Sym:
    t, p, _ = _text(self)
    return Sym(-int(self), f"-{t}" if p >= _NEG else f"-({t})", _NEG, "neg")


Sym.__neg__ = _neg  # type: ignore[method-assign]
Sym.__pos__ = lambda self: self  # type: ignore[method-assign]
Sym.__int__ = lambda self: int.__int__(self)  # type: ignore[method-assign]


class _Named:
    """A value that generated code writes by the name of the parameter it came from."""

    expr: str

    def __str__(self) -> str:
        return self.expr

    __repr__ = __str__

    def __reduce__(self):
        return (type(self), (self._plain(), self.expr))


class SymFloat(_Named, float):
    """A ``float`` parameter (a dropout rate, say) that generated code writes by name."""

    def __new__(cls, value: float, expr: str) -> "SymFloat":
        obj = super().__new__(cls, float(value))
        obj.expr = expr
        return obj

    def _plain(self) -> float:
        return float(self)

    def __mul__(self, other: Any) -> Any:
        return _float_product(self, other)

    def __rmul__(self, other: Any) -> Any:
        return _float_product(other, self)


def _float_product(a: Any, b: Any) -> Any:
    """``a * b`` where one factor is a float parameter: a ``SymFloat`` that keeps the product's text,
    so that ``int(out * squeeze_ratio)`` stays a call over the block's parameters (MaxViT's MBConv)."""
    if isinstance(a, bool) or isinstance(b, bool) or not all(isinstance(v, (int, float)) for v in (a, b)):
        return NotImplemented
    value = float(a) * float(b)

    def text(v: Any) -> str:
        if isinstance(v, Sym):
            return v.expr if v.prec >= _MUL and v.op in ("", "*") else f"({v.expr})"
        if isinstance(v, SymFloat):
            return v.expr if v.expr.isidentifier() else f"({v.expr})"
        return repr(v)

    return SymFloat(value, f"{text(a)} * {text(b)}")


class SymPair(_Named, tuple):
    """A ``pair`` block parameter given as ``[a, b]`` (a 1×7 kernel) that generated code writes by
    name, as it writes an int parameter (so a 3×3 and a 1×7 instance share one class)."""

    def __new__(cls, value: Any, expr: str) -> "SymPair":
        obj = super().__new__(cls, (int(value[0]), int(value[1])))
        obj.expr = expr
        return obj

    def _plain(self) -> tuple[int, int]:
        return tuple(self)  # type: ignore[return-value]


def has_sym(v: Any) -> bool:
    if isinstance(v, (Sym, SymFloat, SymPair)):
        return True
    if isinstance(v, (list, tuple)):
        return any(has_sym(x) for x in v)
    return False


def plain(v: Any) -> Any:
    """The same value with every ``Sym`` replaced by its plain number."""
    if isinstance(v, bool):
        return v
    if isinstance(v, Sym):
        return int.__int__(v)
    if isinstance(v, SymFloat):
        return float.__float__(v)
    if isinstance(v, tuple):
        for x in v:
            if type(x) is not int:
                return like(v, [plain(x) for x in v])  # a channels-last shape stays one
        return v  # plain ints already (a shape outside code generation): the tuple is its own plain copy
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v
