"""The spec document as pydantic models.

These models validate the *shape* of a spec file (which keys exist, their types). Layer expressions
(``network:``, block bodies, cells) are free-form by design and are checked during lowering, where
shapes are known; ``archspec schema`` still describes them for editors (see :mod:`.schema`).
"""

from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .train import TrainRecipe

__all__ = ["Paper", "BlockDef", "ExpectEntry", "SpecDoc", "METRICS", "COLUMN_KEYS", "LayerExpr"]

#: What ``expect:`` can state about a network or a named layer.
METRICS = ("params", "weights", "macs", "activations", "neurons", "output", "params_with_aux", "macs_with_aux")

#: Keys of a column that are not parameters.
COLUMN_KEYS = ("name", "title", "expect", "input", "num_classes", "train")
#: the largest input size (channels, height, width or a vector's length) a spec may give: the
#: generated training script writes per-channel lists, so this bounds its size too
MAX_INPUT_SIZE = 65_536


def check_input_shape(v: list[int]) -> None:
    """``input:`` is [C, H, W], [T, D] or [D] of positive sizes up to :data:`MAX_INPUT_SIZE`."""
    if not 1 <= len(v) <= 3:
        raise ValueError("input is [C, H, W] (or [D] for a vector)")
    if any(d <= 0 for d in v):
        raise ValueError("input sizes must be positive")
    if any(d > MAX_INPUT_SIZE for d in v):
        raise ValueError(f"input sizes are at most {MAX_INPUT_SIZE:,}")

LayerExpr = Any
"""A layer expression: an op or block name, a list (a sequence), a mapping of named layers, or a
call ``{op: attrs, name: ..., repeat: ..., when: ..., from: ...}``. See docs/spec.md."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Paper(_Model):
    """Where the network comes from."""

    authors: list[str] = Field(default_factory=list, description="family names, in order")
    year: Optional[int] = Field(None, description="publication year")
    title: Optional[str] = Field(None, description="the paper's title")
    arxiv: Optional[str] = Field(None, description="arXiv id, e.g. 1512.03385")
    venue: Optional[str] = Field(None, description="conference or journal")
    url: Optional[str] = Field(None, description="a link")
    table: Optional[str] = Field(None, description="the table or figure this spec mirrors")

    def cite(self) -> str:
        who = ", ".join(self.authors[:3]) + (" et al." if len(self.authors) > 3 else "")
        bits = [b for b in (who, str(self.year) if self.year else None) if b]
        where = f"arXiv:{self.arxiv}" if self.arxiv else (self.venue or self.url or "")
        return " ".join(bits) + (f", {where}" if where else "")


class BlockDef(_Model):
    """A reusable block: typed parameters and a body."""

    params: Union[dict[str, Any], list[str]] = Field(
        default_factory=dict,
        description="parameters: {name: type-or-default} (int, float, bool, str, list, or a default "
                    "value) or a list of names (required ints, in call order — a table row)")
    body: LayerExpr = Field(description="the block's layers")
    doc: Optional[str] = Field(None, description="a sentence on what the block is")
    sequential: bool = Field(
        False, description="the block is an nn.Sequential: its body (a list) is numbered 0, 1, ... "
                           "(torchvision's Conv2dNormActivation)")


class ExpectEntry(_Model):
    """One number the paper reports, and where."""

    value: Any = Field(description="as printed: 25_557_032, 3.8G, 138M, 650K, [1000]")
    source: Optional[str] = Field(None, description="paper and table, e.g. 'ResNet, Table 1'")
    tol: Optional[str] = Field(
        None, description="'exact', a percentage '1%' or an absolute amount '0.05G'; default: exact "
                          "for integers, else half a unit of the last printed digit")
    erratum: Optional[str] = Field(None, description="the printed number is a misprint: why")
    variant: Optional[str] = Field(
        None, description="the printed number counts a slightly different network: how")
    derived: Any = Field(None, description="with erratum/variant: the count archspec derives")


class SpecDoc(_Model):
    """A spec file."""

    name: str = Field(description="the network's (or the table's) name, e.g. resnet50")
    title: Optional[str] = Field(None, description="a human title")
    paper: Optional[Paper] = None
    notes: Optional[str] = Field(None, description="free text: deviations, conventions")
    input: Optional[list[int]] = Field(None, description="input shape [C, H, W]")
    num_classes: int = Field(1000, gt=0, description="classes of the classifier")
    include: list[str] = Field(default_factory=list,
                               description="files whose blocks and cells this file uses")
    extends: Optional[str] = Field(None, description="a spec this file builds on (its keys override)")
    column: Optional[str] = Field(None, description="with extends: the column of a table to build")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="network parameters and their defaults")
    blocks: dict[str, BlockDef] = Field(default_factory=dict, description="reusable blocks")
    cells: dict[str, LayerExpr] = Field(
        default_factory=dict,
        description="how the paper's table cells read: 'conv{k}-{out}': [...] (captured numbers "
                    "become parameters; the body is spliced where the cell is written)")
    network: LayerExpr = Field(None, description="the layers")
    columns: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="one network per column of the paper's table: parameter values, plus name, "
                    "title, input, num_classes, expect, train")
    init: Optional[dict[str, Any]] = Field(
        None, description="weight initialisation: {conv|linear|bn: {weight: INIT, bias: INIT}, "
                          "layers: {name: {weight: INIT, bias: INIT}}}; INIT is a number or "
                          "{normal: {std: 0.01}}, {kaiming_normal: {mode: fan_out, nonlinearity: relu}}, ...")
    expect: Optional[dict[str, Any]] = Field(
        None, description="the paper's numbers: params, weights, macs, activations, neurons, output, "
                          "layers: {name: {...}}, source")
    train: Optional[TrainRecipe] = Field(
        None, description="the paper's training recipe: the defaults of the emitted train_<name>.py "
                          "(see docs/spec.md, 'The train: section')")

    @field_validator("input")
    @classmethod
    def _check_input(cls, v: Optional[list[int]]) -> Optional[list[int]]:
        if v is not None:
            check_input_shape(v)
        return v
