"""Errata and variants across specs: the consistency check and the page docs/errata.md.

Two ``expect:`` entries are *about the same printed number* when they share a key (:func:`same_number`):

* the paper: its ``paper: arxiv`` id (``arXiv:`` prefix and version suffix dropped), else its
  ``url``, else its first author and year;
* the network the paper prints the number for: the table column the spec reads (``column:``), else
  the spec's ``name:``; compared with case and every character but letters and digits dropped, so
  ``ViT-B/16`` and ``vit_b_16`` are one network;
* the metric, with its layer for a per-layer entry (``macs``, ``conv1.neurons``);
* the printed value (``3.6e9`` and ``3.6G`` are one value; the tolerance does not enter the key).

Such entries *contradict* when one is an ``erratum:`` (the paper is wrong) and another treats the
number as right: a plain entry that passes, or a ``variant:`` (right, for a neighbouring network).
``specs/resnet.yaml``'s resnet34 (a variant: option A's count), ``specs/plain34.yaml`` (a pass) and
``specs/resnet34_c.yaml`` (a variant) share one key, and agree. An entry without a ``paper:`` has no
key. torch is never imported here.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from typing import Any, Iterable

from ..errors import SpecError, format_path
from .check import Row

__all__ = ["paper_identity", "same_number", "check_consistency", "errata_page", "PAGE_COMMAND"]

#: the command that writes the page (its header names it)
PAGE_COMMAND = "archspec check --errata-page docs/errata.md"


def paper_identity(paper: Any) -> str | None:
    """``paper:`` -> one string per paper: ``arXiv:1512.03385``, a url, or ``lecun 1998``."""
    if paper is None:
        return None
    if getattr(paper, "arxiv", None):
        ident = re.sub(r"(?i)^\s*arxiv:?\s*", "", str(paper.arxiv).strip())
        return "arXiv:" + re.sub(r"v\d+$", "", ident)
    if getattr(paper, "url", None):
        return str(paper.url).strip().rstrip("/")
    if paper.authors and paper.year:
        return f"{paper.authors[0].casefold()} {paper.year}"
    return None


def _net_key(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.casefold())


def same_number(row: Row) -> tuple | None:
    """The key of the printed number ``row`` is about (module docstring), or None (no paper)."""
    ident = paper_identity(getattr(row.doc, "paper", None))
    if ident is None or row.value is None:
        return None
    return ident, _net_key(row.column or row.network), row.metric, row.value


def _claim(row: Row) -> str | None:
    """'wrong', 'right' or None (a plain entry that does not match: a mismatch, reported as one)."""
    if row.kind == "erratum":
        return "wrong"
    if row.kind == "variant" or row.status == "pass":
        return "right"
    return None


def _printed(row: Row) -> str:
    return row.paper.split(" (")[0]


def check_consistency(rows: Iterable[Row]) -> None:
    """Raise a located :class:`SpecError` at the first erratum that another entry contradicts."""
    groups: dict[tuple, list[Row]] = defaultdict(list)
    order: list[tuple] = []
    for r in rows:
        key = same_number(r)
        if key is None or _claim(r) is None:
            continue
        if key not in groups:
            order.append(key)
        groups[key].append(r)
    for key in order:
        rs = groups[key]
        wrong = [r for r in rs if _claim(r) == "wrong"]
        right = [r for r in rs if _claim(r) == "right"]
        if not wrong or not right:
            continue
        w, ok = wrong[0], right[0]
        how = "keeps it as a variant (right for a neighbouring network)" if ok.kind == "variant" \
            else "matches it as printed"
        there = str(ok.mark) if ok.mark else "<spec>:1:1"
        raise SpecError(
            f"this erratum says {key[0]} misprints {w.metric} {_printed(w)} of {w.column or w.network}, but "
            f"{there} ({ok.spec}, {format_path(ok.path)}) {how}",
            mark=w.mark, path=w.path, code="contradiction",
            hint="entries about the same printed number (same paper, network, metric and value; docs/spec.md "
                 "§8) must agree: a misprint everywhere (erratum:) or right everywhere (variant: or as printed)")


# ------------------------------------------------------------------------------------- page
def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _where(row: Row) -> str:
    if row.mark is None:
        return row.spec
    f = row.mark.file
    if os.path.isabs(f):  # below the working directory: relative, so the page is the same in any checkout
        try:
            rel = os.path.relpath(f)
            f = f if rel.startswith("..") else rel
        except ValueError:
            pass
    return f"{f.replace(os.sep, '/')}:{row.mark.line}"


def _title(text: str) -> str:
    """A spec's title as its paper's: ``Deep Residual … — ResNet-34 C`` and ``… (Table 4)`` lose
    their tails."""
    return re.sub(r"\s*\([^()]*\)$", "", text.split(" — ")[0]).strip() or text


def _paper_heading(rows: list[Row], titles: list[str]) -> tuple[tuple, str]:
    """(sort key, heading) of a paper's section; ``titles``: those of every spec of the paper, in
    zoo order (a spec of the paper itself before a torchvision builder's)."""
    paper = getattr(rows[0].doc, "paper", None)
    own = [t for t in titles if not t.startswith("torchvision")]
    title = (paper.title if paper is not None and paper.title else None) or \
        (_title(own[0]) if own else titles[0] if titles else rows[0].network)
    if paper is None:
        return (9999, "", title), f"## {title}\n\n(no `paper:` in the spec)"
    cite = paper.cite()
    return (paper.year or 9999, (paper.authors or [""])[0].casefold(), title), f"## {title}\n\n{cite}" + (
        f" ({paper.venue})" if paper.venue and paper.arxiv else "")


def _ident(row: Row) -> str:
    return paper_identity(getattr(row.doc, "paper", None)) or f"spec {_where(row).split(':')[0]}"


def errata_page(rows: Iterable[Row]) -> str:
    """docs/errata.md: every erratum and variant of ``rows``, grouped by paper (deterministic)."""
    entries: dict[tuple, list[Row]] = {}
    titles: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        t = getattr(r.doc, "title", None)
        if t and t not in titles[_ident(r)]:
            titles[_ident(r)].append(t)
    for r in rows:
        if not r.kind:
            continue
        at = (_where(r), tuple(r.path), r.metric) if r.mark else (r.spec, tuple(r.path), r.metric)
        entries.setdefault(at, []).append(r)
    papers: dict[str, list[list[Row]]] = defaultdict(list)
    for same in entries.values():
        r = same[0]
        papers[_ident(r)].append(same)
    sections = []
    n_err = sum(same[0].kind == "erratum" for same in entries.values())
    for ident, group in papers.items():
        key, heading = _paper_heading([same[0] for same in group], titles[ident])
        lines = [heading, "",
                 "| network | metric | printed | archspec | Δ% | kind | evidence | source | spec |",
                 "|---|---|---|--:|--:|---|---|---|---|"]

        def order(same: list[Row]) -> tuple:
            f, _, line = _where(same[0]).rpartition(":")
            return (f, int(line) if line.isdigit() else 0, same[0].metric)
        for same in sorted(group, key=order):
            r = same[0]
            names = ", ".join(dict.fromkeys(x.network for x in same))
            delta = "" if r.delta_pct is None else f"{r.delta_pct:+.2f}"
            printed = r.paper if r.delta_pct is not None or "(" in r.paper else f"{r.paper} (exact)"
            kind = r.kind if r.status != "fail" else f"{r.kind} (STALE: {r.note})"
            lines.append("| " + " | ".join(_cell(c) for c in (
                names, r.metric, printed, r.archspec, delta, kind, r.evidence, r.source, _where(r))) + " |")
        sections.append((key, "\n".join(lines)))
    sections.sort(key=lambda s: s[0])
    n_var = len(entries) - n_err
    head = f"""# What the papers print and what archspec derives

Generated from specs/ by `{PAGE_COMMAND}` (`make zoo-doc`); do not edit it by hand:
tests/test_errata.py fails when it differs from what the specs generate.

Every number below is printed in a paper (or a model zoo's table) and kept in a spec's `expect:`
as printed, although archspec's count of the network the spec builds differs from it
(docs/spec.md §8). Each is one of two kinds:

- **erratum**: the paper is wrong (a misprint, a slip of arithmetic or rounding): no reading of the
  architecture it describes gives the printed number.
- **variant**: the number is right, but for a slightly different network than the one the spec
  builds (another shortcut option, a neighbouring column, a rounded or partial count).

Either way the spec states the count archspec derives (`derived:`), and `archspec check` compares
it *exactly*: if the spec changes, the row becomes a mismatch. The printed number's tolerance (the
half unit of its last digit, shown in brackets) is never widened to hide a difference. `archspec
check` also refuses two specs that disagree about the same printed number (one calls it an
erratum, the other right).

Counting conventions: `params` are learnable parameters (BN running statistics are buffers and do
not count); `weights` are params without biases and BN shifts; `macs` are multiply-accumulates of
conv and linear layers and of attention's matmuls, for one image (batch 1): what most papers call
"FLOPs" or "multiply-adds". FLOPs = 2 × MACs (what `torch.utils.flop_counter.FlopCounterMode`
reports). `neurons` are the output elements of conv and linear layers; `output` is a shape.
A metric `conv1.neurons` is one layer's (or module's) count. Δ% = (archspec − printed) / printed.
The spec column gives the file and line of the entry.

{n_err} errata and {n_var} variants, from {len(papers)} papers.
"""
    return head + "\n" + "\n\n".join(s for _, s in sections) + "\n"
