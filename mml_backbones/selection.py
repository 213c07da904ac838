"""The epoch a run keeps: validation at every epoch end, and the best score so far by the selection metric.

``fit`` keeps the weights of the epoch with the best validation score (``TrainerConfig.selection_metric`` on the
validation rows ``val_max_samples`` names; the whole split by default), compared at every completed epoch end,
the first of equal scores kept. ``EpochSelection`` is that rule, once: ``fit`` keeps its weights with it, and the
DUS environment scores an episode with it, so an episode's return is the score a downstream ``fit`` of the same
run reports (``Trainer.fit(...).val[selection_metric]``), not the last epoch's.

At every epoch end it also hands the run's controller the validation context (each head's validation accuracy,
its train-validation gap, the run's score and how far below its best it is), which the observation's ``val_*``
features read (``mml_backbones.observation``).
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
        t, r = trainer, trainer.runs[run]
        pred = predictions
        if pred is None:
            pred, _ = t.predict("val", max_samples=r.config.val_max_samples, run=run)
        selected = r.method.select_on_validation(pred)
        metrics = t.metrics_of(pred, run=run)
        score = float(metrics[r.config.selection_metric])
        improved = score > self.best_score
        if improved:
            self.best_score, self.best_epoch = score, t.epoch
        self.last = EpochValidation(t.epoch, t.iteration, pred, metrics, selected, score, improved)
        heads = r.modalities
        r.controller.record_validation(
            ValidationContext(
                epoch=t.epoch,
                head_accuracy=np.array([metrics[f"acc/{m}"] for m in heads]),
                head_val_score=np.array(
                    [true_class_probability(pred.unimodal_logits[m], pred.labels).mean() for m in heads]
                ),
                head_train_score=np.nan_to_num(r.controller.statistics.block_score, nan=0.0),
                score=score,
                best_score=self.best_score,
            )
        )
        return self.last

    @property
    def kept_score(self) -> float | None:
        """The validation score of the epoch ``fit`` keeps so far (None before the first epoch end)."""
        return None if self.best_epoch == 0 else self.best_score

    def restore(self, best_score: float, best_epoch: int) -> None:
        """Continue from a resumed run's best epoch."""
        self.best_score, self.best_epoch = float(best_score), int(best_epoch)
