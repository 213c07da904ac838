"""The episodes of K environments on one training core: the step, reward and info path of every DUS environment.

``DUSEnv`` is this with K = 1 and the batched vector environment (``dus_env.batched``) with K members; both call
``begin`` and ``advance`` and nothing else trains, validates or rewards.

Members. Member k's episode is one training run (``config.trainer`` with member k's seed). With ``reference=True``
(the paired rewards) each member also has its reference run: the same TrainerConfig and seed, so the same initial
weights and the same shuffled index stream (common random numbers), stepped with the uniform equal-budget
quantities (B for every modality) at every decision. Under the uniform action the two runs are the same
computation, so their metrics are equal to the last bit. Agent runs and reference runs are members of one
``mml_backbones.trainer.Trainer`` (the run axis); a reference trajectory depends only on its TrainerConfig, so
finished ones are kept (up to ``cache_size``, least recently used dropped) and a replayed seed's reference is read
from the cache instead of trained again.

Vectorising. With ``vectorise=True`` the core trains its runs at once where it can (see ``mml_backbones.core``):
the batched environment's default. One environment runs them one by one, each exactly as a run alone, so its
numbers are those of separate Trainer runs to the last bit.

The kept epoch's score. Every run of the core (agents and uncached references) holds an
``mml_backbones.selection.EpochSelection``, the rule ``fit`` keeps its weights with: at every epoch end (an epoch
callback of the core, inside a step or at its end alike) the runs are validated in one pass and each keeps its best
score so far; the validation context of the observation's ``val_*`` features is recorded then too. Each member's
metrics carry ``selected``, that kept score (the score at reset before the first epoch end), and
``selected_epoch``; the ``*_selected_*`` rewards are built on them, so their return is what ``fit`` of the same run
reports. At an epoch end that is also a step end the epoch's validation pass serves both. With
``validation_context = "decision"`` the step's validation pass also refreshes each run's validation context
(``EpochSelection.probe``), as ``fit`` does before each decision.

The reference reads the training and validation splits only; so does everything here.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

import numpy as np

from dus_env.config import DUSEnvConfig
from dus_env.rewards import compute_reward
from mml_backbones.config import to_dict
from mml_backbones.data.dataset import DatasetSplits
from mml_backbones.methods import Predictions
from mml_backbones.quantities import Quantities
from mml_backbones.selection import EpochSelection
from mml_backbones.trainer import Trainer

Metrics = dict[str, float]


def validation_metrics(trainer: Trainer, max_samples: int | None, run: int = 0) -> Metrics:
    """Run ``run``'s fused and per-head validation accuracies and fused validation cross-entropy (``fused_loss``)."""
    pred, _ = trainer.predict("val", max_samples=max_samples, run=run)
    return _metrics(trainer, pred, run)


def _metrics(trainer: Trainer, pred: Predictions, run: int) -> Metrics:
    out = trainer.metrics_of(pred, accuracy_only=True, run=run)
    p = trainer.runs[run].method.fused_scores(pred)[np.arange(len(pred.labels)), pred.labels]
    out["fused_loss"] = float(-np.mean(np.log(np.clip(p, 1e-12, None))))
    return out


