"""The op registry: every op is declared once, in one :class:`OpDef`.

An ``OpDef`` carries everything the pipeline needs to know about an op, the way an ONNX op schema
does: its typed attributes (a pydantic model with defaults and docs), how many inputs it takes, its
shape rule, its parameter and MAC counts, the window it slides (for receptive fields) and how it is
emitted as PyTorch. Lowering, analysis and code generation read this entry and nothing else; they
never test ``if op == "conv"``.

Shapes are tuples without the batch dimension: ``(C, H, W)`` for feature maps, ``(N,)`` for vectors,
``(T, D)`` for token sequences. A map whose channels are the last axis (``(H, W, C)`` after a
``permute`` to channels-last, as Swin and ConvNeXt's blocks keep it; ``(G, P, C)`` windows of
tokens) is a :class:`ChannelsLast` shape: the same numbers, with the layout remembered, so that an op
that reads the channels reads the right axis and one that needs C×H×W says so.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Shape",
    "ChannelsLast",
    "is_channels_last",
    "like",
    "channel_axis",
    "OpError",
    "Counts",
    "Window",
    "Helper",
    "Emit",
    "OpDef",
    "TrainContext",
    "Saved",
    "TrainCost",
    "train_view",
    "train_slice",
    "train_new",
    "Attrs",
    "NoAttrs",
    "Pos",
    "NonNeg",
    "PosPair",
    "NonNegPair",
    "Prob",
    "REGISTRY",
    "register",
    "get_op",
    "op_names",
]

Shape = tuple[int, ...]

#: attribute types the ops share: a positive / non-negative int, a pair of them (``3`` or
#: ``[1, 7]``), a probability below 1
Pos = Annotated[int, Field(gt=0)]
NonNeg = Annotated[int, Field(ge=0)]
PosPair = Union[Pos, tuple[Pos, Pos]]
NonNegPair = Union[NonNeg, tuple[NonNeg, NonNeg]]
Prob = Annotated[float, Field(ge=0.0, lt=1.0)]


class ChannelsLast(tuple):
    """A shape of rank 3 or more whose last axis holds the channels: ``(H, W, C)`` of a map permuted
    to channels-last, ``(G, P, C)`` of windows of P tokens. It compares equal to the plain tuple of
    the same numbers; :func:`like` keeps the layout when a rule computes a new shape from it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"ChannelsLast({tuple.__repr__(self)})"


def is_channels_last(shape: Shape) -> bool:
    """Is ``shape`` a channels-last map (its channels the last axis, its rank 3 or more)?"""
    return isinstance(shape, ChannelsLast)


def like(shape: Shape, values: Sequence[int]) -> Shape:
    """``values`` as a shape of the same layout as ``shape``."""
    return ChannelsLast(values) if isinstance(shape, ChannelsLast) else tuple(values)


def channel_axis(shape: Shape) -> int:
    """The axis that holds the channels: C of a C×H×W map or a vector (0), D of T×D tokens and C
    of a channels-last map (the last)."""
    return len(shape) - 1 if isinstance(shape, ChannelsLast) or len(shape) == 2 else 0


class OpError(Exception):
    """A shape or attribute rule failed. ``attr`` names the attribute at fault, if one is."""

    def __init__(self, message: str, *, attr: str | None = None, hint: str | None = None,
                 code: str = "shape_error") -> None:
        super().__init__(message)
        self.message = message
        self.attr = attr
        self.hint = hint
        self.code = code


