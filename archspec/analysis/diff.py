"""``archspec diff A B``: what changed between two architectures, layer by layer.

The two networks' layers (in topological order) are aligned with difflib's sequence matcher on
each layer's op and attributes, so an inserted conv shows as one added layer even when it shifts
every later index (VGG's columns), and a layer whose attributes changed (ZFNet's first conv)
shows as one changed layer with the old and new values.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from ..ir import Graph
from .stats import NetStats

__all__ = ["Change", "NetDiff", "diff_networks"]

_IGNORED = {"input"}


@dataclass
class Change:
    kind: str                       # added | removed | changed
    a: str | None                   # layer name in A
    b: str | None                   # layer name in B
    op: str
    attrs: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    output: tuple[Any, Any] = (None, None)
    params: tuple[int, int] = (0, 0)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "a": self.a, "b": self.b, "op": self.op,
                "attrs": {k: [_plain(v[0]), _plain(v[1])] for k, v in self.attrs.items()},
                "output": [_plain(self.output[0]), _plain(self.output[1])],
                "params": list(self.params)}


@dataclass
class NetDiff:
    a: NetStats
    b: NetStats
    changes: list[Change]

    def as_dict(self) -> dict[str, Any]:
        def tot(s: NetStats) -> dict[str, Any]:
            return {"name": s.name, "ref": s.ref, "input": list(s.input), "output": list(s.output),
                    "params": s.params, "macs": s.macs, "activations": s.activations}
        return {"a": tot(self.a), "b": tot(self.b),
                "delta": {"params": self.b.params - self.a.params, "macs": self.b.macs - self.a.macs,
                          "activations": self.b.activations - self.a.activations},
                "changes": [c.as_dict() for c in self.changes]}


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


def _attrs(node) -> dict[str, Any]:
    return node.attrs.model_dump()


def _signature(node) -> tuple:
    fan_in = tuple(s[0] for s in node.in_shapes if s)
    return (node.op, fan_in, tuple(sorted((k, repr(v)) for k, v in _attrs(node).items())))


def diff_networks(ga: Graph, sa: NetStats, gb: Graph, sb: NetStats) -> NetDiff:
    na = [n for n in ga.nodes() if n.op not in _IGNORED]
    nb = [n for n in gb.nodes() if n.op not in _IGNORED]
    pa = {l.name: l.params for l in sa.layers}
    pb = {l.name: l.params for l in sb.layers}
    sm = difflib.SequenceMatcher(a=[_signature(n) for n in na], b=[_signature(n) for n in nb], autojunk=False)
    changes: list[Change] = []
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            for x, y in zip(na[i1:i2], nb[j1:j2]):
                if pa[x.id] != pb[y.id]:  # same layer, other input size (a linear after a wider conv)
                    changes.append(Change("changed", x.id, y.id, x.op, {"in": (x.in_shapes[0][-1], y.in_shapes[0][-1])},
                                          (x.shape, y.shape), (pa[x.id], pb[y.id])))
            continue
        left, right = na[i1:i2], nb[j1:j2]
        if tag == "replace":
            # pair layers of the same op in order; the rest are removed / added
            k = 0
            used = set()
            for x in left:
                match = next((j for j, y in enumerate(right) if j not in used and y.op == x.op and j >= k), None)
                if match is None:
                    changes.append(Change("removed", x.id, None, x.op, output=(x.shape, None), params=(pa[x.id], 0)))
                    continue
                for j in range(k, match):
                    if j not in used:
                        y = right[j]
                        used.add(j)
                        changes.append(Change("added", None, y.id, y.op, output=(None, y.shape), params=(0, pb[y.id])))
                y = right[match]
                used.add(match)
                k = match + 1
                ax, ay = _attrs(x), _attrs(y)
                delta = {key: (ax.get(key), ay.get(key)) for key in sorted(set(ax) | set(ay)) if ax.get(key) != ay.get(key)}
                if x.in_shapes and y.in_shapes and x.in_shapes[0][:1] != y.in_shapes[0][:1]:
                    if not delta and pa[x.id] == pb[y.id]:
                        continue  # a parameter-free layer that only passes the wider input on
                    delta = {"in": (x.in_shapes[0][0], y.in_shapes[0][0]), **delta}
                changes.append(Change("changed", x.id, y.id, x.op, delta, (x.shape, y.shape), (pa[x.id], pb[y.id])))
            for j, y in enumerate(right):
                if j not in used:
                    changes.append(Change("added", None, y.id, y.op, output=(None, y.shape), params=(0, pb[y.id])))
        elif tag == "delete":
            for x in left:
                changes.append(Change("removed", x.id, None, x.op, output=(x.shape, None), params=(pa[x.id], 0)))
        elif tag == "insert":
            for y in right:
                changes.append(Change("added", None, y.id, y.op, output=(None, y.shape), params=(0, pb[y.id])))
    return NetDiff(sa, sb, changes)
