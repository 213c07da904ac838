"""The epoch a run keeps: validation at every epoch end, and the best score so far by the selection metric.

``fit`` keeps the weights of the epoch with the best validation score (``TrainerConfig.selection_metric`` on the
validation rows ``val_max_samples`` names; the whole split by default), compared at every completed epoch end,
the first of equal scores kept. ``EpochSelection`` is that rule, once: ``fit`` keeps its weights with it, and the
DUS environment scores an episode with it, so an episode's return is the score a downstream ``fit`` of the same
run reports (``Trainer.fit(...).val[selection_metric]``), not the last epoch's.

At every epoch end it also hands the run's controller the validation context (each head's validation accuracy,
its train-validation gap, the run's score and how far below its best it is), which the observation's ``val_*``
features read (``mml_backbones.observation``). With ``TrainerConfig.validation_context = "decision"``
(``DUS-Family-v2``) ``EpochSelection.probe`` refreshes that context before every decision as well, without
touching the kept epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mml_backbones.methods import Predictions
from mml_backbones.methods.base import softmax
from mml_backbones.observation import ValidationContext

if TYPE_CHECKING:
    from mml_backbones.core import TrainingCore


def true_class_probability(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each row's softmax probability of its true class."""
    return softmax(logits.astype(np.float64))[np.arange(len(labels)), labels]


@dataclass
class EpochValidation:
    """One epoch end's validation.

    Attributes:
        epoch: the epoch that ended (1-based).
        iteration: the run's iteration then.
        predictions: the validation predictions.
        metrics: ``Trainer.metrics_of`` of them (fused accuracy, macro-F1, mAP, each head's accuracy, ...).
        selected: post-hoc settings the method chose on them (``Method.select_on_validation``).
        score: ``metrics[selection_metric]``.
        improved: the score beats every earlier epoch's (``fit`` keeps these weights).
    """

    epoch: int
    iteration: int
    predictions: Predictions
    metrics: dict[str, float]
    selected: dict[str, float]
    score: float
    improved: bool


@dataclass
class EpochSelection:
    """Validates a run at every epoch end and keeps the best score so far, as ``fit`` does.

    Call it at each epoch end of one run (``fit`` does; the environment holds one per run of its core) or
    register it as a one-run core's epoch callback (``trainer.epoch_callbacks.append(selection)``).
    ``kept_score`` is the validation score of the epoch ``fit`` would keep now (None before the first epoch end).

    Attributes:
        best_score: the best score over the completed epoch ends (-inf before the first).
        best_epoch: its epoch (0 before the first).
        last: the latest epoch end's validation (None before the first).
    """

    best_score: float = -math.inf
    best_epoch: int = 0
    last: EpochValidation | None = field(default=None, repr=False)

    def __call__(self, trainer: TrainingCore, run: int = 0, predictions: Predictions | None = None) -> EpochValidation:
        """Validate run ``run`` of ``trainer`` now (an epoch end), update the best score and the run's controller.

        ``predictions``: the run's validation predictions now, when the caller has them already (the environment
        predicts every run of its core in one pass); None predicts them here.
        """
        t = trainer
        pred, metrics, score = _validate(t, run, predictions)
        selected = t.runs[run].method.select_on_validation(pred)
        improved = score > self.best_score
        if improved:
            self.best_score, self.best_epoch = score, t.epoch
        self.last = EpochValidation(t.epoch, t.iteration, pred, metrics, selected, score, improved)
        t.runs[run].controller.record_validation(_context(t, run, pred, metrics, score, self.best_score))
        return self.last

    def probe(self, trainer: TrainingCore, run: int = 0, predictions: Predictions | None = None) -> ValidationContext:
        """Validate run ``run`` now (a decision point) for its observation only: the kept epoch does not change.

        ``TrainerConfig.validation_context = "decision"`` asks for this before every decision (``fit`` and the
        environment both do it), so the ``val_*`` features describe the run as it is, not as it was at the
        last epoch end. ``val_drop`` reads the kept epoch's score minus this one (0 before the first epoch end).
        """
        current = trainer.runs[run].controller.validation
        just_validated = self.last is not None and self.last.iteration == trainer.iteration
        if predictions is None and current is not None and just_validated:  # this decision's epoch end recorded it
            return current
        pred, metrics, score = _validate(trainer, run, predictions)
        context = _context(trainer, run, pred, metrics, score, self.best_score if self.best_epoch > 0 else score)
        trainer.runs[run].controller.record_validation(context)
        return context

    @property
    def kept_score(self) -> float | None:
        """The validation score of the epoch ``fit`` keeps so far (None before the first epoch end)."""
        return None if self.best_epoch == 0 else self.best_score

    def restore(self, best_score: float, best_epoch: int) -> None:
        """Continue from a resumed run's best epoch."""
        self.best_score, self.best_epoch = float(best_score), int(best_epoch)


def _validate(
    trainer: TrainingCore, run: int, predictions: Predictions | None
) -> tuple[Predictions, dict[str, float], float]:
    """Run ``run``'s validation predictions (``predictions`` if given), their metrics and its selection score."""
    r = trainer.runs[run]
    pred = predictions
    if pred is None:
        pred, _ = trainer.predict("val", max_samples=r.config.val_max_samples, run=run)
    metrics = trainer.metrics_of(pred, run=run)
    return pred, metrics, float(metrics[r.config.selection_metric])


def _context(
    trainer: TrainingCore, run: int, pred: Predictions, metrics: dict[str, float], score: float, best: float
) -> ValidationContext:
    """The validation context of run ``run`` from its validation predictions and metrics now."""
    r = trainer.runs[run]
    heads = r.modalities
    return ValidationContext(
        epoch=trainer.epoch,
        head_accuracy=np.array([metrics[f"acc/{m}"] for m in heads]),
        head_val_score=np.array([true_class_probability(pred.unimodal_logits[m], pred.labels).mean() for m in heads]),
        head_train_score=np.nan_to_num(r.controller.statistics.block_score, nan=0.0),
        score=score,
        best_score=best,
    )
