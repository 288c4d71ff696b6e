"""The ``train:`` section: the paper's training recipe, as validated data.

It becomes the defaults of the emitted training script ``train_<name>.py`` (every value can be
overridden there on the command line). A spec without ``train:`` gets :data:`GENERIC` — the
defaults of these models — so every network has a runnable script.

Units: ``lr`` is the base learning rate (the learning rate of the first epoch after warm-up);
schedules multiply it. Milestones count epochs unless ``unit: iterations``.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["TrainRecipe", "Schedule", "Augment", "Eval", "TRAIN_MODELS"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Schedule(_Model):
    """How the learning rate changes."""

    type: Literal["constant", "step", "multistep", "piecewise", "plateau", "cosine"] = Field(
        "cosine", description="constant; step (×gamma every step_size); multistep (×gamma at each "
                              "milestone); piecewise (lr values per span); plateau (×gamma when "
                              "validation loss stops improving); cosine (to min_lr at the end)")
    unit: Literal["epochs", "iterations"] = Field(
        "epochs", description="what step_size, milestones and piecewise spans count")
    step_size: Optional[float] = Field(None, gt=0, description="step: epochs (or iterations) per decay")
    milestones: list[float] = Field(default_factory=list,
                                    description="multistep: where to decay; a value below 1 is a "
                                                "fraction of the run (0.5 = half-way)")
    gamma: float = Field(0.1, gt=0, le=1, description="decay factor (0.1 = ÷10, 0.2 for WRN)")
    values: list[tuple[float, float]] = Field(
        default_factory=list,
        description="piecewise: [[span, lr], ...] — lr for the next span epochs (iterations); the "
                    "last value holds to the end. Scaled by --lr / train.lr when --lr is given")
    patience: int = Field(5, ge=0, description="plateau: epochs without improvement before a decay")
    monitor: Literal["val_loss", "train_top1"] = Field(
        "val_loss", description="plateau: what must stop improving — the validation loss, or the "
                                "training top-1 accuracy (NIN, §4.1: 'when the accuracy on the "
                                "training set stops improving')")
    max_decays: Optional[int] = Field(None, ge=0, description="plateau: decay at most this many times "
                                                              "(NIN: twice); none: no limit")
    min_lr: float = Field(0.0, ge=0, description="cosine: final lr; plateau: floor")

    @model_validator(mode="after")
    def _needs(self) -> "Schedule":
        if self.type == "step" and self.step_size is None:
            raise ValueError("a step schedule needs step_size")
        if self.type == "multistep" and not self.milestones:
            raise ValueError("a multistep schedule needs milestones")
        if self.type == "piecewise" and not self.values:
            raise ValueError("a piecewise schedule needs values: [[span, lr], ...]")
        return self


class Augment(_Model):
    """Training-time augmentation."""

    crop: Literal["none", "random", "random_resized", "scale_jitter"] = Field(
        "random_resized", description="none; random (a crop of the input size from images resized to "
                                      "resize, or padded by padding); random_resized (Inception-style "
                                      "area/aspect jitter); scale_jitter (shorter side uniform in scale, "
                                      "then a random crop — VGG)")
    resize: Optional[int] = Field(None, gt=0, description="random: shorter side before the crop (256)")
    padding: int = Field(0, ge=0, description="random: zero padding before the crop (4 for CIFAR)")
    scale: Optional[tuple[int, int]] = Field(None, description="scale_jitter: [min, max] shorter side")
    area: tuple[float, float] = Field((0.08, 1.0), description="random_resized: area fraction range")
    hflip: bool = Field(True, description="random horizontal flips")
    lighting: float = Field(0.0, ge=0, description="AlexNet's PCA lighting noise: std of the "
                                                    "eigen-colour coefficients (0.1); 0 = off")
    mean: Optional[list[float]] = Field(None, description="per-channel mean (of 0..1 pixels); "
                                                          "default: ImageNet's for 3 channels")
    std: Optional[list[float]] = Field(None, description="per-channel std; default: ImageNet's")


class Eval(_Model):
    """How validation images are presented."""

    crop: Literal["center", "ten_crop", "full"] = Field(
        "center", description="center (one centre crop); ten_crop (4 corners + centre, and their "
                              "flips; logits averaged — AlexNet/VGG); full (the resized image)")
    resize: Optional[int] = Field(None, gt=0, description="shorter side before the crop; default: "
                                                          "input size × 8/7 (256 for 224)")


class TrainRecipe(_Model):
    """The paper's training recipe (``train:``)."""

    source: Optional[str] = Field(None, description="where the recipe is stated, e.g. 'ResNet §3.4'")
    data: str = Field("synthetic", description="default --data: synthetic, digits, "
                                               "imagefolder:PATH or cifar10:PATH")
    optimizer: Literal["sgd", "adam", "adamw", "rmsprop", "sdlm"] = Field(
        "sgd", description="sgd; adam; adamw; rmsprop; sdlm (stochastic diagonal Levenberg-Marquardt, "
                           "LeCun et al. 1998, Appendix C: step lr / (mu + h_kk) per parameter)")
    lr: float = Field(0.1, gt=0, description="base learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    nesterov: bool = Field(False, description="SGD with Nesterov momentum")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam/AdamW betas")
    alpha: float = Field(0.99, gt=0, lt=1, description="RMSProp: smoothing (decay) of the squared gradients")
    mu: float = Field(0.02, gt=0, description="SDLM: the damping mu of the step lr / (mu + h_kk) "
                                              "(LeCun et al. 1998: 0.02)")
    hessian_samples: int = Field(500, gt=0, description="SDLM: patterns the diagonal Gauss-Newton "
                                                          "estimate h_kk is re-estimated on before "
                                                          "each epoch (LeCun et al. 1998: 500)")
    hessian: Literal["paper", "gauss-newton"] = Field(
        "paper", description="SDLM: how h_kk is estimated: paper (LeCun et al. 1998, Appendix C: "
                             "diagonal second derivatives back-propagated with the Gauss-Newton "
                             "rule; a network with a layer it does not cover falls back to "
                             "gauss-newton, and the script says so) or gauss-newton (the sampled "
                             "diagonal of the Gauss-Newton matrix itself)")
    eps: Optional[float] = Field(None, gt=0, description="Adam/AdamW/RMSProp epsilon (default: torch's)")
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(256, gt=0, description="global batch size (over all processes)")
    epochs: Optional[int] = Field(None, gt=0, description="epochs (default 90 unless iterations)")
    iterations: Optional[int] = Field(None, gt=0, description="instead of epochs: optimizer steps "
                                                                "(the run is rounded up to whole epochs)")
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up from lr/100 (in epochs)")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    grad_clip: Optional[float] = Field(None, gt=0, description="clip the global gradient norm")
    aux_loss_weights: Optional[dict[str, float]] = Field(
        None, description="weights of auxiliary classifiers' losses by name (GoogLeNet: 0.3); "
                          "default: the model module's AUX_LOSS_WEIGHTS")
    schedule: Schedule = Field(default_factory=Schedule)
    augment: Augment = Field(default_factory=Augment)
    eval: Eval = Field(default_factory=Eval)

    @model_validator(mode="after")
    def _length(self) -> "TrainRecipe":
        if self.epochs is not None and self.iterations is not None:
            raise ValueError("give epochs or iterations, not both")
        if self.epochs is None and self.iterations is None:
            self.epochs = 90
        return self


#: The models of the nested sections, by key path (for 'did you mean' hints).
TRAIN_MODELS = {(): TrainRecipe, ("schedule",): Schedule, ("augment",): Augment, ("eval",): Eval}
