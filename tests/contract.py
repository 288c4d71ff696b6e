"""The compiler's contract, checked on one spec: what validates, builds, imports, runs and agrees
with the IR (params, output shape, MACs), and rebuilds byte-identically; what does not validate
gives one error line with file:line:col. Used by tests/test_property.py, tests/test_robustness.py
and benchmarks/fuzz.py."""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from archspec.analysis import analyse
from archspec.codegen import render_specs, write_outputs
from archspec.errors import SpecError
from archspec.ir import lower
from archspec.load import load_networks

__all__ = ["Outcome", "Violation", "check_spec"]

ERROR_LINE = re.compile(r"^\S.*:\d+:\d+: error: .+")


class Violation(AssertionError):
    """The contract does not hold for a spec."""


@dataclass
class Outcome:
    kind: str            # 'ok' (built and agreed) or 'rejected' (a clean validate error)
    detail: str = ""


def _import(path: Path, tag: str):
    name = f"archspec_contract_{tag}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.pop(name, None)
    spec.loader.exec_module(mod)
    return mod


def check_spec(spec_file: Path, out_dir: Path, tag: str = "m") -> Outcome:
    """Validate ``spec_file``; if it validates, build it into ``out_dir`` and check the module."""
    try:
        nets = load_networks(str(spec_file))
        graphs = [lower(n) for n in nets]
        stats = [analyse(g, n.ref) for n, g in zip(nets, graphs)]
        outputs = render_specs([str(spec_file)], out_dir)  # what validate runs too
    except SpecError as e:
        line = e.format().splitlines()[0]
        if not ERROR_LINE.match(line) or e.mark is None or e.mark.line < 1:
            raise Violation(f"error without file:line:col: {line!r}")
        if e.code == "codegen":
            raise Violation(f"validate rejects for a code-generation reason: {line}")
        return Outcome("rejected", line)
    write_outputs(outputs)
    again = render_specs([str(spec_file)], out_dir)
    if [o.text for o in again] != [o.text for o in outputs]:
        raise Violation("a rebuild is not byte-identical")
    models = [o for o in outputs if o.kind == "model"]
    for k, (o, st, net) in enumerate(zip(models, stats, nets)):
        mod = _import(o.path, f"{tag}_{k}")
        try:
            model = mod.build().eval()
        except Exception as e:  # noqa: BLE001 - any failure of generated code is the finding
            raise Violation(f"{net.ref}: build() raised {type(e).__name__}: {e}") from None
        params = sum(p.numel() for p in model.parameters())
        if params != st.params_with_aux:
            raise Violation(f"{net.ref}: params {params} != IR {st.params_with_aux}")
        x = torch.randn((2, *net.input))
        try:
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                y = model(x)
        except Exception as e:  # noqa: BLE001
            raise Violation(f"{net.ref}: forward raised {type(e).__name__}: {e}") from None
        if tuple(y.shape[1:]) != tuple(st.output):
            raise Violation(f"{net.ref}: output {tuple(y.shape[1:])} != IR {tuple(st.output)}")
        # batch 2, FLOPs = 2 x MACs; shared_macs (Swin V2's position-bias MLP) are paid once per batch
        want = 2 * (st.macs - st.shared_macs) + st.shared_macs
        if counter.get_total_flops() != 2 * want:
            raise Violation(f"{net.ref}: FlopCounterMode/2 = {counter.get_total_flops() // 2} != "
                            f"2 x (IR MACs - shared) + shared = {want}")
        if st.aux:
            model.train()
            outs = model(x)
            if len(outs) != 1 + len(st.aux):
                raise Violation(f"{net.ref}: training mode returns {len(outs)} outputs")
    return Outcome("ok")


def lowering_error(spec_file: Path) -> str:
    """The formatted error that loading and lowering ``spec_file`` raise (the test fails if none)."""
    import pytest

    with pytest.raises(SpecError) as e:
        for net in load_networks(str(spec_file)):
            lower(net)
    return e.value.format()
