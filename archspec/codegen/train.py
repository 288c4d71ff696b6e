"""The emitted training script ``train_<name>.py``: the validated recipe as template variables.

The script is short: its recipe as data and a call into ``archspec_train.py``, the training runtime
that ``build`` writes once, at the top of the output folder (templates/train.py.j2,
rendered with :func:`runtime_context`). :data:`RUNTIME_INTERFACE` is what the two agree on (the
fields of the runtime's ``Network``, the keys of :func:`recipe_dict`): bump it when either changes,
so that a script beside a runtime of another build stops with one line instead of a traceback.

The script's defaults are the spec's ``train:`` (or :class:`~archspec.spec.train.TrainRecipe`'s
defaults, the generic recipe, when a spec has none); they are written as ``repr`` of validated
values, never as spec text.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import textwrap
from typing import Any

from ..errors import SpecError
from ..ir import lower
from ..ir.graph import Graph
from ..ir.lower import in_record
from ..ir.sym import plain
from ..load import Network
from ..ops import REGISTRY, OpError
from ..spec.expr import ExprError, parse
from ..spec.expr import _Field, _Name, _Node as _ExprNode
from .pymodel import _safe_doc
from ..spec.train import TrainRecipe

__all__ = ["train_context", "runtime_context", "recipe_dict", "input_size_range", "RUNTIME_FILE",
           "RUNTIME_INTERFACE"]

#: the runtime's file name, at the top of the output folder (a network cannot be named ``archspec_train``)
RUNTIME_FILE = "archspec_train.py"
RUNTIME_INTERFACE = 2

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def recipe_dict(recipe: TrainRecipe, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """Flat, JSON-like defaults of the script (keys = the script's option names, ``-`` -> ``_``)."""
    a, s, e = recipe.augment, recipe.schedule, recipe.eval
    channels = input_shape[0] if len(input_shape) == 3 else 1
    mean = a.mean if a.mean is not None else (IMAGENET_MEAN if channels == 3 else [0.5] * channels)
    std = a.std if a.std is not None else (IMAGENET_STD if channels == 3 else [0.5] * channels)
    return {
        "data": recipe.data,
        "optimizer": recipe.optimizer,
        "lr": recipe.lr,
        "momentum": recipe.momentum,
        "nesterov": recipe.nesterov,
        "betas": list(recipe.betas),
        "alpha": recipe.alpha,
        "eps": recipe.eps,
        "mu": recipe.mu,
        "hessian_samples": recipe.hessian_samples,
        "hessian": recipe.hessian,
        "weight_decay": recipe.weight_decay,
        "batch_size": recipe.batch_size,
        "epochs": recipe.epochs,
        "iterations": recipe.iterations,
        "warmup_epochs": recipe.warmup_epochs,
        "label_smoothing": recipe.label_smoothing,
        "grad_clip": recipe.grad_clip,
        "aux_loss_weights": dict(sorted(recipe.aux_loss_weights.items())) if recipe.aux_loss_weights else None,
        "schedule": s.type,
        "schedule_unit": s.unit,
        "step_size": s.step_size,
        "milestones": list(s.milestones),
        "gamma": s.gamma,
        "piecewise": [list(v) for v in s.values],
        "patience": s.patience,
        "monitor": s.monitor,
        "max_decays": s.max_decays,
        "min_lr": s.min_lr,
        "crop": a.crop,
        "resize": a.resize,
        "padding": a.padding,
        "scale": list(a.scale) if a.scale else None,
        "area": list(a.area),
        "hflip": a.hflip,
        "lighting": a.lighting,
        "mean": list(mean),
        "std": list(std),
        "eval_crop": e.crop,
        "eval_resize": e.resize,
    }


def _weights_at(net: Network, size: int) -> list[tuple[str, int]] | None:
    """Each node's parameter count when the network is lowered for ``size`` x ``size`` inputs;
    None when the spec's shape rules reject that size. The reference: a whole lowering."""
    try:
        graph = lower(dataclasses.replace(net, input=(net.input[0], size, size)))
    except SpecError:
        return None
    return _weights(graph)


def _weights(graph: Graph) -> list[tuple[str, int]]:
    return [(n.id, REGISTRY[n.op].count(n.attrs, n.in_shapes, n.shape).params) for n in graph.nodes()]


#: every field of the ``in`` record (a read of ``in`` other than ``in.FIELD`` reads them all)
_ALL_FIELDS = None
_IN_WORD = re.compile(r"\bin\b")
_PATTERN_PART = re.compile(r"\{([^{}]*)\}")  # a {...} of a names: pattern (Lowerer.pattern_name)


def _in_fields(net: Network) -> frozenset[str] | None:
    """The fields of ``in`` that the expressions lowering may evaluate read (``in.c`` -> ``{'c'}``):
    every string, key or value, of the network's body, its blocks and its cells (more than one
    lowering evaluates, never less). A text that does not parse is never evaluated (lowering
    keeps it as a word, or rejects it whatever ``in`` holds), so it reads nothing. None: possibly
    any field (``in`` used otherwise than as ``in.FIELD``)."""
    fields: set[str] = set()
    seen: dict[int, Any] = {}  # id -> the container, kept alive so that no id is reused
    todo: list[Any] = [net.doc.network]
    for blk in net.blocks.values():
        todo += [blk.body, [d for _, _, d in blk.params if isinstance(d, str)]]
    todo += [cell.body for cell in net.cells]
    while todo:
        v = todo.pop()
        if isinstance(v, str):
            if not _IN_WORD.search(v):
                continue
            for text in [v[1:] if v.startswith("$") else v] + _PATTERN_PART.findall(v):
                try:
                    expr = parse(text)
                except ExprError:
                    continue
                if "in" not in expr.names():
                    continue
                got = _fields_of_in(expr._root)
                if got is _ALL_FIELDS:
                    return _ALL_FIELDS
                fields |= got
        elif isinstance(v, (dict, list, tuple)) and id(v) not in seen:
            seen[id(v)] = v
            todo.extend([*v.keys(), *v.values()] if isinstance(v, dict) else v)
    return frozenset(fields)


def _fields_of_in(node: Any) -> set[str] | None:
    """``in.FIELD`` reads in one parsed expression; None when ``in`` is read any other way."""
    found: set[str] = set()
    todo = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, _Field) and isinstance(n.obj, _Name) and n.obj.name == "in":
            found.add(n.name)
            continue
        if isinstance(n, _Name):
            if n.name == "in":
                return _ALL_FIELDS
            continue
        for v in vars(n).values():  # the children, wherever the node class keeps them
            if isinstance(v, _ExprNode):
                todo.append(v)
            elif isinstance(v, (list, tuple)):
                for x in v:
                    if isinstance(x, _ExprNode):
                        todo.append(x)
                    elif isinstance(x, tuple):  # a comparison's (op, node, offset)
                        todo.extend(y for y in x if isinstance(y, _ExprNode))
    return found


