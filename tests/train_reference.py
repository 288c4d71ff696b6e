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
  auxiliary heads in train mode), as the emitted training script computes it (the sum of the
  output for the example specs that end in a feature map).
* :func:`meta_flops` counts the same FLOPs on the meta device (no memory, no compute), with
  ``F.scaled_dot_product_attention`` dispatched to the CPU's fused kernel (the meta device would
  run the math path).

``bf16=True`` runs forward and loss under ``torch.autocast("cpu", dtype=torch.bfloat16)``, as the
training scripts do on their device.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import nullcontext
from unittest import mock

import torch
import torch.nn.functional as F
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["measure", "meta_flops", "CPU_SDPA_FLOPS"]

aten = torch.ops.aten


def _cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                       **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


#: the CPU fused attention kernels, counted with torch's formulas for the CUDA ones (FlopCounterMode
#: passes the shapes: it wraps a custom formula in shape_wrapper itself)
CPU_SDPA_FLOPS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward,
}


def _fused_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                enable_gqa=False):
    """F.scaled_dot_product_attention as the CPU dispatches it (its fused kernel), for the meta
    device, where it would run the math path (4 batched matmuls in the backward, not 5)."""
    if attn_mask is not None or enable_gqa:
        raise NotImplementedError("the zoo's attention has no mask")
    return aten._scaled_dot_product_flash_attention_for_cpu(query, key, value, dropout_p, is_causal,
                                                            scale=scale)[0]


def _loss(out, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over every output (a classifier's logits); the sum of a feature map (the
    example specs that end in one): either saves nothing the module's saved_bytes counts, and
    neither counts FLOPs."""
    return sum(F.cross_entropy(o.float(), y) if o.ndim == 2 else o.float().sum() for o in _outputs(out))


def meta_flops(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """flops_fwd and flops_bwd of one training step on the meta device (no memory, no compute),
    attention dispatched as on the CPU."""
    model.train()
    y = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    with mock.patch.object(F, "scaled_dot_product_attention", _fused_sdpa):
        with FlopCounterMode(display=False, custom_mapping=CPU_SDPA_FLOPS) as fwd:
            loss = _loss(model(x), y)
        with FlopCounterMode(display=False, custom_mapping=CPU_SDPA_FLOPS) as bwd:
            loss.backward()
    return {"flops_fwd": fwd.get_total_flops(), "flops_bwd": bwd.get_total_flops()}


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
                loss = _loss(out, y)
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
