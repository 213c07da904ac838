"""The one training loop. Everything else (``fit``, the Gymnasium environment, the benchmarks) drives it.

Schedule. A run is ``epochs * iterations_per_epoch`` iterations; an epoch is ``ceil(N_train / B)`` iterations
by default whatever the quantities, so that the schedule, the learning-rate steps and the evaluations do not
depend on the sampler. Every ``decision_interval`` iterations a sampler (or the environment's action) sets the
quantities n_m.

Sampling (DESIGN.md). One shuffled stream of training indices, reshuffled whenever it runs out. Each iteration
draws the next ``max_m n_m`` indices; modality m takes the first n_m of them (nested prefixes), the fusion loss
uses the paired prefix of ``min_m n_m`` samples and each unimodal loss is normalised by B.

Statistics. After each iteration s_t(m), the batch mean of modality m's head softmax on the true class, updates
S_t(m) (see ``statistics.py``); the observation built from them is what samplers and the environment see.

Randomness. Each Trainer keeps its own torch RNG state and numpy generator and swaps them in around its work,
so trainers interleaved in one process (vector environments) give the same numbers as trainers run alone.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mml_backbones.config import to_dict
from mml_backbones.controller import DUSController, score_and_loss
from mml_backbones.data.dataset import DatasetSplits, MultimodalDataset
from mml_backbones.data.registry import load_dataset
from mml_backbones.data.stream import IndexStream
from mml_backbones.errors import ConfigError, DataError
from mml_backbones.fit import FitResult, fit, run_config
from mml_backbones.methods import MethodContext, Predictions, build_method
from mml_backbones.methods.base import IterationBatch
from mml_backbones.metrics import accuracy, linear_probe, macro_f1, mean_average_precision
from mml_backbones.models.model import build_model
from mml_backbones.observation import DiscrepancyObservation
from mml_backbones.optim import OptimConfig, build_optimizer, build_scheduler, param_groups, scale_learning_rates
from mml_backbones.quantities import Quantities
from mml_backbones.samplers import Sampler
from mml_backbones.statistics import ModalityStatistics
from mml_backbones.trainer_config import ScheduleProgress, TrainerConfig

__all__ = ["FitResult", "OptimConfig", "Trainer", "TrainerConfig"]

#: 3: plain data (tensors, numbers, strings, lists, dicts), read with weights_only=True; 2: numpy arrays inside
CHECKPOINT_FORMAT = 3
#: formats ``load_state_dict`` reads (2 through ``safe_files``' numpy re-constructors)
READABLE_FORMATS = (2, 3)


EpochCallback = Callable[["Trainer"], None]


class Trainer(ScheduleProgress):
    """Owns model, optimiser, data stream and the running statistics of one multimodal training run.

    Step-wise API: ``observation()``, ``run_decision(quantities)``, ``run_iterations(n, quantities)``,
    ``evaluate(splits)``, ``state_dict()``/``load_state_dict()``; ``fit(sampler)`` runs the whole schedule.
    """

    def __init__(self, config: TrainerConfig | None = None, splits: DatasetSplits | None = None) -> None:
        self.config = config = (config or TrainerConfig()).resolved()
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        self.device = torch.device(config.device)
        if splits is None:
            splits = load_dataset(config.dataset, **config.dataset_options)
        if config.modalities is not None:
            unknown = [m for m in config.modalities if m not in splits.modality_names]
            if unknown:
                raise DataError(f"unknown modality {unknown}; {config.dataset} has {list(splits.modality_names)}")
            splits = splits.select_modalities(config.modalities)
        self.splits = splits
        self.train_data = splits.train
        self.modalities = splits.modality_names
        n_train = len(self.train_data)
        self.iterations_per_epoch = config.iterations_per_epoch or math.ceil(n_train / config.batch_size)
        self.total_iterations = config.epochs * self.iterations_per_epoch
        self.max_quantity = config.max_quantity

        self._torch_rng = torch.Generator().manual_seed(config.seed).get_state()
        self._rng_active = False
        with self.rng():
            defaults = splits.info.get("encoder_defaults")
            self.model = build_model(config.model, self.train_data, defaults).to(self.device)
        context = MethodContext(
            modalities=self.modalities,
            num_classes=splits.num_classes,
            nominal_batch_size=config.batch_size,
            epochs=config.epochs,
            iterations_per_epoch=self.iterations_per_epoch,
            train_data=self.train_data,
            device=self.device,
            seed=config.seed,
            dus_losses=config.dus_losses,
        )
        self.method = build_method(config.method, config.method_options, self.model, context)
        self.optimizer = build_optimizer(param_groups(self.model, config.optim), config.optim)
        self.scheduler = build_scheduler(self.optimizer, config.optim, config.epochs)
        # the same controller a user's own loop uses: S_t(m), the quantities in force, the decision countdown
        self.controller = DUSController(
            self.modalities,
            batch_size=config.batch_size,
            decision_interval=config.decision_interval,
            total_iterations=self.total_iterations,
            statistics=config.statistics,
            max_quantity=self.max_quantity,
        )
        self.stream = IndexStream(n_train, np.random.default_rng([config.seed, 1]))
        self.iteration = 0
        self.epoch = 0
        self.epoch_callbacks: list[EpochCallback] = []
        self._loss_sums: dict[str, float] = {}
        self._loss_count = 0
        self._val_subset: dict[str, np.ndarray] = {}

    # ----------------------------------------------------------------------------------------------- set-up
    @contextlib.contextmanager
    def rng(self) -> Iterator[None]:
        """Run a block with this trainer's torch RNG state swapped in (and saved back afterwards)."""
        if self._rng_active:  # already swapped in
            yield
            return
        outer = torch.get_rng_state()
        torch.set_rng_state(self._torch_rng)
        self._rng_active = True
        try:
            yield
        finally:
            self._rng_active = False
            self._torch_rng = torch.get_rng_state()
            torch.set_rng_state(outer)

    def _rng_state(self) -> torch.Tensor:
        return torch.get_rng_state() if self._rng_active else self._torch_rng.clone()

    # ------------------------------------------------------------------------------------------- statistics
    @property
    def statistics(self) -> ModalityStatistics:
        """The running DUS statistics (the controller's)."""
        return self.controller.statistics

    @property
    def pending_quantities(self) -> dict[str, int] | None:
        """The quantities in force (None before the first decision)."""
        return self.controller.current

    @property
    def decision_left(self) -> int:
        """Iterations the quantities in force still hold for."""
        return self.controller.decision_left

    def observation(self) -> DiscrepancyObservation:
        """The cumulative modality discrepancy now."""
        return self.controller.observation()

    def observation_vector(self) -> np.ndarray:
        """The observation as the float32 vector learned samplers see (``config.observation_features``)."""
        return self.observation().vector(self.config.observation_features)

    def validate(self, quantities: Quantities) -> dict[str, int]:
        """Check quantities against this run's modalities and ceiling (the one validation on the path)."""
        return self.controller.validate(quantities)

    # ----------------------------------------------------------------------------------------------- training
    def _batch(self, q: Mapping[str, int]) -> IterationBatch:
        k = max(q.values())
        idx = torch.from_numpy(self.stream.take(k))
        inputs = {m: self.train_data.modalities[m][idx[: q[m]]].to(self.device) for m in self.modalities}
        return IterationBatch(
            inputs=inputs,
            labels=self.train_data.labels[idx].to(self.device),
            quantities=dict(q),
            n_paired=min(q.values()),
            nominal_batch_size=self.config.batch_size,
            epoch=self.epoch,
            iteration=self.iteration,
        )

    def _one_iteration(self, q: Mapping[str, int]) -> None:
        batch = self._batch(q)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        result = self.method.train_step(batch)
        if self.config.optim.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.optimizer.step()
        # s_t(m) and the head's cross-entropy (the observation's loss feature); modalities a method did not run
        # this iteration (alternating methods) are not scored
        scored = {
            m: score_and_loss(logits, batch.labels_of(m)[: len(logits)])
            for m, logits in result.output.unimodal_logits.items()
            if len(logits)
        }
        bad = [k for k, v in result.losses.items() if not math.isfinite(v)]
        if bad:
            raise FloatingPointError(
                f"non-finite loss {bad} at iteration {self.iteration}; lower the learning rate or check the inputs"
            )
        self.controller.update_scores({m: v[0] for m, v in scored.items()}, q, {m: v[1] for m, v in scored.items()})
        for k, v in {**result.losses, **result.extras}.items():
            self._loss_sums[k] = self._loss_sums.get(k, 0.0) + v
        self._loss_count += 1
        self.iteration += 1
        if self.iteration % self.iterations_per_epoch == 0:
            self._end_epoch()

    def _end_epoch(self) -> None:
        self.epoch += 1
        if self.scheduler is not None:
            self.scheduler.step()
        self.method.on_epoch_end(self.epoch)
        for callback in self.epoch_callbacks:
            callback(self)

    def decide(self, quantities: Quantities) -> dict[str, int]:
        """Validate ``quantities`` and make them the next decision interval's; return them as a dict."""
        q = self.controller.set_quantities(quantities)
        if self.config.optim.scale_lr_by_quantity:
            scale_learning_rates(self.optimizer, q, self.config.batch_size)
        return q

    def run_iterations(self, n: int, quantities: Quantities | None = None) -> int:
        """Run up to ``n`` iterations (fewer if the schedule ends) with the decided quantities; return how many ran.

        ``quantities``, when given, are decided first (``decide``), with the decision interval restarting.
        """
        if quantities is not None:
            self.decide(quantities)
        if self.pending_quantities is None:
            raise ConfigError("no quantities decided yet: call decide(quantities) or pass quantities")
        ran = 0
        with self.rng():
            while ran < n and not self.done:
                self._one_iteration(self.pending_quantities)
                ran += 1
        return ran

    def run_decision(self, quantities: Quantities) -> int:
        """Decide ``quantities`` and run the whole decision interval; return the iterations run."""
        self.decide(quantities)
        return self.run_iterations(self.config.decision_interval)

    def running_losses(self) -> dict[str, float]:
        """Mean of each logged training term since the last ``pop_train_losses`` (this epoch's so far)."""
        return {k: v / max(1, self._loss_count) for k, v in self._loss_sums.items()}

    def pop_train_losses(self) -> dict[str, float]:
        """Mean of each logged training term since the last call, then reset."""
        out = self.running_losses()
        self._loss_sums, self._loss_count = {}, 0
        return out

    def current_lr(self) -> float:
        """Learning rate of the first parameter group."""
        return float(self.optimizer.param_groups[0]["lr"])

    # --------------------------------------------------------------------------------------------- evaluation
    def _rows(self, split: str, max_samples: int | None) -> np.ndarray:
        data = self.splits[split]
        if max_samples is None or max_samples >= len(data):
            return np.arange(len(data))
        key = f"{split}:{max_samples}"
        if key not in self._val_subset:  # a fixed subset, the same at every evaluation
            rng = np.random.default_rng([self.config.seed, 2])
            self._val_subset[key] = np.sort(rng.choice(len(data), max_samples, replace=False))
        return self._val_subset[key]

    @torch.no_grad()
    def predict(
        self, split: str = "val", max_samples: int | None = None, with_features: bool = False
    ) -> tuple[Predictions, dict[str, np.ndarray]]:
        """Fused and unimodal logits (and optionally encoder features) on a split, in eval mode."""
        data: MultimodalDataset = self.splits[split]
        rows = self._rows(split, max_samples)
        was_training = self.model.training
        self.model.eval()
        fused, uni, feats = [], {m: [] for m in self.modalities}, {m: [] for m in self.modalities}
        for start in range(0, len(rows), self.config.eval_batch_size):
            idx = torch.from_numpy(rows[start : start + self.config.eval_batch_size])
            inputs = {m: x.to(self.device) for m, x in data.batch(idx, self.modalities).items()}
            out = self.model(inputs)
            fused.append(out.fused_logits.float().cpu())
            for m in self.modalities:
                uni[m].append(out.unimodal_logits[m].float().cpu())
                if with_features:
                    feats[m].append(out.features[m].float().cpu())
        self.model.train(was_training)
        pred = Predictions(
            labels=data.labels[torch.from_numpy(rows)].numpy(),
            fused_logits=torch.cat(fused).numpy(),
            unimodal_logits={m: torch.cat(v).numpy() for m, v in uni.items()},
            meta={k: np.asarray(v)[rows] for k, v in data.meta.items()},
        )
        features = {m: torch.cat(v).numpy() for m, v in feats.items()} if with_features else {}
        return pred, features

    def metrics_of(self, pred: Predictions, accuracy_only: bool = False) -> dict[str, float]:
        """Fused accuracy, macro-F1, mAP and each modality's head accuracy (accuracies only if asked)."""
        scores = self.method.fused_scores(pred)
        y_hat = scores.argmax(1)
        out = {"fused_acc": accuracy(pred.labels, y_hat)}
        if not accuracy_only:
            out["macro_f1"] = macro_f1(pred.labels, y_hat, self.splits.num_classes)
            out["map"] = mean_average_precision(pred.labels, scores)
        for m in self.modalities:
            out[f"acc/{m}"] = accuracy(pred.labels, pred.unimodal_logits[m].argmax(1))
        if not accuracy_only:
            out.update(self.method.extra_metrics(pred, scores))
        return out

    def evaluate(
        self,
        splits: str | Sequence[str] = "val",
        probe: bool = False,
        max_samples: int | None = None,
        accuracy_only: bool = False,
    ) -> dict[str, dict[str, float]] | dict[str, float]:
        """Metrics on one split (a dict) or several (split -> dict); ``probe`` adds each encoder's probe accuracy.

        The probe is a logistic regression fitted on the frozen encoder's train features (see ProbeConfig),
        scored on each requested split.
        """
        names = [splits] if isinstance(splits, str) else list(splits)
        results, features, labels = {}, {}, {}
        for s in names:
            pred, feats = self.predict(s, max_samples=max_samples, with_features=probe)
            results[s] = self.metrics_of(pred, accuracy_only)
            features[s], labels[s] = feats, pred.labels
        if probe:
            train_pred, train_feats = self.predict(
                "train", max_samples=self.config.probe.max_train_samples, with_features=True
            )
            for m in self.modalities:
                acc = linear_probe(
                    train_feats[m],
                    train_pred.labels,
                    {s: features[s][m] for s in names},
                    labels,
                    self.config.probe,
                    seed=self.config.seed,
                )
                for s in names:
                    results[s][f"probe/{m}"] = acc[s]
        return results[names[0]] if isinstance(splits, str) else results

    # ------------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": to_dict(self.config),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "method": self.method.state_dict(),
            "controller": self.controller.state_dict(),
            "stream": self.stream.state_dict(),
            "torch_rng": self._rng_state(),
            "iteration": self.iteration,
            "epoch": self.epoch,
            "loss_sums": dict(self._loss_sums),
            "loss_count": self._loss_count,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a ``state_dict()`` taken from a run with the same configuration.

        The device and thread count may differ; so may ``epochs`` when this run is longer (extending a run: the
        schedule goes on to the new length), except under a cosine schedule, which is fixed by the length.
        """
        if state.get("format") not in READABLE_FORMATS:
            raise DataError(
                f"checkpoint format {state.get('format')!r} is not one this version reads {READABLE_FORMATS}; "
                "start the run again without --resume"
            )
        mine, theirs = to_dict(self.config), state["config"]
        free = {"device", "num_threads"}
        if theirs.get("epochs", 0) < mine["epochs"] and self.config.optim.schedule != "cosine":
            free.add("epochs")
        differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k) and k not in free)
        if differ:
            raise ConfigError(f"checkpoint was written by a run with different settings: {differ}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.method.load_state_dict(state["method"])
        self.controller.load_state_dict(state["controller"])
        self.stream.load_state_dict(state["stream"])
        if self._rng_active:
            torch.set_rng_state(state["torch_rng"])
        else:
            self._torch_rng = state["torch_rng"].clone()
        self.iteration = int(state["iteration"])
        self.epoch = int(state["epoch"])
        self._loss_sums = dict(state["loss_sums"])
        self._loss_count = int(state["loss_count"])

    # -------------------------------------------------------------------------------------------------- fit
    def run_config(self, sampler: Sampler | None = None) -> dict[str, Any]:
        """The resolved configuration written to config.json (see ``fit.run_config``)."""
        return run_config(self, sampler)

    def fit(
        self,
        sampler: Sampler | None = None,
        run_dir: str | Path | None = None,
        resume: bool = False,
        progress: bool = True,
        validation_only: bool = False,
        trust_file: bool = False,
        **options: Any,
    ) -> FitResult:
        """Train the whole schedule with ``sampler``, select on validation, report test (see ``fit.fit``).

        ``options``: ``fit.fit``'s loggers, run_info and log.
        """
        return fit(
            self,
            sampler,
            run_dir=run_dir,
            resume=resume,
            progress=progress,
            validation_only=validation_only,
            trust_file=trust_file,
            **options,
        )
