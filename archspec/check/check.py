"""``expect:`` against the analysis: does the spec reproduce the paper's numbers?

A printed number carries its own precision: ``3.8G`` means 3.75–3.85 G, ``138M`` 137.5–138.5 M,
``25_557_032`` exactly that. An entry marked ``erratum:`` or ``variant:`` keeps the printed number
and states the count archspec derives (``derived:``); it is listed apart from passes and failures,
and fails only if ``derived`` no longer matches — a tolerance is never widened to hide a mismatch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from ..analysis import NetStats, human, module_totals
from ..errors import Mark, SpecError
from ..ir import Graph
from ..load import Network
from ..load.loader import pydantic_error
from ..spec.model import METRICS, ExpectEntry
from ..spec.yamlio import LocDict

__all__ = ["Row", "check_network", "parse_printed", "Printed"]

#: the fields of a row that ``check --format json`` prints (the others locate it, for
#: archspec.check.errata: the consistency check and docs/errata.md)
_PUBLIC = ("spec", "metric", "paper", "archspec", "delta_pct", "source", "status", "note")

_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9, "T": 10**12}
_NUM = re.compile(r"^~?\s*(?P<mant>\d[\d_,]*(?:\.\d+)?)(?:[eE](?P<exp>[+-]?\d+))?\s*(?P<suf>[KMGBT]?)$")


@dataclass(frozen=True)
class Printed:
    """A number as a paper prints it, with the precision its digits imply."""

    text: str
    value: Decimal
    tol: Decimal

    def matches(self, x: int | float) -> bool:
        return abs(Decimal(x) - self.value) <= self.tol


def parse_printed(text: str, tol: str | None = None) -> Printed:
    """``'3.8G'`` -> 3.8e9 ± 0.05e9; ``'25_557_032'`` -> exact; ``'60K'`` -> 60e3 ± 5e3.

    Plain integers are exact. Otherwise the tolerance is half a unit of the last significant
    digit; trailing zeros before the decimal point are not significant (``60K`` is one digit).
    ``tol`` overrides: ``exact``, ``2%`` or an absolute amount such as ``0.05G``."""
    s = str(text).strip()
    m = _NUM.match(s)
    if not m:
        raise ValueError(f"cannot read '{text}' as a number (e.g. 25_557_032, 3.8G, 138M, 1.8e9)")
    mant_txt = m.group("mant").replace("_", "").replace(",", "")
    exp = int(m.group("exp") or 0)
    scale = Decimal(_SUFFIX[m.group("suf")]) * (Decimal(10) ** exp)
    value = Decimal(mant_txt) * scale
    plain = not m.group("exp") and not m.group("suf") and "." not in mant_txt and not s.startswith("~")
    if plain:
        t = Decimal(0)
    elif "." in mant_txt:
        decimals = len(mant_txt.split(".")[1])
        t = Decimal(5) * Decimal(10) ** (-decimals - 1) * scale
    else:
        zeros = len(mant_txt) - len(mant_txt.rstrip("0")) if mant_txt.strip("0") else 0
        t = Decimal(5) * Decimal(10) ** (zeros - 1) * scale
    if tol is not None:
        tt = str(tol).strip()
        if tt == "exact":
            t = Decimal(0)
        elif tt.endswith("%"):
            try:
                t = value * Decimal(tt[:-1]) / 100
            except InvalidOperation:
                raise ValueError(f"bad tolerance '{tol}'") from None
        else:
            t = parse_printed(tt).value
    return Printed(s, value, t)


@dataclass
class Row:
    spec: str
    metric: str
    paper: str
    archspec: str
    delta_pct: float | None
    source: str
    status: str  # pass | fail | erratum | variant
    note: str = ""
    # where the entry is and what it claims (not printed by --format json):
    kind: str = field(default="", repr=False)  # erratum | variant as the spec declares it, "" for neither
    evidence: str = field(default="", repr=False)  # the erratum:/variant: text, whitespace folded
    mark: Mark | None = field(default=None, repr=False)  # the entry's position
    path: tuple = field(default=(), repr=False)  # its key path (expect.macs, expect.layers.conv1.params)
    value: Any = field(default=None, repr=False)  # the printed value: a Decimal, or a shape tuple
    network: str = field(default="", repr=False)  # the spec's name:
    column: str | None = field(default=None, repr=False)  # the table column the spec reads, if any
    doc: Any = field(default=None, repr=False)  # the spec document (its paper: and title:)

    def as_dict(self) -> dict[str, Any]:
        return {k: self.__dict__[k] for k in _PUBLIC}


def _entry(value: Any, mark: Mark | None, path: tuple, raw_text: str | None) -> tuple[ExpectEntry, str | None]:
    if isinstance(value, dict):
        try:
            e = ExpectEntry.model_validate(dict(value))
        except ValidationError as err:
            raise pydantic_error(err, value, path, ExpectEntry.model_fields) from None
        rt = value.raw.get("value") if isinstance(value, LocDict) else None
        return e, rt
    return ExpectEntry(value=value), raw_text


def _display(x: Any) -> str:
    if isinstance(x, (tuple, list)):
        return "[" + ", ".join(str(int(v)) for v in x) + "]"
    return f"{x:,}" if isinstance(x, int) else str(x)


def _compare(spec: str, metric: str, label: str, entry: ExpectEntry, raw_text: str | None, actual: Any,
             default_source: str, mark: Mark | None, path: tuple) -> Row:
    source = entry.source or default_source
    flagged = entry.erratum or entry.variant
    status_flag = "erratum" if entry.erratum else "variant"
    where = dict(kind=status_flag if flagged else "", evidence=" ".join(str(flagged or "").split()), mark=mark,
                 path=tuple(path))
    if metric == "output":
        if not isinstance(entry.value, list) or not all(isinstance(v, int) for v in entry.value):
            raise SpecError("output: takes a shape such as [1000] or [256, 28, 28]", mark=mark, path=path,
                            code="bad_expect")
        ok = tuple(entry.value) == tuple(actual)
        row = Row(spec, label, _display(entry.value), _display(actual), None, source, "pass" if ok else "fail",
                  value=tuple(entry.value), **where)
        if flagged:
            ok = entry.derived is not None and tuple(entry.derived) == tuple(actual)
            row.status = status_flag if ok else "fail"
            row.note = flagged if ok else f"stale note: derived {entry.derived} but archspec gives {_display(actual)}"
        return row
    text = raw_text if raw_text is not None and not isinstance(entry.value, str) else entry.value
    if isinstance(entry.value, bool) or not isinstance(entry.value, (int, float, str)):
        raise SpecError(f"{metric}: takes a number as printed (25_557_032, 3.8G), got {entry.value!r}",
                        mark=mark, path=path, code="bad_expect")
    try:
        printed = parse_printed(str(text), entry.tol)
    except ValueError as e:
        raise SpecError(str(e), mark=mark, path=path, code="bad_expect") from None
    delta = float((Decimal(actual) - printed.value) / printed.value * 100) if printed.value else None
    tol_txt = "exact" if printed.tol == 0 else f"±{human(float(printed.tol))}"
    row = Row(spec, label, f"{printed.text} ({tol_txt})", _display(actual), delta, source,
              "pass" if printed.matches(actual) else "fail", value=printed.value, **where)
    if flagged:
        if entry.derived is None:
            raise SpecError(f"an {status_flag} entry states derived: (the count archspec gives)", mark=mark,
                            path=path, code="bad_expect", hint=f"derived: {actual}")
        try:
            derived = parse_printed(str(entry.derived).replace(" ", ""), "exact").value
        except ValueError as e:
            raise SpecError(str(e), mark=mark, path=path + ("derived",), code="bad_expect") from None
        ok = derived == Decimal(actual)
        row.status = status_flag if ok else "fail"
        row.note = " ".join(flagged.split()) if ok else \
            f"stale {status_flag}: derived {entry.derived} but archspec gives {actual:,}"
    return row


def check_network(net: Network, graph: Graph, stats: NetStats) -> list[Row]:
    """One row per ``expect:`` entry of ``net`` (totals, then named layers)."""
    rows: list[Row] = []
    exp = net.expect
    default_source = exp.get("source") if isinstance(exp.get("source"), str) else ""
    for key in exp:
        if key in ("source", "layers"):
            continue
        if key not in METRICS:
            import difflib
            close = difflib.get_close_matches(key, METRICS, n=1)
            raise SpecError(f"unknown metric '{key}'", mark=net.expect_key_marks.get(key), path=("expect", key),
                            hint=f"did you mean '{close[0]}'?" if close else f"metrics: {', '.join(METRICS)}",
                            code="unknown_key")
        mark = net.expect_marks.get(key)
        entry, rt = _entry(exp[key], mark, ("expect", key), net.expect_raw.get(key))
        rows.append(_compare(net.ref, key, key, entry, rt, stats.metric(key), default_source, mark,
                             ("expect", key)))
    layer_entries: list[tuple[str, Any, Any]] = []
    for lname, (lval, holder) in (exp.get("layers") or {}).items():
        layer_entries.append((str(lname), lval, holder))
    for lpath, (lval, holder) in graph.layer_expects.items():
        layer_entries.append((lpath, lval, holder))
    for lname, lval, holder in layer_entries:
        lmark = holder.key_marks.get(lname, holder.mark_of(lname)) if isinstance(holder, LocDict) and lname in holder else \
            (holder.mark_of("expect") if isinstance(holder, LocDict) else None)
        totals = module_totals(graph, stats, lname)
        if totals is None:
            import difflib
            close = difflib.get_close_matches(lname, list(graph.named) + list(graph.modules), n=1)
            raise SpecError(f"expect names the layer '{lname}', which the network does not have",
                            mark=lmark, path=("expect", "layers", lname), code="undefined_ref",
                            hint=f"did you mean '{close[0]}'?" if close else None)
        if not isinstance(lval, dict):
            raise SpecError("a layer's expectations are a mapping such as {params: 34_944}", mark=lmark,
                            path=("expect", "layers", lname), code="bad_expect")
        for key, v in lval.items():
            if key == "source":
                continue
            if key not in METRICS:
                import difflib
                close = difflib.get_close_matches(str(key), METRICS, n=1)
                raise SpecError(f"unknown metric '{key}'",
                                mark=lval.key_marks.get(key, lmark) if isinstance(lval, LocDict) else lmark,
                                path=("expect", "layers", lname, key), code="unknown_key",
                                hint=f"did you mean '{close[0]}'?" if close else f"metrics: {', '.join(METRICS)}")
            vmark = lval.mark_of(key) if isinstance(lval, LocDict) else lmark
            entry, rt = _entry(v, vmark, ("expect", "layers", lname, key),
                               lval.raw.get(key) if isinstance(lval, LocDict) else None)
            src = lval.get("source") if isinstance(lval.get("source"), str) else default_source
            rows.append(_compare(net.ref, key, f"{lname}.{key}", entry, rt, totals[key], src, vmark,
                                 ("expect", "layers", lname, key)))
    for r in rows:
        r.network, r.column, r.doc = net.name, net.column, net.doc
    return rows