class _Replay:
    """The lowering of ``net`` at ``size`` x ``size``, without lowering again: lowering reads the
    input's size only through the shape rules of the ops (each node's ``infer``, in the order the
    nodes were made) and through the ``in`` record of a block (``in.c``, ``in.h`` ...; a ``dense:``
    block's size check is its concatenations' rule). So while every block is entered with the same
    values of the ``in`` fields the spec reads as at the spec's own size, the lowering at ``size``
    makes the same nodes with the same attributes, and re-running the shape rules over the graph
    gives its result exactly. Where a block would see other values, :meth:`weights_at` answers
    None for "unknown", and the caller lowers for real."""

    UNKNOWN = object()

    def __init__(self, net: Network, graph: Graph) -> None:
        self.net = net
        self.nodes = list(graph.nodes())
        self.fields = _in_fields(net)
        self.index = {n.id: i for i, n in enumerate(self.nodes)}
        # a block reads its in record just before the first node of its body (ids below its path)
        self.entries: dict[int, list[str]] = {}
        blocks: dict[str, str] = {}
        if self.fields is None or self.fields:
            blocks = {p: info.input for p, info in graph.modules.items() if info.kind == "block"}
            for i, n in enumerate(self.nodes):
                parts = n.id.split(".")
                for k in range(1, len(parts)):
                    path = ".".join(parts[:k])
                    if path in blocks:
                        self.entries.setdefault(i, []).append(blocks.pop(path))
        self.blind = bool(self.fields is None or self.fields) and bool(blocks)  # a block without nodes

    def _seen(self, shape: tuple) -> Any:
        rec = in_record(shape)
        if self.fields is None:
            return rec
        return [rec.get(f, self.UNKNOWN) for f in sorted(self.fields)]

    def weights_at(self, size: int) -> Any:
        """Like :func:`_weights_at`; :attr:`UNKNOWN` when this graph cannot tell."""
        if self.blind:
            return self.UNKNOWN
        shapes: dict[str, tuple] = {}
        out: list[tuple[str, int]] = []
        for i, n in enumerate(self.nodes):
            for inp in self.entries.get(i, ()):
                own = self.nodes[self.index[inp]].shape
                if self._seen(shapes[inp]) != self._seen(own):
                    return self.UNKNOWN
            op = REGISTRY[n.op]
            if n.op == "input":
                shape: tuple = (self.net.input[0], size, size)
                attrs = op.attrs(shape=shape)
                ins: list[tuple] = []
            else:
                attrs, ins = n.attrs, [shapes[x] for x in n.inputs]
                try:
                    shape = op.infer(attrs, ins)  # a ChannelsLast shape stays one
                except OpError:
                    return None
            shapes[n.id] = shape
            out.append((n.id, op.count(attrs, ins, shape).params))
        return out


