"""The reference run of the paired rewards, and the validation metrics both runs are scored with.

Both runs are scored by ``ScoredRun``: the validation metrics at each decision point plus ``selected``, the
validation score of the epoch ``fit`` would keep so far (the paired reward's quantity).

The reference is a second ``Trainer`` built from the agent's TrainerConfig and seed, so it starts from the same
initial weights and draws from the same shuffled index stream (common random numbers), and it is stepped with
the uniform equal-budget quantities (B for every modality) at every decision. Under the uniform action the two
runs are the same computation, so their metrics are equal to the last bit.

A reference trajectory depends only on the TrainerConfig (seed included), so finished trajectories are kept
(up to ``cache_size``, least recently used dropped): seeds replayed by evaluation, and every sampler scored on
one environment, train the reference once. The reference reads the training and validation splits only.
"""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np

from mml_backbones.config import to_dict
from mml_backbones.data.dataset import DatasetSplits
from mml_backbones.methods import Predictions
from mml_backbones.selection import EpochSelection
from mml_backbones.trainer import Trainer, TrainerConfig

Metrics = dict[str, float]


def validation_metrics(trainer: Trainer, max_samples: int | None, predictions: Predictions | None = None) -> Metrics:
    """Fused and per-head validation accuracies and the fused validation cross-entropy (``fused_loss``, nats)."""
    pred = predictions if predictions is not None else trainer.predict("val", max_samples=max_samples)[0]
    out = trainer.metrics_of(pred, accuracy_only=True)
    p = trainer.method.fused_scores(pred)[np.arange(len(pred.labels)), pred.labels]
    out["fused_loss"] = float(-np.mean(np.log(np.clip(p, 1e-12, None))))
    return out


class ScoredRun:
    """A run's validation metrics at each decision point, with ``selected``: the score of the epoch ``fit`` keeps.

    ``selected`` is the best validation score (``selection_metric``) over the completed epoch ends so far
    (``mml_backbones.selection.EpochSelection``, registered as the trainer's epoch callback); before the first
    epoch end it is the score at reset (the agent's and the reference's are equal then, so a paired difference
    is 0). At an epoch end that is also a decision point the epoch's validation pass serves both.
    """

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.selection = EpochSelection()
        trainer.epoch_callbacks.append(self.selection)
        self._initial: float | None = None

    def metrics(self) -> Metrics:
        """Validation metrics now, with ``selected`` (and ``selected_epoch``, 0 before the first epoch end)."""
        t, last = self.trainer, self.selection.last
        reuse = last is not None and last.iteration == t.iteration
        pred = last.predictions if reuse and last is not None else t.predict("val", t.config.val_max_samples)[0]
        out = validation_metrics(t, t.config.val_max_samples, pred)
        if self._initial is None:  # the first call, at reset
            metric = t.config.selection_metric
            self._initial = out[metric] if metric in out else float(t.metrics_of(pred)[metric])
        kept = self.selection.kept_score
        out["selected"] = self._initial if kept is None else kept
        out["selected_epoch"] = float(self.selection.best_epoch)
        return out


class ReferenceRun:
    """The uniform run beside the agent's: ``reset(config)``, then one ``step()`` per agent step.

    Args:
        splits: the environment's splits (the reference trains on the same data).
        cache_size: finished trajectories kept.
    """

    def __init__(self, splits: DatasetSplits, cache_size: int = 256) -> None:
        self.splits = splits
        self.cache_size = cache_size
        self._cache: OrderedDict[str, list[Metrics]] = OrderedDict()
        self._key: str | None = None
        self._trainer: Trainer | None = None
        self._scored: ScoredRun | None = None
        self._curve: list[Metrics] = []
        self._step = 0
        #: trajectories trained (cache misses), for tests and benchmarks
        self.runs_trained = 0

    def reset(self, config: TrainerConfig) -> Metrics:
        """Start the reference of the run ``config`` describes; returns its validation metrics at reset."""
        self._key = json.dumps(to_dict(config), sort_keys=True, default=str)
        self._step = 0
        if self._key in self._cache:
            self._cache.move_to_end(self._key)
            self._trainer, self._curve = None, self._cache[self._key]
        else:
            self._trainer = Trainer(config, splits=self.splits)
            self._scored = ScoredRun(self._trainer)
            self._curve = [self._scored.metrics()]
            self.runs_trained += 1
        return dict(self._curve[0])

    def step(self) -> Metrics:
        """Advance the reference by one decision interval with B for every modality; returns its metrics."""
        if self._key is None:
            raise RuntimeError("call reset() before step()")
        self._step += 1
        if self._trainer is not None and self._step >= len(self._curve):
            t = self._trainer
            t.run_iterations(t.config.decision_interval, dict.fromkeys(t.modalities, t.config.batch_size))
            self._curve.append(self._scored.metrics())
            if t.done:  # a whole trajectory: keep it
                self._cache[self._key] = self._curve
                self._cache.move_to_end(self._key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
                self._trainer, self._scored = None, None
        if self._step >= len(self._curve):
            raise RuntimeError("the reference run has ended; call reset()")
        return dict(self._curve[self._step])
