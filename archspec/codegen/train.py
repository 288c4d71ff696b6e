"""The emitted training script ``train_<name>.py``: the validated recipe as template variables.

The script's defaults are the spec's ``train:`` (or :class:`~archspec.spec.train.TrainRecipe`'s
defaults, the generic recipe, when a spec has none); they are written as ``repr`` of validated
values, never as spec text.
"""

from __future__ import annotations

import dataclasses
import json
import math
import textwrap
from typing import Any

from ..errors import SpecError
from ..ir import lower
from ..load import Network
from ..ops import REGISTRY
from .pymodel import _safe_doc
from ..spec.train import TrainRecipe

__all__ = ["train_context", "recipe_dict", "input_size_range"]

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
    None when the spec's shape rules reject that size."""
    try:
        graph = lower(dataclasses.replace(net, input=(net.input[0], size, size)))
    except SpecError:
        return None
    return [(n.id, REGISTRY[n.op].count(n.attrs, n.in_shapes, n.shape).params) for n in graph.nodes()]


def input_size_range(net: Network) -> tuple[int | None, int | None]:
    """(smallest, largest) square input the emitted model takes: sizes at which the spec's shape
    rules hold and every layer keeps the parameters it has at the spec's own size (a ``linear``
    after ``flatten`` bounds the size on both sides; a global pool leaves no largest, None).
    Binary searches, which assume that the sizes taken form one interval around the spec's;
    (None, None) for inputs that are not square images."""
    if len(net.input) != 3 or net.input[1] != net.input[2]:
        return None, None
    size = net.input[1]
    own = _weights_at(net, size)
    if own is None:
        return None, None
    if _weights_at(net, 1) == own:  # most networks with a global pool: no search
        lo = 1
    else:
        lo, hi = 2, size
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if _weights_at(net, mid) == own else (mid + 1, hi)
    if _weights_at(net, 4 * size) == own:
        return lo, None
    a, b = size, 4 * size - 1  # the largest size taken lies in [a, b]
    while a < b:
        mid = (a + b + 1) // 2
        a, b = (mid, b) if _weights_at(net, mid) == own else (a, mid - 1)
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
    return [f"    {literal(k)}: {literal(v)}," for k, v in d.items()]


def train_context(net: Network, module_file: str, class_name: str, spec_display: str) -> dict[str, Any]:
    """Template variables; prose goes through the docstring filter, values through ``repr``."""
    recipe = net.train if net.train is not None else TrainRecipe()
    source = (recipe.source or "the spec's train: section") if net.train is not None else (
        "archspec's generic recipe (the spec has no train: section)")
    title = _safe_doc(net.doc.title or net.name)
    head = textwrap.wrap(f"Train {title} ({_safe_doc(net.name)}) with the recipe of its paper.", 97)
    head += [""] + textwrap.wrap(f"Generated by archspec from {_safe_doc(spec_display)} — edit the spec, "
                                 "not this file.", 100)
    head += textwrap.wrap(f"Recipe: {_safe_doc(source)}", 100)
    return {
        "doc_head": "\n".join(head),
        "name": _safe_doc(net.name),
        "script": _safe_doc(f"train_{module_file}"),
        "title": _safe_doc(net.doc.title or net.name),
        "spec": _safe_doc(spec_display),
        "source": _safe_doc(source),
        "network": literal(net.name),
        "input_sizes": [repr(n) for n in input_size_range(net)],
        "module_file": literal(module_file),
        "module_doc": _safe_doc(module_file),
        "class_name": class_name,
        "input_shape": repr(tuple(net.input)),
        "num_classes": repr(net.num_classes),
        "recipe_lines": _lines(recipe_dict(recipe, tuple(net.input))),
    }
