"""The cost of one training step, before training: FLOPs, saved activations, memory.

Read from the op registry (each op's ``train`` rule, :class:`~archspec.ops.registry.TrainCost`),
for a batch size, a precision (``fp32``, or ``bf16-mixed``: ``torch.autocast(device,
dtype=torch.bfloat16)`` around forward and loss, as the emitted training scripts run it) and an
optimizer. No torch: the numbers are computed from the graph. docs/training-cost.md defines them,
describes the memory model and its accuracy.

* ``flops_fwd`` / ``flops_bwd``: what ``torch.utils.flop_counter.FlopCounterMode`` counts for the
  forward and the backward pass of one step (conv, matmul and attention kernels; SDPA counted as
  torch counts its fused CUDA kernels). The first layer computes no input gradient.
* ``saved_bytes``: the bytes of the unique storages autograd keeps for the backward pass in one
  train-mode forward (``saved_tensors_hooks``), parameters excluded, buffers and the input batch
  included. Views and in-place ops share their input's storage (the analysis follows them).
* ``params_bytes``, ``grad_bytes``, ``optimizer_bytes``: fp32 master weights, their gradients and
  the optimizer's state (SGD with momentum 1 buffer, Adam/AdamW 2, RMSprop 1 (+1 with momentum, +1
  centered)).
* ``peak_bytes``: the estimate of ``torch.cuda.max_memory_allocated`` over one eager step of the
  emitted training script (blocks rounded to 512 bytes as the CUDA caching allocator does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..ir import Graph
from ..ops import REGISTRY, numel
from ..ops.registry import DTYPE_BYTES, TrainContext, TrainCost

__all__ = ["PRECISIONS", "OPTIMIZERS", "LayerTrain", "TrainStats", "train_cost", "optimizer_of",
           "parse_bytes", "max_batch", "network_train", "DEFAULT_CUDA_CONTEXT", "BLOCK",
           "CUBLAS_WORKSPACE", "GEMM_FAMILIES"]

PRECISIONS = ("fp32", "bf16-mixed")
OPTIMIZERS = ("sgd", "sgd-momentum", "adam", "adamw", "rmsprop", "none")

#: the CUDA caching allocator rounds every block up to a multiple of 512 bytes
BLOCK = 512
#: what the CUDA context, cuDNN handles and the allocator's slack take besides the tensors (the
#: cuBLAS workspaces are in peak_bytes),
#: assumed by --memory (configurable with --cuda-context)
DEFAULT_CUDA_CONTEXT = 1 << 30  # 1 GiB
#: torch's default cuBLAS workspace on Hopper and later (sm90+: 4096 KiB x 8 = 32 MiB; older GPUs
#: 4096 KiB x 2 + 16 KiB x 8), aten/src/ATen/cuda/CublasHandlePool.cpp; torch allocates it through
#: the caching allocator, once per (cuBLAS handle, stream), and keeps it: it counts in
#: max_memory_allocated. ``torch.backends.cuda.cublas_workspace_size()`` reports it.
CUBLAS_WORKSPACE = 4096 * 8 * 1024
#: the op families whose CUDA kernels are cuBLAS GEMMs (linear layers, attention's matmuls)
GEMM_FAMILIES = frozenset({"linear", "attention"})


def _round(n: int) -> int:
    return -(-n // BLOCK) * BLOCK if n > 0 else 0


@dataclass
class LayerTrain:
    """One layer's cost in a training step at the batch size."""

    name: str
    op: str
    flops_fwd: int
    flops_bwd: int
    saved_bytes: int  # the storages this layer is the first to save
    output_bytes: int  # 0 for a view / an in-place op
    aux: str | None = None