def input_size_range(net: Network, graph: Any = None) -> tuple[int | None, int | None]:
    """(smallest, largest) square input the emitted model takes: sizes at which the spec's shape
    rules hold and every layer keeps the parameters it has at the spec's own size (a ``linear``
    after ``flatten`` bounds the size on both sides; a global pool leaves no largest, None).
    Binary searches, which assume that the sizes taken form one interval around the spec's;
    (None, None) for inputs that are not square images.

    The network is lowered once, at its own size; each size the searches try re-runs only the
    shape rules over that graph (:class:`_Replay`), and is lowered again only where that cannot
    tell (a block that reads a field of ``in`` that changes with the size)."""
    if len(net.input) != 3 or net.input[1] != net.input[2]:
        return None, None
    size = net.input[1]
    if graph is None:  # build passes the lowering it made for the module
        try:
            graph = lower(net)
        except SpecError:
            return None, None
    own = _weights(graph)
    replay = _Replay(net, graph)

    def takes(s: int) -> bool:
        got = replay.weights_at(s)
        if got is _Replay.UNKNOWN:
            got = _weights_at(net, s)
        return got == own

    if takes(1):  # most networks with a global pool: no search
        lo = 1
    else:
        lo, hi = 2, size
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if takes(mid) else (mid + 1, hi)
    if takes(4 * size):
        return lo, None
    a, b = size, 4 * size - 1  # the largest size taken lies in [a, b]
    while a < b:
        mid = (a + b + 1) // 2
        a, b = (mid, b) if takes(mid) else (a, mid - 1)
    return lo, a


def literal(v: Any) -> str:
    """A Python literal of validated data, double-quoted like hand-written code."""
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a valid Python string literal
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(literal(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(x)}" for k, x in v.items()) + "}"
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"not a finite number: {v}")
    return repr(v)  # bool, None, int, float


def _lines(d: dict[str, Any]) -> list[str]:
    return [f"    {literal(k)}: {_value(v)}," for k, v in d.items()]


def _value(v: Any) -> str:
    """A recipe value; a long list of one number (the mean of 192 channels) as ``[x] * n``."""
    if isinstance(v, list) and len(v) > 4 and all(type(x) is type(v[0]) and x == v[0] for x in v):
        return f"[{literal(v[0])}] * {len(v)}"
    return literal(v)


def train_context(net: Network, module_file: str, class_name: str, spec_display: str,
                  graph: Any = None, runtime: str = RUNTIME_FILE) -> dict[str, Any]:
    """Template variables; prose goes through the docstring filter, values through ``repr``."""
    recipe = net.train if net.train is not None else TrainRecipe()
    source = (recipe.source or "the spec's train: section") if net.train is not None else (
        "archspec's generic recipe (the spec has no train: section)")
    title = _safe_doc(net.doc.title or net.name)
    head = textwrap.wrap(f"Train {title} ({_safe_doc(net.name)}) with the recipe of its paper.", 97)
    head += [""] + textwrap.wrap(f"Generated by archspec from {_safe_doc(spec_display)} — edit the spec, "
                                 "not this file.", 100)
    head += textwrap.wrap(f"Recipe: {_safe_doc(source)}", 100)
    tail = textwrap.wrap(
        "Data: synthetic, digits (scikit-learn's 8x8 digits, resized), cifar10:PATH (the python-pickle "
        "batches), imagefolder:PATH (PATH/train and PATH/val class folders). Checkpoints, metrics.jsonl "
        f"and curves.png go to --out-dir. The model comes from the sibling file {_safe_doc(module_file)}, "
        f"the training loop from {RUNTIME_FILE}, archspec's training runtime, which build writes once at "
        "the top of the output folder (copy the whole folder).", 100, break_long_words=False, break_on_hyphens=False)
    return {
        "doc_head": "\n".join(head),
        "doc_tail": "\n".join(tail),
        "name": _safe_doc(net.name),
        "script": _safe_doc(f"train_{module_file}"),
        "title": _safe_doc(net.doc.title or net.name),
        "spec": _safe_doc(spec_display),
        "source": _safe_doc(source),
        "network": literal(net.name),
        "input_sizes": [repr(n) for n in input_size_range(net, graph)],
        "module_file": literal(module_file),
        "class_name": class_name,
        "input_shape": repr(tuple(net.input)),
        "num_classes": repr(net.num_classes),
        "runtime_path": literal(runtime),
        "recipe_lines": _lines(recipe_dict(recipe, tuple(net.input))),
        "runtime_interface": repr(RUNTIME_INTERFACE),
    }


def runtime_context() -> dict[str, Any]:
    """Template variables of the runtime (the same file in every output folder)."""
    return {"interface": repr(RUNTIME_INTERFACE)}
