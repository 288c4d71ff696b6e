"""Layout ops: moving the channels of a map between first (C×H×W) and last (H×W×C).

Swin keeps its maps channels-last from the patch embedding to the head; ConvNeXt's block permutes
to channels-last around its LayerNorm and MLP. ``permute`` is the one op that changes a layout, and
the shape it returns remembers which one it is (:class:`~archspec.ops.registry.ChannelsLast`), so
that ``linear`` and ``layernorm`` read the channels of a channels-last map and ``conv`` or ``bn``
refuse one.
"""

from __future__ import annotations

from pydantic import Field

from .registry import (Attrs, ChannelsLast, Emit, Helper, OpDef, OpError, Shape, is_channels_last, register,
                       train_view)

__all__: list[str] = []  # the ops are reached through the registry


class PermuteAttrs(Attrs):
    """A permutation of the dimensions, batch included, as torch.permute writes it."""

    dims: list[int] = Field(description="the new order of the dimensions, the batch (0) first: [0, 2, 3, "
                                        "1] turns N×C×H×W into N×H×W×C, [0, 3, 1, 2] back")


PERMUTE = Helper("Permute", '''class Permute(nn.Module):
    """Permute the dimensions of a tensor (torchvision.ops.misc.Permute)."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: Tensor) -> Tensor:
        return torch.permute(x, self.dims)''')


def _permute_infer(a: PermuteAttrs, ins: list[Shape]) -> Shape:
    x = ins[0]
    rank = len(x) + 1  # with the batch
    dims = [int(d) for d in a.dims]
    if sorted(dims) != list(range(rank)):
        raise OpError(f"dims {dims} is not a permutation of the {rank} dimensions 0…{rank - 1} (the batch "
                      f"and the shape {list(x)})", attr="dims", code="shape_error",
                      hint="list every dimension once, the batch (0) included: [0, 2, 3, 1] for N×C×H×W "
                           "-> N×H×W×C")
    if dims[0] != 0:
        raise OpError(f"dims {dims} moves the batch dimension", attr="dims", code="shape_error",
                      hint="the batch stays first: dims starts with 0")
    out = tuple(x[d - 1] for d in dims[1:])
    if dims == list(range(rank)):
        return x
    if is_channels_last(x):
        if rank == 4 and dims == [0, 3, 1, 2]:
            return out  # H×W×C -> C×H×W
        if dims[-1] == rank - 1:
            return ChannelsLast(out)  # the channels stay last (MaxViT's window/grid swap)
    elif len(x) == 3 and dims == [0, 2, 3, 1]:
        return ChannelsLast(out)  # C×H×W -> H×W×C
    what = "channels-last map" if is_channels_last(x) else ("C×H×W map" if len(x) == 3 else "tensor")
    raise OpError(f"dims {dims} on the {what} {list(x)} gives a layout archspec does not track: it "
                  f"knows channels first (C×H×W), channels last (H×W×C) and token sequences (T×D)",
                  attr="dims", code="layout",
                  hint="[0, 2, 3, 1] turns C×H×W channels-last, [0, 3, 1, 2] turns it back; a "
                       "channels-last map may reorder its other axes while C stays last")


def _permute_emit(a: PermuteAttrs, ins: list[Shape], out: Shape) -> Emit:
    dims = ", ".join(str(d) for d in a.dims)
    return Emit(module=f"Permute([{dims}])", call=f"{{0}}.permute({dims})", helpers=(PERMUTE,))


register(OpDef(
    name="permute", attrs=PermuteAttrs, family="shape", positional=("dims",),
    doc="Permute the dimensions, the batch (0) included, as torch.permute (torchvision's Permute): "
        "[0, 2, 3, 1] turns a C×H×W map into a channels-last H×W×C one, whose last axis linear and "
        "layernorm then read (Swin, ConvNeXt's block); [0, 3, 1, 2] turns it back. A channels-last "
        "map may reorder its other axes while C stays last. Other layouts are an error. No "
        "parameters; MACs 0.",
    infer=_permute_infer, emit=_permute_emit, train=train_view,
))