@dataclass
class TrainStats:
    """A network's training step: the settings, the totals and the layers."""

    batch: int
    precision: str
    optimizer: str
    device: str
    flops_fwd: int
    flops_bwd: int
    saved_bytes: int
    params_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    input_bytes: int
    peak_bytes: int
    peak_at: str  # where the peak is reached: "forward", "backward: LAYER" or "optimizer step"
    layers: list[LayerTrain] = field(default_factory=list)
    #: the memory at every instant the model looks at, in an order that does not depend on the
    #: batch: each is affine in the batch (up to the 512-byte rounding), which max_batch uses
    trace: list[int] = field(default_factory=list, repr=False)

    def as_dict(self, per_layer: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "batch": self.batch, "precision": self.precision, "optimizer": self.optimizer,
            "flops_fwd": self.flops_fwd, "flops_bwd": self.flops_bwd, "saved_bytes": self.saved_bytes,
            "params_bytes": self.params_bytes, "grad_bytes": self.grad_bytes,
            "optimizer_bytes": self.optimizer_bytes, "peak_bytes": self.peak_bytes,
        }
        if per_layer:
            out["layers"] = [{"name": r.name, "op": r.op, "flops_fwd": r.flops_fwd, "flops_bwd": r.flops_bwd,
                              "saved_bytes": r.saved_bytes, **({"aux": r.aux} if r.aux else {})}
                             for r in self.layers]
        return out


def optimizer_of(recipe: Any) -> str:
    """The optimizer of a spec's ``train:`` recipe, as ``--optimizer`` names it."""
    if recipe is None:
        return "sgd-momentum"  # the generic recipe: SGD, momentum 0.9
    opt = recipe.optimizer
    if opt == "sgd":
        return "sgd-momentum" if recipe.momentum > 0 else "sgd"
    if opt == "sdlm":
        return "rmsprop"  # one state tensor per parameter (h_kk) and no momentum: counted as RMSprop's
    return opt


def _state_tensors(optimizer: str, recipe: Any) -> int:
    """Optimizer state tensors per parameter tensor, each the parameter's size."""
    if optimizer in ("adam", "adamw"):
        return 2
    if optimizer == "sgd-momentum":
        return 1
    if optimizer == "rmsprop":
        if recipe is not None and recipe.optimizer == "sdlm":
            return 1
        momentum = recipe.momentum if recipe is not None and recipe.optimizer == "rmsprop" else 0.0
        return 1 + (momentum > 0)
    return 0


class TrainRuleError(Exception):
    """An op has no training-cost rule."""


def network_train(graph: Graph, stats: Any, recipe: Any = None, *, batch: int = 1, precision: str = "fp32",
                  optimizer: str | None = None, device: str = "cuda", workspace: int = 0,
                  cublas_workspace: int = CUBLAS_WORKSPACE) -> TrainStats:
    """:func:`train_cost` of a lowered network and its :class:`~archspec.analysis.stats.NetStats`;
    the optimizer defaults to the recipe's (``train:``)."""
    layer_params = {ls.name: ls.params for ls in stats.layers}
    # each layer's parameter tensors, for the allocator's rounding: the weights and the biases/shifts
    tensors = {ls.name: [n for n in (ls.weights, ls.params - ls.weights) if n] for ls in stats.layers if ls.params}
    return train_cost(graph, layer_params, batch=batch, precision=precision,
                      optimizer=optimizer or optimizer_of(recipe), recipe=recipe, device=device,
                      param_tensors=tensors, workspace=workspace, cublas_workspace=cublas_workspace)


