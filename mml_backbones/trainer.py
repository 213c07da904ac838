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
import copy
import math
import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from mml_backbones.config import from_dict, to_dict
from mml_backbones.data.dataset import DatasetSplits, MultimodalDataset
from mml_backbones.data.registry import load_dataset
from mml_backbones.errors import ConfigError, DataError
from mml_backbones.methods import MethodContext, Predictions, build_method, method_config
from mml_backbones.methods.base import IterationBatch
from mml_backbones.metrics import ProbeConfig, accuracy, linear_probe, macro_f1, mean_average_precision
from mml_backbones.models.model import ModelConfig, build_model
from mml_backbones.observation import DEFAULT_FEATURES, DiscrepancyObservation, check_features
from mml_backbones.run_dir import RunDir
from mml_backbones.samplers import Quantities, Sampler, UniformSampler, normalise_quantities
from mml_backbones.statistics import ModalityStatistics, StatisticsConfig

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and learning-rate schedule.

    Attributes:
        name: "adam", "adamw" or "sgd".
        lr: learning rate.
        weight_decay: L2 / decoupled weight decay.
        momentum: SGD momentum.
        schedule: "none", "step" (multiply by ``gamma`` every ``step_size`` epochs) or "cosine" (over the run).
        step_size: epochs between steps of the "step" schedule.
        gamma: factor of the "step" schedule.
        grad_clip: clip the global gradient norm to this value (None: no clipping).
    """

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: Literal["none", "step", "cosine"] = "none"
    step_size: int = 30
    gamma: float = 0.1
    grad_clip: float | None = None


@dataclass(frozen=True)
class TrainerConfig:
    """Everything that defines a training run (saved as config.json in the run directory).

    Attributes:
        dataset: registered dataset name.
        dataset_options: options of the dataset loader (path, preset, seed, ...).
        modalities: train on these modalities only (None: all); one modality gives a unimodal baseline.
        method: registered method name (joint, concat, ogm_ge, ...).
        method_options: overrides of the method config's defaults.
        model: the architecture.
        optim: optimiser and schedule.
        batch_size: nominal batch size B.
        epochs: epochs in the schedule.
        iterations_per_epoch: iterations per epoch (None: ceil(N_train / B)).
        decision_interval: iterations between sampler decisions.
        max_quantity: largest n_m accepted (None: 8 B).
        statistics: how S_t(m) accumulates.
        observation_features: the features of the observation vector given to learned samplers.
        eval_batch_size: batch size of evaluation passes.
        val_max_samples: evaluate per-epoch validation on a fixed subset of this size (None: whole split).
        probe: the linear probe used in the final report.
        selection_metric: validation metric that picks the best epoch (fused_acc, macro_f1, map).
        seed: seed of initialisation, data order and noise.
        device: torch device.
        num_threads: torch CPU threads (None: leave torch's default).
    """

    dataset: str = "synthetic"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    modalities: tuple[str, ...] | None = None
    method: str = "joint"
    method_options: dict[str, Any] = field(default_factory=dict)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 64
    epochs: int = 20
    iterations_per_epoch: int | None = None
    decision_interval: int = 10
    max_quantity: int | None = None
    statistics: StatisticsConfig = field(default_factory=StatisticsConfig)
    observation_features: tuple[str, ...] = DEFAULT_FEATURES
    eval_batch_size: int = 1024
    val_max_samples: int | None = None
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    selection_metric: Literal["fused_acc", "macro_f1", "map"] = "fused_acc"
    seed: int = 0
    device: str = "cpu"
    num_threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs", "decision_interval", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.iterations_per_epoch is not None and self.iterations_per_epoch < 1:
            raise ConfigError(f"iterations_per_epoch must be >= 1, got {self.iterations_per_epoch}")
        if self.selection_metric not in ("fused_acc", "macro_f1", "map"):
            raise ConfigError(f"selection_metric must be fused_acc, macro_f1 or map, got {self.selection_metric!r}")
        check_features(self.observation_features)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainerConfig:
        """Build from a (JSON) dict, e.g. a run directory's config.json["trainer"]."""
        return from_dict(cls, dict(data))


@dataclass
class FitResult:
    """The outcome of ``Trainer.fit``.

    Attributes:
        best_epoch: epoch (1-based) whose weights were kept, chosen on validation.
        val: validation metrics of the kept weights (with probes).
        test: test metrics of the kept weights (with probes); the only time the test split is read.
        history: per-epoch rows as written to metrics.csv.
        seconds: wall time of training (evaluation included).
        run_dir: the run directory, if any.
        selected: post-hoc settings the method chose on validation (e.g. ensemble weights).
        extra: metrics on the dataset's extra splits (e.g. a transfer split), reported like test.
    """

    best_epoch: int
    val: dict[str, float]
    test: dict[str, float]
    history: list[dict[str, Any]]
    seconds: float
    run_dir: Path | None = None
    selected: dict[str, float] = field(default_factory=dict)
    extra: dict[str, dict[str, float]] = field(default_factory=dict)


class _IndexStream:
    """Shuffled training indices, reshuffled whenever a pass ends; draws cross pass boundaries."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.n = n
        self.rng = rng
        self.order = rng.permutation(n)
        self.pos = 0
        self.passes = 0

    def take(self, k: int) -> np.ndarray:
        parts, need = [], k
        while need > 0:
            if self.pos == self.n:
                self.order = self.rng.permutation(self.n)
                self.pos = 0
                self.passes += 1
            chunk = self.order[self.pos : self.pos + need]
            self.pos += len(chunk)
            need -= len(chunk)
            parts.append(chunk)
        return np.concatenate(parts)

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "order": self.order.copy(),
            "pos": self.pos,
            "passes": self.passes,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.order = np.asarray(state["order"])
        self.pos = int(state["pos"])
        self.passes = int(state["passes"])


EpochCallback = Callable[["Trainer"], None]


class Trainer:
    """Owns model, optimiser, data stream and the running statistics of one multimodal training run.

    Step-wise API: ``observation()``, ``run_decision(quantities)``, ``run_iterations(n, quantities)``,
    ``evaluate(splits)``, ``state_dict()``/``load_state_dict()``; ``fit(sampler)`` runs the whole schedule.
    """

    def __init__(self, config: TrainerConfig | None = None, splits: DatasetSplits | None = None) -> None:
        self.config = config = config or TrainerConfig()
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
        self.max_quantity = config.max_quantity or 8 * config.batch_size

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
        )
        self.method = build_method(config.method, config.method_options, self.model, context)
        self.optimizer = self._build_optimizer()
        self.scheduler = self._build_scheduler()
        self.statistics = ModalityStatistics(self.modalities, config.statistics)
        self.stream = _IndexStream(n_train, np.random.default_rng([config.seed, 1]))
        self.iteration = 0
        self.epoch = 0
        self.pending_quantities: dict[str, int] | None = None
        self.decision_left = 0
        self.epoch_callbacks: list[EpochCallback] = []
        self._loss_sums: dict[str, float] = {}
        self._loss_count = 0
        self._val_subset: dict[str, np.ndarray] = {}

    # ----------------------------------------------------------------------------------------------- set-up
    def _build_optimizer(self) -> torch.optim.Optimizer:
        o = self.config.optim
        params = [p for p in self.model.parameters() if p.requires_grad]
        if o.name == "adam":
            return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
        if o.name == "adamw":
            return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
        if o.name == "sgd":
            return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        raise ConfigError(f"unknown optimizer {o.name!r}; valid: adam, adamw, sgd")

    def _build_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler | None:
        o = self.config.optim
        if o.schedule == "none":
            return None
        if o.schedule == "step":
            return torch.optim.lr_scheduler.StepLR(self.optimizer, o.step_size, o.gamma)
        if o.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, self.config.epochs)
        raise ConfigError(f"unknown lr schedule {o.schedule!r}; valid: none, step, cosine")

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
    def done(self) -> bool:
        """True when the whole schedule has run."""
        return self.iteration >= self.total_iterations

    @property
    def progress(self) -> float:
        """Fraction of the schedule done."""
        return min(1.0, self.iteration / self.total_iterations)

    def observation(self) -> DiscrepancyObservation:
        """The cumulative modality discrepancy now."""
        s = self.statistics
        return DiscrepancyObservation(
            modalities=self.modalities,
            cumulative=s.cumulative.copy(),
            last=s.last.copy(),
            samples=s.samples.copy(),
            progress=self.progress,
            iteration=self.iteration,
            nominal_batch_size=self.config.batch_size,
        )

    def observation_vector(self) -> np.ndarray:
        """The observation as the float32 vector learned samplers see (``config.observation_features``)."""
        return self.observation().vector(self.config.observation_features)

    def quantities(self, quantities: Quantities) -> dict[str, int]:
        """Validate quantities against this run's modalities and maximum."""
        return normalise_quantities(quantities, self.modalities, self.max_quantity)

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
        with torch.no_grad():
            # modalities a method did not run this iteration (alternating methods) are not scored
            scores = {
                m: float(torch.softmax(logits, -1).gather(1, batch.labels_of(m)[: len(logits), None]).mean())
                for m, logits in result.output.unimodal_logits.items()
                if len(logits)
            }
        bad = [k for k, v in result.losses.items() if not math.isfinite(v)]
        if bad:
            raise FloatingPointError(
                f"non-finite loss {bad} at iteration {self.iteration}; lower the learning rate or check the inputs"
            )
        self.statistics.update(scores, q)
        for k, v in {**result.losses, **result.extras}.items():
            self._loss_sums[k] = self._loss_sums.get(k, 0.0) + v
        self._loss_count += 1
        self.iteration += 1
        self.decision_left = max(0, self.decision_left - 1)
        if self.iteration % self.iterations_per_epoch == 0:
            self._end_epoch()

    def _end_epoch(self) -> None:
        self.epoch += 1
        if self.scheduler is not None:
            self.scheduler.step()
        self.method.on_epoch_end(self.epoch)
        for callback in self.epoch_callbacks:
            callback(self)

    def run_iterations(self, n: int, quantities: Quantities) -> int:
        """Run up to ``n`` iterations with ``quantities`` (fewer if the schedule ends); return how many ran."""
        q = self.quantities(quantities)
        ran = 0
        with self.rng():
            while ran < n and not self.done:
                self._one_iteration(q)
                ran += 1
        return ran

    def run_decision(self, quantities: Quantities) -> int:
        """Set the quantities for the next decision interval and run it; return the iterations run."""
        self.pending_quantities = self.quantities(quantities)
        self.decision_left = self.config.decision_interval
        return self.run_iterations(self.decision_left, self.pending_quantities)

    def pop_train_losses(self) -> dict[str, float]:
        """Mean of each logged training term since the last call, then reset."""
        out = {k: v / max(1, self._loss_count) for k, v in self._loss_sums.items()}
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
            "statistics": self.statistics.state_dict(),
            "stream": self.stream.state_dict(),
            "torch_rng": self._rng_state(),
            "iteration": self.iteration,
            "epoch": self.epoch,
            "pending_quantities": self.pending_quantities,
            "decision_left": self.decision_left,
            "loss_sums": dict(self._loss_sums),
            "loss_count": self._loss_count,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a ``state_dict()`` taken from a run with the same configuration."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise DataError(f"checkpoint format {state.get('format')!r} is not {CHECKPOINT_FORMAT}")
        mine, theirs = to_dict(self.config), state["config"]
        differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k) and k != "device")
        if differ:
            raise ConfigError(f"checkpoint was written by a run with different settings: {differ}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.method.load_state_dict(state["method"])
        self.statistics.load_state_dict(state["statistics"])
        self.stream.load_state_dict(state["stream"])
        if self._rng_active:
            torch.set_rng_state(state["torch_rng"])
        else:
            self._torch_rng = state["torch_rng"].clone()
        self.iteration = int(state["iteration"])
        self.epoch = int(state["epoch"])
        self.pending_quantities = state["pending_quantities"]
        self.decision_left = int(state["decision_left"])
        self._loss_sums = dict(state["loss_sums"])
        self._loss_count = int(state["loss_count"])

    # -------------------------------------------------------------------------------------------------- fit
    def run_config(self, sampler: Sampler | None = None) -> dict[str, Any]:
        """The resolved configuration written to config.json."""
        return {
            "trainer": to_dict(self.config),
            "method_config": to_dict(method_config(self.config.method, self.config.method_options)),
            "sampler": repr(sampler) if sampler is not None else None,
            "dataset": {
                "sizes": self.splits.sizes(),
                "modalities": list(self.modalities),
                **self.splits.info,
            },
            "schedule": {
                "iterations_per_epoch": self.iterations_per_epoch,
                "total_iterations": self.total_iterations,
            },
            "versions": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "numpy": np.__version__,
            },
        }

    def fit(
        self,
        sampler: Sampler | None = None,
        run_dir: str | Path | None = None,
        resume: bool = False,
        progress: bool = True,
    ) -> FitResult:
        """Train the whole schedule with ``sampler`` deciding the quantities, select on validation, report test.

        Args:
            sampler: called every ``decision_interval`` iterations with the observation; uniform by default.
            run_dir: where config, metrics, checkpoints and the final report go (None: nothing written).
            resume: continue from ``run_dir``'s last checkpoint when there is one.
            progress: show a tqdm progress bar.
        """
        sampler = sampler if sampler is not None else UniformSampler()
        start = time.perf_counter()
        out = RunDir(run_dir) if run_dir is not None else None
        history: list[dict[str, Any]] = []
        best: dict[str, Any] = {"score": -math.inf, "epoch": 0, "model": None, "selected": {}}
        if out is not None:
            if resume and out.last_checkpoint.is_file():
                ckpt = out.load(out.last_checkpoint)
                self.load_state_dict(ckpt["trainer"])
                best = ckpt["best"]
                history = ckpt["history"]
                start -= ckpt["seconds"]
                out.metrics.truncate(len(history))
                out.decisions.truncate(ckpt["decisions_written"])
            else:
                for log in (out.metrics, out.decisions):
                    if log.path.exists():
                        log.path.unlink()
                    log.fields = None
            out.write_config(self.run_config(sampler))
        decisions_written = len(out.decisions.read()) if out is not None else 0

        bar = tqdm(total=self.total_iterations, initial=self.iteration, disable=not progress, unit="it", leave=False)

        def on_epoch_end(trainer: Trainer) -> None:
            nonlocal best
            val_pred, _ = self.predict("val", max_samples=self.config.val_max_samples)
            selected = self.method.select_on_validation(val_pred)
            val = self.metrics_of(val_pred)
            row: dict[str, Any] = {"epoch": self.epoch, "iteration": self.iteration, "lr": self.current_lr()}
            row.update({f"train/{k}": v for k, v in self.pop_train_losses().items()})
            row.update({f"val/{k}": v for k, v in val.items()})
            row.update({f"S/{m}": float(s) for m, s in zip(self.modalities, self.statistics.cumulative)})
            row.update({f"samples/{m}": int(n) for m, n in zip(self.modalities, self.statistics.samples)})
            row["seconds"] = time.perf_counter() - start
            score = val[self.config.selection_metric]
            if score > best["score"]:
                best = {
                    "score": score,
                    "epoch": self.epoch,
                    "model": copy.deepcopy(self.model.state_dict()),
                    "selected": selected,
                }
                if out is not None:
                    out.save(
                        {"model": best["model"], "epoch": self.epoch, "selected": selected},
                        out.best_checkpoint,
                    )
            history.append(row)
            bar.set_postfix(epoch=self.epoch, val_acc=f"{val['fused_acc']:.3f}")
            if out is not None:
                out.metrics.append(row)
                out.save(
                    {
                        "trainer": self.state_dict(),
                        "best": best,
                        "history": history,
                        "seconds": time.perf_counter() - start,
                        "decisions_written": decisions_written,
                    },
                    out.last_checkpoint,
                )

        self.epoch_callbacks.append(on_epoch_end)
        try:
            while not self.done:
                if self.decision_left > 0 and self.pending_quantities is not None:
                    ran = self.run_iterations(self.decision_left, self.pending_quantities)
                else:
                    obs = self.observation()
                    q = self.quantities(sampler(obs))
                    if out is not None:
                        row = {"iteration": self.iteration, "epoch": self.epoch}
                        row.update({f"n/{m}": q[m] for m in self.modalities})
                        row.update({f"S/{m}": float(s) for m, s in zip(self.modalities, obs.cumulative)})
                        out.decisions.append(row)
                        decisions_written += 1
                    ran = self.run_decision(q)
                bar.update(ran)
        finally:
            self.epoch_callbacks.remove(on_epoch_end)
            bar.close()

        if best["model"] is not None:
            self.model.load_state_dict(best["model"])
        val_pred, _ = self.predict("val")
        selected = self.method.select_on_validation(val_pred)
        final = self.evaluate(["val", "test", *self.splits.extra], probe=True)
        seconds = time.perf_counter() - start
        result = FitResult(
            best_epoch=best["epoch"],
            val=final["val"],
            test=final["test"],
            history=history,
            seconds=seconds,
            run_dir=out.path if out is not None else None,
            selected=selected,
            extra={k: final[k] for k in self.splits.extra},
        )
        if out is not None:
            out.write_final(
                {
                    "best_epoch": result.best_epoch,
                    "selection_metric": f"val/{self.config.selection_metric}",
                    "selected_on_validation": selected,
                    "val": result.val,
                    "test": result.test,
                    **{f"extra/{k}": v for k, v in result.extra.items()},
                    "seconds": seconds,
                    "seconds_per_epoch": seconds / max(1, self.config.epochs),
                }
            )
        return result