class Attrs(BaseModel):
    """Base of every op's attribute model: unknown keys are errors, values are immutable, and a float
    attribute is finite (`.nan`, `.inf` are errors: they would be emitted as bare `nan`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NoAttrs(Attrs):
    """No attributes."""


@dataclass(frozen=True)
class Counts:
    """What one node costs. ``weights`` are the parameters without biases (the seed notes' VGG table
    counts those); ``macs`` are multiply-accumulates of conv/linear/matmul for one image (a forward
    pass at batch 1). ``shared_macs`` is the part of ``macs`` that a forward pass pays once whatever
    the batch size (Swin V2's position-bias MLP, which reads no image): at batch B a forward pass
    costs B·(macs − shared_macs) + shared_macs."""

    params: int = 0
    weights: int = 0
    macs: int = 0
    shared_macs: int = 0


ZERO = Counts()


@dataclass(frozen=True)
class Window:
    """A sliding window over (H, W) for receptive-field analysis. ``global_`` ops see everything."""

    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    global_: bool = False


@dataclass(frozen=True)
class Helper:
    """A definition that generated code needs besides torch: a small module class or function
    (``class StochasticDepth(nn.Module): ...``), written once into each generated file that uses it,
    after the imports and before the network's classes.

    ``source`` defines ``name`` at the top level and may use ``torch``, ``nn`` and ``Tensor``. An
    op's emitted text calls it by ``name`` (``StochasticDepth(0.1, 'row')``); where a file already
    binds that name (a block's class, a parameter), the code generator gives the helper another one
    and renames it where ``source`` and the emitted text define or call it (``name(``).
    """

    name: str
    source: str


@dataclass(frozen=True)
class Emit:
    """How an op becomes PyTorch.

    ``module`` is a constructor expression (``nn.Conv2d(3, 64, kernel_size=3, padding=1)``) for ops
    that are modules; ``call`` is a forward expression over its inputs for functional ops, with
    ``{0}``, ``{1}`` ... for the inputs.

    An op that owns an attribute whose forward is not ``self.name(x)`` writes ``{self}`` (the
    attribute) in ``call``: a module called another way
    (``{self}({0}, {0}, {0}, need_weights=False)[0]``), or a learnable tensor that is not a module,
    whose ``param`` is its constructor (``nn.Parameter(torch.zeros(1, 1, 768))``) and whose ``call``
    uses it (``{0} + {self}``). The attribute is named after the layer, as modules are.

    ``helpers`` are the :class:`Helper` definitions the emitted text uses (``LayerNorm2d(96)``).
    """

    module: str | None = None
    call: str | None = None
    param: str | None = None
    helpers: tuple[Helper, ...] = ()

    @property
    def owns_attribute(self) -> bool:
        """Does ``call`` read an attribute of its own (a module or a parameter tensor)?"""
        return self.call is not None and "{self}" in self.call


#: bytes per element of the dtypes a training step holds
DTYPE_BYTES = {"f32": 4, "bf16": 2, "i64": 8, "bool": 1}


@dataclass(frozen=True)
class TrainContext:
    """What a training-cost rule is told about one application of its op in a training step.

    ``batch``: the batch size; ``in_dtypes``: each input's dtype (``"f32"`` or ``"bf16"``);
    ``in_grad``: whether each input requires grad (the network's input does not, so the first layer
    computes no input gradient); ``amp``: the forward runs under
    ``torch.autocast(device, dtype=torch.bfloat16)``; ``device``: ``"cuda"`` (what the CLI
    estimates) or ``"cpu"`` (what the CPU test measures: dropout and autocast differ there).
    """

    batch: int
    in_dtypes: tuple[str, ...]
    in_grad: tuple[bool, ...]
    amp: bool = False
    device: str = "cuda"

    @property
    def low(self) -> str:
        """The dtype of an autocast "lower precision" op (conv, linear, matmul): bf16 under amp."""
        return "bf16" if self.amp else self.in_dtypes[0]

    def wide(self, *dtypes: str) -> str:
        """Type promotion of an element-wise op: f32 if any operand is f32."""
        return "f32" if "f32" in (dtypes or self.in_dtypes) else "bf16"


@dataclass(frozen=True)
class Saved:
    """One tensor autograd keeps for the backward pass of an op.

    ``kind``: ``"in"`` input ``index`` as it is (its storage: a view saves its base's), ``"cast"``
    input ``index`` as ``dtype`` (the input itself when it has that dtype, else autocast's copy: a
    new storage), ``"out"`` the op's output, ``"new"`` a buffer of ``numel`` elements of ``dtype``
    that the op makes (BN's save_mean, max-pool's indices, dropout's mask, the copy that reshaping
    a non-contiguous input makes), ``"weight"`` a copy of ``numel`` parameter elements in ``dtype``
    (autocast's bf16 copy of a weight: nothing in fp32, where the parameter itself is saved),
    ``"buffer"`` a module buffer of ``numel`` elements (BN's running statistics: saved once).
    """

    kind: str
    index: int = 0
    numel: int = 0
    dtype: str = "f32"


@dataclass(frozen=True)
class TrainCost:
    """An op's cost in one training step at ``TrainContext.batch``.

    FLOPs as ``torch.utils.flop_counter.FlopCounterMode`` counts them: ``fwd``; ``bwd_input`` the
    backward's part that computes the inputs' gradients (skipped when no input requires grad, as
    autograd does for the first layer); ``bwd_weight`` the rest (weight gradients, and the internal
    gradients of a composite op). ``saves``: what autograd keeps. ``alias``: the output shares input
    ``alias``'s storage (a view, an in-place op). ``out_dtype``: the output's dtype.
    ``grad_view``: the backward hands the output's gradient (or views of it) to the inputs without
    allocating (a reshape, add, cat); else it allocates each input's gradient (the peak model).
    """

    out_dtype: str
    fwd: int = 0
    bwd_input: int = 0
    bwd_weight: int = 0
    saves: tuple[Saved, ...] = ()
    alias: int | None = None
    grad_view: bool = False


def train_view(a: Any, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
    """A view of its input (flatten, permute, identity): no FLOPs, nothing saved, the input's
    storage; its backward is a view of the gradient."""
    return TrainCost(ctx.in_dtypes[0], alias=0, grad_view=True)


def train_slice(a: Any, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
    """A part of its input (x[:, a:b], x[:, 0], x[..., ::2]): a view, nothing saved; its backward
    allocates the input's gradient (zeros around the part)."""
    return TrainCost(ctx.in_dtypes[0], alias=0)


def train_new(a: Any, ins: list[Shape], out: Shape, ctx: TrainContext) -> TrainCost:
    """A new tensor whose backward needs no tensor (padding, cat, a reshape that copies)."""
    return TrainCost(ctx.wide())


InferFn = Callable[[Any, list[Shape]], Shape]
CountFn = Callable[[Any, list[Shape], Shape], Counts]
WindowFn = Callable[[Any, list[Shape]], Window | None]
EmitFn = Callable[[Any, list[Shape], Shape], Emit]
ToolCountsFn = Callable[[Any, list[Shape], Shape], dict[str, int]]
TrainFn = Callable[[Any, list[Shape], Shape, TrainContext], TrainCost]


@dataclass(frozen=True)
class OpDef:
    """One op, declared once."""

    name: str
    attrs: type[Attrs]
    doc: str
    infer: InferFn
    emit: EmitFn
    count: CountFn = lambda a, i, o: ZERO
    window: WindowFn = lambda a, i: None
    inputs: tuple[int, int | None] = (1, 1)
    positional: tuple[str, ...] = ()
    internal: bool = False
    family: str = "other"
    tags: frozenset[str] = field(default_factory=frozenset)
    #: what other counters report for one application of the op, where archspec.analysis.conventions
    #: cannot derive it from what the op emits: ``{"fvcore": n, "ptflops": n, "thop": n}`` (any
    #: subset); None: derived (or reported as not modelled, never a silent zero)
    tool_counts: ToolCountsFn | None = None
    #: the op's cost in a training step (archspec.analysis.train); None: not declared (an error
    #: there, never a silent zero)
    train: TrainFn | None = None

    def check_arity(self, n: int) -> None:
        lo, hi = self.inputs
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise OpError(f"'{self.name}' takes {want} input(s), got {n}", code="arity")


REGISTRY: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    """Add ``op`` to the registry; a second op under the same name is an error."""
    if op.name in REGISTRY:
        raise ValueError(f"An op is already registered under the name '{op.name}'.")
    REGISTRY[op.name] = op
    return op


def op_names(*, public: bool = True) -> list[str]:
    return sorted(n for n, o in REGISTRY.items() if not (public and o.internal))


def get_op(name: str) -> OpDef:
    """The op called ``name``; a KeyError that suggests close names otherwise."""
    op = REGISTRY.get(name)
    if op is None or op.internal:
        close = difflib.get_close_matches(name, op_names(), n=3)
        raise KeyError(f"unknown op '{name}'" + (f"; did you mean {', '.join(close)}?" if close else ""))
    return op


def pair(v: int | Sequence[int]) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``[1, 7]`` -> ``(1, 7)``."""
    if isinstance(v, int):
        return (v, v)
    if is_symbolic(v):
        return v  # a pair parameter of a block (archspec.ir.sym.SymPair): keeps its name
    return (v[0], v[1])


def is_symbolic(v: object) -> bool:
    """A number that stands for an expression in generated code (see archspec.ir.sym)."""
    return hasattr(v, "expr")


def fmt_pair(v: tuple[int, int]) -> str:
    """Render a normalised pair the way PyTorch code is usually written: ``3`` or ``(1, 7)``."""
    if is_symbolic(v):
        return str(v)
    if v[0] == v[1] and str(v[0]) == str(v[1]):
        return str(v[0])
    return f"({v[0]}, {v[1]})"


def numel(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
