"""The Method interface: one iteration's losses and gradient changes, given the paired and unimodal batches.

The Trainer owns the loop: it draws the batch, zeroes the gradients, calls ``Method.train_step`` and steps the
optimiser. A method is its config plus a few hooks that default to no-ops:

    forward(batch)            the model call (default: all modalities, fused on the paired prefix)
    losses(output, batch)     named loss terms; their sum is back-propagated
    after_backward(o, b)      gradient modification before the optimiser step (OGM-GE, MIE)
    on_epoch_end(epoch)       per-epoch bookkeeping
    fused_scores(pred)        class scores used for the fused metrics (default: softmax of the fusion head)
    extra_metrics(pred, s)    further metrics (per-language scores, ...) added to every evaluation
    select_on_validation(p)   choose post-hoc settings (ensemble weights) on validation predictions

Methods that need more than one forward pass per iteration (sharpness-aware ones) override ``train_step``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from mml_backbones.controller import unimodal_cross_entropy
from mml_backbones.data.dataset import MultimodalDataset
from mml_backbones.models.model import ModelOutput, MultimodalModel


@dataclass
class IterationBatch:
    """One iteration's data under nested-prefix sampling.

    Attributes:
        inputs: modality -> its first n_m samples of the drawn chunk.
        labels: labels of the whole chunk (max_m n_m samples); modality m's are the first n_m.
        quantities: n_m per modality.
        n_paired: min_m n_m, the prefix every modality has (the fusion loss's batch).
        nominal_batch_size: B, the normaliser of the unimodal losses.
        epoch: completed epochs before this iteration.
        iteration: iterations done before this one.
        row_weights: in a vectorised step (``core.TrainingCore``), per modality 1 on the run's own rows and 0 on
            the padding that makes every run's batch the same size (``quantities`` are then the padded sizes);
            None for one run's own batch.
        paired_weights: in a vectorised step, 1 / (the run's paired prefix) on its paired rows, 0 on padding.
    """

    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor
    quantities: dict[str, int]
    n_paired: int
    nominal_batch_size: int
    epoch: int = 0
    iteration: int = 0
    row_weights: dict[str, torch.Tensor] | None = None
    paired_weights: torch.Tensor | None = None

    def labels_of(self, modality: str) -> torch.Tensor:
        """Labels of modality ``modality``'s samples."""
        return self.labels[: self.quantities[modality]]

    @property
    def paired_labels(self) -> torch.Tensor:
        """Labels of the paired prefix."""
        return self.labels[: self.n_paired]


@dataclass
class StepResult:
    """What a training step reports back.

    Attributes:
        losses: named loss terms (floats) for logging.
        output: the forward output whose unimodal logits feed the DUS statistics.
        extras: other scalars worth logging (coefficients, norms).
    """

    losses: dict[str, float]
    output: ModelOutput
    extras: dict[str, float] = field(default_factory=dict)


@dataclass
class Predictions:
    """A model's outputs on a whole split.

    Attributes:
        labels: (N,) true labels.
        fused_logits: (N, K).
        unimodal_logits: modality -> (N, K).
        meta: the split's per-sample metadata.
    """

    labels: np.ndarray
    fused_logits: np.ndarray
    unimodal_logits: dict[str, np.ndarray]
    meta: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class MethodContext:
    """What a method may know about its run besides the model.

    Attributes:
        modalities: modality names in order.
        num_classes: number of classes.
        nominal_batch_size: B.
        epochs: epochs in the schedule.
        iterations_per_epoch: iterations in one epoch.
        train_data: the training split (methods that gather statistics over it, such as MIE, read it).
        device: torch device of the model.
        seed: the run's seed.
        dus_losses: the DUS plug-in is on: a fusion-only method also trains each unimodal head, with its loss
            over the modality's n_m samples reaching the encoder (DESIGN.md "DUS is a plug-in").
    """

    modalities: tuple[str, ...]
    num_classes: int
    nominal_batch_size: int
    epochs: int
    iterations_per_epoch: int
    train_data: MultimodalDataset
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    dus_losses: bool = False


class Method:
    """Base training method: the fusion cross-entropy on the paired prefix, nothing else."""

    #: the config dataclass of the method, with its paper's defaults
    Config: ClassVar[type] = type(None)
    #: where the method and its defaults come from
    reference: ClassVar[str] = ""
    #: the fusion of the method's paper, used wherever a run's ModelConfig leaves the fusion unset (None: concat)
    recommended_fusion: ClassVar[str | None] = None
    #: the optimiser of the method's paper or released code (OptimConfig fields), used wherever a run's
    #: TrainerConfig leaves ``optim`` unset
    paper_optim: ClassVar[dict[str, Any]] = {"name": "sgd", "lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4}
    #: the method's step is its losses (no ``train_step`` or ``after_backward`` of its own) and they are written
    #: with the loss helpers below, so K runs can take it at once under ``torch.func.vmap`` (see ``core.py``)
    vectorizable: ClassVar[bool] = False

    def __init__(self, config: Any, model: MultimodalModel, context: MethodContext) -> None:
        self.config = config
        self.model = model
        self.context = context

    @property
    def fusion_only(self) -> bool:
        """Whether the method's only loss is the fusion loss (its unimodal heads are ``monitor/`` terms)."""
        return False

    @property
    def detach_unimodal(self) -> bool:
        """Whether the unimodal heads are monitors whose loss must not reach the encoders."""
        return self.fusion_only and not self.context.dus_losses

    def forward(self, batch: IterationBatch) -> ModelOutput:
        """Run the model on the batch (all modalities, fused on the paired prefix)."""
        return self.model(batch.inputs, n_paired=batch.n_paired, detach_unimodal=self.detach_unimodal)

    def losses(self, output: ModelOutput, batch: IterationBatch) -> dict[str, torch.Tensor]:
        """Named loss terms of one iteration; the Trainer back-propagates their sum."""
        return {"fused": fused_loss(output, batch)}

    def after_backward(self, output: ModelOutput, batch: IterationBatch) -> dict[str, float]:
        """Modify gradients in place before the optimiser step; return scalars to log."""
        return {}

    def loss_terms(self, output: ModelOutput, batch: IterationBatch) -> dict[str, torch.Tensor]:
        """``losses`` with the DUS plug-in applied: a fusion-only method's monitor terms become real ``dus/`` losses."""
        losses = self.losses(output, batch)
        if self.fusion_only and self.context.dus_losses:
            losses = {f"dus/{k[8:]}" if k.startswith("monitor/") else k: v for k, v in losses.items()}
        return losses

    def train_step(self, batch: IterationBatch) -> StepResult:
        """Forward, losses, backward, gradient modification (the optimiser step is the Trainer's)."""
        output = self.forward(batch)
        losses = self.loss_terms(output, batch)
        total = sum(losses.values())
        if isinstance(total, torch.Tensor) and total.requires_grad:
            total.backward()
        extras = self.after_backward(output, batch)
        return StepResult(
            {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in losses.items()},
            output,
            extras,
        )

    def on_epoch_end(self, epoch: int) -> None:
        """Called after every epoch (``epoch`` = epochs completed)."""

    def fused_scores(self, predictions: Predictions) -> np.ndarray:
        """Class probabilities used for the fused metrics."""
        return softmax(predictions.fused_logits)

    def extra_metrics(self, predictions: Predictions, scores: np.ndarray) -> dict[str, float]:
        """Further metrics of ``scores`` (the fused class scores) beyond the standard ones."""
        return {}

    def select_on_validation(self, predictions: Predictions) -> dict[str, float]:
        """Choose post-hoc settings on validation predictions; returns what was chosen."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Method state to checkpoint (besides the model's)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()``."""


def fused_loss(output: ModelOutput, batch: IterationBatch) -> torch.Tensor:
    """Cross-entropy of the fused logits on the paired prefix (zero when there is no paired sample)."""
    if output.fused_logits is None or batch.n_paired == 0:
        return torch.zeros((), device=batch.labels.device)
    if batch.paired_weights is not None:  # a padded run of a vectorised step: the mean over its own paired rows
        ce = F.cross_entropy(output.fused_logits, batch.paired_labels, reduction="none")
        return (ce * batch.paired_weights).sum()
    return F.cross_entropy(output.fused_logits, batch.paired_labels)


def unimodal_loss(output: ModelOutput, batch: IterationBatch, modality: str) -> torch.Tensor:
    """Modality ``modality``'s summed cross-entropy over its n_m samples, divided by the nominal batch size B."""
    logits = output.unimodal_logits[modality]
    if batch.row_weights is not None:  # a padded run of a vectorised step: its own n_m rows only
        ce = F.cross_entropy(logits, batch.labels_of(modality), reduction="none")
        return (ce * batch.row_weights[modality]).sum() / batch.nominal_batch_size
    return unimodal_cross_entropy(logits, batch.labels_of(modality), batch.nominal_batch_size)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a numpy array."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