class Episodes:
    """K members' episodes on one training core (see the module docstring).

    Args:
        config: the environment's configuration.
        splits: the data (already restricted to the modalities).
        vectorise: let the core train the runs at once where it can.
        cache_size: finished reference trajectories kept.
    """

    def __init__(
        self, config: DUSEnvConfig, splits: DatasetSplits, vectorise: bool = False, cache_size: int = 256
    ) -> None:
        self.config = config
        self.splits = splits
        self.modalities = splits.modality_names
        self.mapper = config.action_mapper(len(self.modalities))
        self.vectorise = vectorise
        self.cache_size = cache_size
        self.trainer: Trainer | None = None
        self.seeds: list[int] = []
        #: reference trajectories trained (cache misses), for tests and benchmarks
        self.reference_runs_trained = 0
        self._cache: OrderedDict[str, list[Metrics]] = OrderedDict()
        self._val: list[Metrics] = []
        self._ref_val: list[Metrics] | None = None
        self._ref_keys: list[str] = []
        self._ref_curves: list[list[Metrics]] = []
        self._ref_run: list[int | None] = []  # member -> the core's run index of its reference (None: cached)
        self._step = 0
        self._selections: list[EpochSelection] = []  # per run of the core: the epoch fit would keep
        self._initial: list[float] = []  # per run of the core: the selection metric's score at reset
        self._epoch_predictions: tuple[int, list[Predictions]] | None = None  # (iteration, each run's) at an epoch end

    @property
    def num_members(self) -> int:
        """K, the members (agent runs)."""
        return len(self.seeds)

    @property
    def done(self) -> bool:
        """Whether the members' episodes have ended (they end together)."""
        return self.trainer is not None and self.trainer.done

    # ------------------------------------------------------------------------------------------- the path
    def begin(self, seeds: list[int]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Start one episode per seed; returns the (K, D) observations and the members' infos."""
        self.seeds = [int(s) for s in seeds]
        configs = [self.config.trainer_config(s) for s in self.seeds]
        runs = list(configs)
        self._ref_keys, self._ref_curves, self._ref_run = [], [], []
        if self.config.reference:
            for c in configs:
                key = json.dumps(to_dict(c), sort_keys=True, default=str)
                self._ref_keys.append(key)
                if key in self._cache:
                    self._cache.move_to_end(key)
                    self._ref_curves.append(self._cache[key])
                    self._ref_run.append(None)
                else:
                    self._ref_curves.append([])
                    self._ref_run.append(len(runs))
                    runs.append(c)
                    self.reference_runs_trained += 1
        self.trainer = Trainer(runs, splits=self.splits, vectorise=self.vectorise)
        self._selections = [EpochSelection() for _ in runs]
        self._initial, self._epoch_predictions = [], None
        self.trainer.epoch_callbacks.append(self._on_epoch_end)
        self._step = 0
        self._validate()
        return self._observations(), self._infos(None, None)

    def advance(self, quantities: list[Quantities]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Train every member's next decision interval with its quantities; (obs, rewards, terminated, infos)."""
        t = self._running()
        if len(quantities) != self.num_members:
            raise ValueError(f"expected {self.num_members} actions (one per environment), got {len(quantities)}")
        b = self.config.trainer.batch_size
        uniform = dict.fromkeys(self.modalities, b)
        references = [uniform for run in self._ref_run if run is not None]
        q = t.decide_each([*quantities, *references])[: self.num_members]
        t.run_iterations(t.decision_left)
        self._step += 1
        before, ref_before = self._val, self._ref_val
        self._validate()
        c = self.config
        terminal = t.done
        rewards = np.array(
            [
                compute_reward(
                    c.reward,
                    self._val[k],
                    before[k],
                    t.runs[k].controller.observation().ratio,
                    terminal,
                    c.reward_scale,
                    c.balance_weight,
                    None if self._ref_val is None else self._ref_val[k],
                    None if ref_before is None else ref_before[k],
                )
                for k in range(self.num_members)
            ]
        )
        if terminal:
            self._keep_references()
        losses = [t.runs[k].pop_losses() for k in range(self.num_members)]
        return self._observations(), rewards, np.full(self.num_members, terminal), self._infos(q, losses)

    def action_to_quantities(self, action: Any) -> dict[str, int]:
        """The quantities an action gives (see ``dus_env.actions``)."""
        n = self.mapper.action_to_quantities(action, self.config.trainer.batch_size)
        return dict(zip(self.modalities, (int(k) for k in n)))

    # ------------------------------------------------------------------------------------------- internals
    def _running(self) -> Trainer:
        if self.trainer is None:
            raise RuntimeError("call reset() before step()")
        if self.trainer.done:
            raise RuntimeError("the episode has ended; call reset()")
        return self.trainer

    def _on_epoch_end(self, core: Trainer) -> None:
        """Every run's epoch-end validation (one pass): its kept score and its observation's validation context."""
        predictions = core.predict_each("val", self.config.trainer.val_max_samples)
        for k, (selection, pred) in enumerate(zip(self._selections, predictions)):
            selection(core, run=k, predictions=pred)
        self._epoch_predictions = (core.iteration, predictions)

    def _validate(self) -> None:
        """The members' validation metrics, and their references' (trained now or read from the cache)."""
        t = self.trainer
        assert t is not None
        cached = self._epoch_predictions
        if cached is not None and cached[0] == t.iteration:  # a step that ends an epoch: its pass serves both
            predictions = cached[1]
        else:
            predictions = t.predict_each("val", self.config.trainer.val_max_samples)
        metrics = [_metrics(t, pred, k) for k, pred in enumerate(predictions)]
        if self.config.trainer.validation_context == "decision":  # what fit's probe before a decision sees
            for k, (selection, pred) in enumerate(zip(self._selections, predictions)):
                selection.probe(t, run=k, predictions=pred)
        if not self._initial:  # at reset: the score each kept score starts from
            name = self.config.trainer.selection_metric
            self._initial = [
                m[name] if name in m else float(t.metrics_of(pred, run=k)[name])
                for k, (m, pred) in enumerate(zip(metrics, predictions))
            ]
        for m, selection, initial in zip(metrics, self._selections, self._initial):
            kept = selection.kept_score
            m["selected"] = initial if kept is None else kept
            m["selected_epoch"] = float(selection.best_epoch)
        self._val = metrics[: self.num_members]
        if not self.config.reference:
            self._ref_val = None
            return
        ref_val = []
        for k, run in enumerate(self._ref_run):
            curve = self._ref_curves[k]
            if run is not None:
                curve.append(metrics[run])
            ref_val.append(dict(curve[self._step]))
        self._ref_val = ref_val

    def _keep_references(self) -> None:
        for key, curve, run in zip(self._ref_keys, self._ref_curves, self._ref_run):
            if run is None:
                continue
            self._cache[key] = curve
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _observations(self) -> np.ndarray:
        t = self.trainer
        assert t is not None
        features = self.config.trainer.observation_features
        return np.stack([t.runs[k].controller.observation().vector(features) for k in range(self.num_members)])

    def _infos(self, q: list[dict[str, int]] | None, losses: list[dict[str, float]] | None) -> list[dict[str, Any]]:
        """Each member's info: ``val/...``, ``reference/val/...``, quantities, statistics, counters, seed, losses."""
        t = self.trainer
        assert t is not None
        out = []
        for k in range(self.num_members):
            s = t.runs[k].controller.statistics
            info: dict[str, Any] = {f"val/{name}": v for name, v in self._val[k].items()}
            if self._ref_val is not None:
                info.update({f"reference/val/{name}": v for name, v in self._ref_val[k].items()})
            info.update(
                {
                    "quantities": None if q is None else q[k],
                    "samples": dict(zip(self.modalities, s.samples.tolist())),
                    "cumulative": dict(zip(self.modalities, s.cumulative.tolist())),
                    "last": dict(zip(self.modalities, s.last.tolist())),
                    "iteration": t.iteration,
                    "epoch": t.epoch,
                    "train_seed": self.seeds[k],
                }
            )
            if losses is not None:
                info["train_losses"] = losses[k]
            out.append(info)
        return out
