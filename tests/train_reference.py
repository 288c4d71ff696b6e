"""torch's own accounting of one training step, for tests/test_train_cost.py.

One train-mode forward of a generated module on CPU tensors, and its backward:

* ``flops_fwd`` / ``flops_bwd``: ``torch.utils.flop_counter.FlopCounterMode`` around the forward
  (and the loss) and around ``loss.backward()``. On CPU, ``F.scaled_dot_product_attention`` runs
  ``_scaled_dot_product_flash_attention_for_cpu``, which FlopCounterMode does not count; it is
  counted here with torch's own formulas for the fused kernels (``sdpa_flop`` and
  ``sdpa_backward_flop``, registered for the CUDA flash / efficient / cuDNN kernels), so the CPU
  count is the count of the CUDA training step (whose backward recomputes Q·Kᵀ: 5 batched matmuls
  against the math path's 4).
* ``saved_bytes``: the sum over unique storages (``untyped_storage().data_ptr()``, ``nbytes()``) of
  the tensors ``torch.autograd.graph.saved_tensors_hooks`` sees while the module's forward runs,
  the storages of parameters excluded (a weight's transposed view is the weight); buffers (BN
  running statistics) and the input batch count. The loss is outside: ``saved_bytes`` is the
  module's.
* The loss is ``F.cross_entropy(out.float(), y)`` over every output (GoogLeNet's and Inception's
  auxiliary heads in train mode), as the emitted training script computes it.

``bf16=True`` runs forward and loss under ``torch.autocast("cpu", dtype=torch.bfloat16)``, as the
training scripts do on their device.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["measure", "CPU_SDPA_FLOPS"]

aten = torch.ops.aten


def _cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                       **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


#: the CPU fused attention kernels, counted with torch's formulas for the CUDA ones
CPU_SDPA_FLOPS = {
    aten._scaled_dot_product_flash_attention_for_cpu: flop_counter.shape_wrapper(_cpu_sdpa),
    aten._scaled_dot_product_flash_attention_for_cpu_backward: flop_counter.shape_wrapper(_cpu_sdpa_backward),
}


def _outputs(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if hasattr(out, "_asdict"):
        out = tuple(out._asdict().values())
    return [t for t in out if isinstance(t, torch.Tensor)]


def measure(model: torch.nn.Module, x: torch.Tensor, *, bf16: bool = False,
            detail: bool = False) -> dict:
    """flops_fwd, flops_bwd, saved_bytes (and with ``detail``, per module: the saved storages
    first seen while that module ran)."""
    model.train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}
    where: dict[int, str] = {}
    current = [""]
    keep: list[torch.Tensor] = []

    def pack(t: torch.Tensor):
        s = t.untyped_storage()
        ptr = s.data_ptr()
        if ptr not in params and ptr not in seen:
            seen[ptr] = s.nbytes()
            where[ptr] = f"{current[0]} {tuple(t.shape)} {t.dtype}"
        keep.append(t)
        return t

    hooks = []
    if detail:
        for name, m in model.named_modules():
            if not list(m.children()):
                hooks.append(m.register_forward_pre_hook(lambda m_, a, name=name: current.__setitem__(0, name)))
    y = torch.zeros(x.shape[0], dtype=torch.long)
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    try:
        with FlopCounterMode(display=False, custom_mapping=CPU_SDPA_FLOPS) as fwd:
            with amp:
                with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                    out = model(x)
                loss = sum(F.cross_entropy(o.float(), y) for o in _outputs(out))
        with FlopCounterMode(display=False, custom_mapping=CPU_SDPA_FLOPS) as bwd:
            loss.backward()
    finally:
        for h in hooks:
            h.remove()
    result = {"flops_fwd": fwd.get_total_flops(), "flops_bwd": bwd.get_total_flops(),
              "saved_bytes": sum(seen.values())}
    if detail:
        per = defaultdict(list)
        for ptr, n in seen.items():
            per[where[ptr]].append(n)
        result["saved"] = dict(per)
    return result
