"""``init:`` — weight initialisation as the paper says, rendered as ``reset_parameters()``.

::

    init:
      conv:   {weight: {kaiming_normal: {mode: fan_out, nonlinearity: relu}}, bias: 0}
      bn:     {weight: 1, bias: 0}
      linear: {weight: {normal: {std: 0.01}}, bias: 0}
      layers: {conv2: {bias: 1}}          # per named layer, after the rules above

An initialiser is a number (a constant) or one of the mappings below; their arguments are checked
here and written with ``repr``, so nothing from the spec is executed.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import SpecError
from ..load import Network
from ..spec.expr import ExprError, parse
from ..spec.yamlio import LocDict

__all__ = ["render_init", "INITIALISERS"]

#: name -> (torch.nn.init function, allowed keyword arguments and their types)
INITIALISERS: dict[str, tuple[str, dict[str, type | tuple]]] = {
    "normal": ("normal_", {"mean": float, "std": float}),
    "uniform": ("uniform_", {"a": float, "b": float}),
    "trunc_normal": ("trunc_normal_", {"mean": float, "std": float, "a": float, "b": float}),
    "constant": ("constant_", {"val": float}),
    "zeros": ("zeros_", {}),
    "ones": ("ones_", {}),
    "kaiming_normal": ("kaiming_normal_", {"a": float, "mode": ("fan_in", "fan_out"),
                                            "nonlinearity": ("relu", "leaky_relu", "linear", "tanh", "sigmoid")}),
    "kaiming_uniform": ("kaiming_uniform_", {"a": float, "mode": ("fan_in", "fan_out"),
                                              "nonlinearity": ("relu", "leaky_relu", "linear", "tanh", "sigmoid")}),
    "xavier_normal": ("xavier_normal_", {"gain": float}),
    "xavier_uniform": ("xavier_uniform_", {"gain": float}),
    "orthogonal": ("orthogonal_", {"gain": float}),
}
TENSORS = ("weight", "bias")


def layers_mark(holder: Any, key: Any):
    return holder.key_marks.get(key) if isinstance(holder, LocDict) else None


def _mark(holder: Any, key: Any):
    return holder.mark_of(key) if isinstance(holder, LocDict) else None


def _number(v: Any, env: dict, holder: Any, key: Any, path: tuple, what: str) -> float:
    """A number of init:, written as a literal or an expression over the network's parameters
    (``-1 / num_classes ** 0.5``), evaluated by the safe evaluator; finite."""
    if isinstance(v, str):
        try:
            v = parse(v[1:] if v.startswith("$") else v).evaluate(env)
        except ExprError as e:
            raise SpecError(f"in '{v}': {e.message}", mark=_mark(holder, key), path=path, hint=e.hint,
                            code="bad_init") from None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SpecError(f"{what} is a number, got {v!r}", mark=_mark(holder, key), path=path, code="bad_init")
    try:
        f = float(v)
    except OverflowError:  # an integer beyond the float range
        f = math.inf
    if not math.isfinite(f):
        raise SpecError(f"{what} must be a finite number, got {str(v)[:24]}", mark=_mark(holder, key),
                        path=path, code="non_finite")
    return f


def _call(spec: Any, target: str, holder: Any, key: Any, path: tuple, env: dict) -> str:
    if isinstance(spec, bool) or spec is None:
        raise SpecError(f"an initialiser is a number or one of {', '.join(INITIALISERS)}",
                        mark=_mark(holder, key), path=path, code="bad_init")
    if isinstance(spec, str) and spec not in INITIALISERS and not spec.isidentifier():
        spec = _number(spec, env, holder, key, path, "the constant")  # an expression
    if isinstance(spec, (int, float)):
        return f"nn.init.constant_({target}, {_number(spec, env, holder, key, path, 'the constant')!r})"
    if isinstance(spec, str):
        spec = {spec: {}}
    if not isinstance(spec, dict) or len(spec) != 1:
        raise SpecError("an initialiser is a number or a mapping with one key, e.g. {normal: {std: 0.01}}",
                        mark=_mark(holder, key), path=path, code="bad_init")
    (name, kwargs), = spec.items()
    if name not in INITIALISERS:
        import difflib
        close = difflib.get_close_matches(str(name), list(INITIALISERS), n=1)
        raise SpecError(f"unknown initialiser '{name}'", mark=_mark(holder, key), path=path, code="bad_init",
                        hint=f"did you mean '{close[0]}'?" if close else f"known: {', '.join(INITIALISERS)}")
    fn, allowed = INITIALISERS[name]
    kwargs = kwargs or {}
    if not isinstance(kwargs, dict):
        raise SpecError(f"{name} takes keyword arguments, e.g. {{{name}: {{...}}}}", mark=_mark(holder, key),
                        path=path, code="bad_init")
    parts = [target]
    for k, v in kwargs.items():
        if k not in allowed:
            raise SpecError(f"{name} has no argument '{k}'", mark=_mark(kwargs, k), path=path + (name, k),
                            code="bad_init", hint=f"its arguments: {', '.join(allowed) or '(none)'}")
        want = allowed[k]
        if isinstance(want, tuple):
            if v not in want:
                raise SpecError(f"{name}.{k} is one of {', '.join(want)}, got {v!r}", mark=_mark(kwargs, k),
                                path=path + (name, k), code="bad_init")
            parts.append(f"{k}={v!r}")
        else:
            parts.append(f"{k}={_number(v, env, kwargs, k, path + (name, k), f'{name}.{k}')!r}")
    return f"nn.init.{fn}({', '.join(parts)})"


def render_init(net: Network, module_classes: dict[str, set[str]], known: set[str] | None = None) -> list[str]:
    """Lines of ``reset_parameters`` for ``net`` (empty: PyTorch's default initialisation)."""
    spec = net.raw.get("init")
    if not spec:
        return []
    lines: list[str] = []
    branches: list[str] = []
    for op, rules in spec.items():
        if op == "layers":
            continue
        if op not in module_classes:
            from ..ops import REGISTRY
            if op not in REGISTRY:
                raise SpecError(f"init names the op '{op}', which is not an op", mark=_mark(spec, op),
                                path=("init", op), code="bad_init")
            continue  # the network has no such layer
        if not isinstance(rules, dict):
            raise SpecError("an op's init is {weight: ..., bias: ...}", mark=_mark(spec, op), path=("init", op),
                            code="bad_init")
        classes = sorted(module_classes[op])
        isinst = classes[0] if len(classes) == 1 else "(" + ", ".join(classes) + ")"
        body = []
        for t, init in rules.items():
            if t not in TENSORS:
                raise SpecError(f"init sets weight and bias, not '{t}'", mark=_mark(rules, t),
                                path=("init", op, t), code="bad_init")
            call = _call(init, f"m.{t}", rules, t, ("init", op, t), net.env)
            if t == "bias":
                body += ["if m.bias is not None:", f"    {call}"]
            else:
                body.append(call)
        kw = "if" if not branches else "elif"
        branches.append(f"{kw} isinstance(m, {isinst}):")
        branches += [f"    {b}" for b in body]
    if branches:
        lines.append("for m in self.modules():")
        lines += [f"    {b}" for b in branches]
    layers = spec.get("layers") or {}
    for lname, rules in layers.items():
        if not isinstance(rules, dict):
            raise SpecError("a layer's init is {weight: ..., bias: ...}", mark=_mark(layers, lname),
                            path=("init", "layers", lname), code="bad_init")
        if known is not None and str(lname) not in known:
            import difflib
            close = difflib.get_close_matches(str(lname), sorted(known), n=1)
            raise SpecError(f"init names the layer '{lname}', which has no weights in this network",
                            mark=layers_mark(layers, lname), path=("init", "layers", lname),
                            code="bad_init", hint=f"did you mean '{close[0]}'?" if close else None)
        for t, init in rules.items():
            if t not in TENSORS:
                raise SpecError(f"init sets weight and bias, not '{t}'", mark=_mark(rules, t),
                                path=("init", "layers", lname, t), code="bad_init")
            target = f"self.get_submodule({str(lname)!r}).{t}"
            lines.append(_call(init, target, rules, t, ("init", "layers", lname, t), net.env))
    return lines