def train_cost(graph: Graph, layer_params: dict[str, int], *, batch: int = 1, precision: str = "fp32",
               optimizer: str = "sgd-momentum", recipe: Any = None, device: str = "cuda",
               param_tensors: dict[str, list[int]] | None = None,
               workspace: int = 0, cublas_workspace: int = CUBLAS_WORKSPACE) -> TrainStats:
    """The training step of ``graph`` (every node, the training-only ones included: a training step
    runs them). ``layer_params``: each node's parameter count (:class:`~archspec.analysis.stats.LayerStats`).
    ``param_tensors``: each node's parameter tensors' sizes (for the 512-byte rounding; default: one
    tensor per node). ``cublas_workspace``: the size of one cuBLAS workspace (CUDA only; see
    :data:`CUBLAS_WORKSPACE`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    amp = precision == "bf16-mixed"
    owner = {nid: a.name for a in graph.aux.values() for nid in a.nodes}
    nodes = list(graph.nodes())
    # storages: id -> bytes; each node's output tensor: (storage, dtype, requires grad, bytes)
    storage: dict[str, int] = {}
    tensor: dict[str, tuple[str, str, bool, int]] = {}
    saved_by: dict[str, list[int]] = {}  # storage -> indices of the nodes that save it
    first_saver: dict[str, int] = {}
    layers: list[LayerTrain] = []
    costs: list[TrainCost] = []
    amp_cache = 0  # autocast's bf16 copies of the weights: held until the autocast context exits
    for i, node in enumerate(nodes):
        opdef = REGISTRY[node.op]
        if opdef.train is None:
            raise TrainRuleError(f"op '{node.op}' declares no training cost (OpDef.train)")
        if node.op == "input":
            sid = node.id
            nbytes = batch * numel(node.shape) * 4
            storage[sid] = nbytes
            tensor[node.id] = (sid, "f32", False, nbytes)
            costs.append(TrainCost("f32"))
            layers.append(LayerTrain(node.id, node.op, 0, 0, 0, nbytes, owner.get(node.id)))
            continue
        ins = [tensor[x] for x in node.inputs]
        ctx = TrainContext(batch=batch, in_dtypes=tuple(t[1] for t in ins), in_grad=tuple(t[2] for t in ins),
                           amp=amp, device=device)
        cost = opdef.train(node.attrs, node.in_shapes, node.shape, ctx)
        costs.append(cost)
        has_params = layer_params.get(node.id, 0) > 0
        req = any(ctx.in_grad) or has_params
        if cost.alias is not None:
            sid = ins[cost.alias][0]
            out_bytes = 0
        else:
            sid = node.id
            out_bytes = batch * numel(node.shape) * DTYPE_BYTES[cost.out_dtype]
            storage[sid] = out_bytes
        tensor[node.id] = (sid, cost.out_dtype, req, out_bytes)
        if amp and "weighted" in opdef.tags:
            amp_cache += 2 * layer_params.get(node.id, 0)
        own = 0
        # nothing upstream requires grad (a pool on the input): autograd records nothing, saves nothing
        for j, s in enumerate(cost.saves if req else ()):
            if s.kind == "in":
                key = ins[s.index][0]
            elif s.kind == "out":
                key = sid
            elif s.kind == "cast":
                if ctx.in_dtypes[s.index] == s.dtype:
                    key = ins[s.index][0]
                else:
                    key = f"{node.id}#{j}"
                    storage[key] = batch * numel(node.in_shapes[s.index]) * DTYPE_BYTES[s.dtype]
            elif s.kind == "weight":
                if not amp:
                    continue  # the parameter itself: not counted
                key = f"{node.id}#{j}"
                storage[key] = s.numel * DTYPE_BYTES[s.dtype]
            elif s.kind in ("new", "buffer"):
                key = f"{node.id}#{j}"
                storage[key] = s.numel * DTYPE_BYTES[s.dtype]
            else:
                raise ValueError(f"op '{node.op}': unknown saved kind {s.kind!r}")
            saved_by.setdefault(key, []).append(i)
            if key not in first_saver:
                first_saver[key] = i
                own += storage[key]
        bwd = cost.bwd_weight + (cost.bwd_input if any(ctx.in_grad) else 0)
        if not req:
            bwd = 0  # nothing upstream needs a gradient: autograd records no backward
        layers.append(LayerTrain(node.id, node.op, cost.fwd, bwd, own, out_bytes, owner.get(node.id)))

    params = sum(layer_params.values())
    params_bytes = 4 * params
    n_state = _state_tensors(optimizer, recipe)
    optimizer_bytes = n_state * params_bytes
    saved_bytes = sum(storage[k] for k in first_saver)
    input_bytes = storage[nodes[0].id]

    # ---- peak: the caching allocator's view (every block rounded to 512 bytes)
    sizes = param_tensors or {nid: [n] for nid, n in layer_params.items() if n}
    p_round = sum(_round(4 * n) for ts in sizes.values() for n in ts)
    n_tensors = sum(len(ts) for ts in sizes.values())
    state_round = n_state * p_round
    if optimizer in ("adam", "adamw"):
        state_round += n_tensors * BLOCK  # fused Adam keeps each parameter's step count on the device
    # the batch and its labels; on CUDA the script makes a channels-last copy of an image batch
    base = p_round + state_round + _round(input_bytes) + _round(8 * batch)
    if device == "cuda" and len(graph.input_shape) == 3:
        base += _round(input_bytes)
    # cuBLAS workspaces: torch keeps one per (handle, stream), and handles are per thread: the
    # forward's GEMMs run on the script's thread, the backward's on autograd's device thread
    if device == "cuda" and any(REGISTRY[n.op].family in GEMM_FAMILIES for n in nodes):
        base += 2 * _round(cublas_workspace)
    outputs = [graph.output] + [a.output for a in graph.aux.values()]
    # cross-entropy in fp32: a copy of the logits (under autocast) and log_softmax's output (saved)
    loss_bytes = sum(_round(batch * numel(graph.node(o).shape) * 4) * (2 if amp else 1) for o in outputs)
    trace: list[tuple[str, int]] = []  # every instant the model looks at, in order

    # forward: an output lives until its last reader, or, saved, into the backward
    last_read: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for x in node.inputs:
            last_read[tensor[x][0]] = i
    for o in outputs:
        last_read[tensor[o][0]] = len(nodes)  # the outputs outlive the forward
    made: dict[int, list[str]] = {}  # buffers an op makes to save them (BN's statistics, masks, copies)
    for key, i in first_saver.items():
        if "#" in key:
            made.setdefault(i, []).append(key)
    alive: set[str] = set()
    live = 0
    for i, node in enumerate(nodes[1:], 1):
        for k in ([node.id] if tensor[node.id][0] == node.id else []) + made.get(i, []):
            if k not in alive:
                alive.add(k)
                live += _round(storage[k])
        trace.append(("forward", base + live))
        for x in {*node.inputs, node.id}:
            k = tensor[x][0]
            if k in alive and k not in first_saver and last_read.get(k, -1) <= i:
                alive.discard(k)
                live -= _round(storage[k])
    trace.append(("forward", base + live + _round(amp_cache) + loss_bytes))
    live += loss_bytes // (2 if amp else 1)  # log_softmax's output stays for the loss's backward

    # backward, in reverse order: each op's gradients, then what only its backward needed is freed
    free_after: dict[int, list[str]] = {}
    for k, users in saved_by.items():
        free_after.setdefault(min(users), []).append(k)
    gsize: dict[int, int] = {}  # gradient buffer -> bytes
    grad_of: dict[str, int] = {}  # node -> its output's pending gradient buffer
    refs: dict[int, int] = {}
    counter = [0]

    def new_grad(nbytes: int) -> int:
        counter[0] += 1
        gsize[counter[0]] = _round(nbytes)
        refs[counter[0]] = 0
        return counter[0]

    def hold(node_id: str, gid: int) -> None:
        grad_of[node_id] = gid
        refs[gid] += 1

    def drop(gid: int) -> None:
        refs[gid] -= 1
        if refs[gid] == 0:
            del gsize[gid], refs[gid]

    for o in outputs:
        sid, dt, req, nb = tensor[o]
        hold(o, new_grad(batch * numel(graph.node(o).shape) * DTYPE_BYTES[dt]))
    grad_params = 0
    for i in range(len(nodes) - 1, 0, -1):
        node = nodes[i]
        g_out = grad_of.pop(node.id, None)
        if g_out is None or not tensor[node.id][2]:
            if g_out is not None:
                drop(g_out)
            continue
        transient = 0
        for x in dict.fromkeys(node.inputs):
            sid, dt, req, nb = tensor[x]
            if not req:
                continue
            if costs[i].grad_view and x not in grad_of:
                hold(x, g_out)  # the same buffer (or a view of it)
            elif x in grad_of:
                transient += _round(batch * numel(graph.node(x).shape) * DTYPE_BYTES[dt])  # added in
            else:
                hold(x, new_grad(batch * numel(graph.node(x).shape) * DTYPE_BYTES[dt]))
        for n in sizes.get(node.id, []):
            grad_params += _round(4 * n)
        trace.append((f"backward: {node.id}", base + live + grad_params + sum(gsize.values()) + transient
                      + workspace))
        drop(g_out)
        for k in free_after.get(i, []):
            if k in alive:
                alive.discard(k)
                live -= _round(storage[k])
    # the optimizer step: parameters, gradients, state (+ foreach RMSprop's temporaries)
    if optimizer != "none":
        trace.append(("optimizer step", base + p_round + (2 * p_round if optimizer == "rmsprop" else 0)))
    peak_at, peak = max(trace, key=lambda t: t[1])
    return TrainStats(
        batch=batch, precision=precision, optimizer=optimizer, device=device,
        flops_fwd=sum(r.flops_fwd for r in layers), flops_bwd=sum(r.flops_bwd for r in layers),
        saved_bytes=saved_bytes, params_bytes=params_bytes, grad_bytes=params_bytes,
        optimizer_bytes=optimizer_bytes, input_bytes=input_bytes, peak_bytes=peak, peak_at=peak_at,
        layers=layers[1:], trace=[t[1] for t in trace])


_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(i?)([bB]?)\s*$")


def parse_bytes(text: str) -> int:
    """``80GiB`` -> 85899345920, ``40GB`` -> 40·10⁹, ``24000MiB``, ``512`` (bytes)."""
    m = _SIZE.match(text)
    if not m or (m.group(3) and not m.group(2)):
        raise ValueError(f"not a size: {text!r} (write e.g. 80GiB, 40GB, 24000MiB)")
    value, unit, binary = float(m.group(1)), m.group(2).upper(), bool(m.group(3))
    power = " KMGT".index(unit) if unit else 0
    return int(value * (1024 if binary else 1000) ** power)


def max_batch(step, budget: int, limit: int = 1 << 24) -> int:
    """The largest batch ``b`` whose peak, ``step(b)`` (a :class:`TrainStats` or a number of bytes),
    is within ``budget``; 0 if not even 1 fits. Every instant of the memory model is affine in the
    batch (up to the 512-byte rounding), so two evaluations give the answer to within a block; a
    few more confirm it (a bisection where they do not)."""
    def peak(b: int) -> tuple[int, list[int]]:
        r = step(b)
        return (r.peak_bytes, r.trace) if isinstance(r, TrainStats) else (r, [r])

    p1, t1 = peak(1)
    if p1 > budget:
        return 0
    p2, t2 = peak(2)
    if p2 > budget:
        return 1
    guess = limit
    for a1, a2 in zip(t1, t2):
        slope = a2 - a1
        if slope > 0:
            guess = min(guess, (budget - (a1 - slope)) // slope)
    guess = max(2, min(guess, limit))
    lo, hi = 2, limit + 1  # peak(lo) fits; peak(hi) does not (limit + 1: never evaluated)
    for b in (guess, guess + 1, guess - 1):  # the estimate and its neighbours settle it almost always
        if lo < b < hi:
            lo, hi = (b, hi) if peak(b)[0] <= budget else (lo, b)
    while hi - lo > 1:
        mid = (lo + hi) // 2 if hi <= limit else min(2 * lo, limit)
        if mid == lo:
            break
        lo, hi = (mid, hi) if peak(mid)[0] <= budget else (lo, mid)
    return lo
