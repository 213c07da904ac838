"""The one training loop, for one run or K runs in lockstep (the run axis).

Schedule. A run is ``epochs * iterations_per_epoch`` iterations; an epoch is ``ceil(N_train / B)`` iterations
by default whatever the quantities, so that the schedule, the learning-rate steps and the evaluations do not
depend on the sampler. Every ``decision_interval`` iterations a sampler (or the environment's action) sets the
quantities n_m of each run.

Sampling (DESIGN.md). One shuffled stream of training indices per run, reshuffled whenever it runs out. Each
iteration draws the next ``max_m n_m`` indices; modality m takes the first n_m of them (nested prefixes), the
fusion loss uses the paired prefix of ``min_m n_m`` samples and each unimodal loss is normalised by B.

Statistics. After each iteration s_t(m), the batch mean of modality m's head softmax on the true class, updates
S_t(m) of the run (see ``statistics.py``); the observation built from them is what samplers and the environment see.

The run axis. ``TrainingCore(configs)`` trains K runs that share the model's shapes and the schedule, each with its
own seed, data (of one shape), data order, quantities, statistics, optimiser hyper-parameters and method options
(``run.Run``). Their parameters live on one ``RunStack``: stacked tensors with the run axis first, each run's
``nn.Module`` an alias of its row. An iteration is computed in one of two ways:

- vectorised: the methods that opt in (``Method.vectorizable``: their step is their losses, with no gradient
  surgery) run the forward pass and the losses of every run at once under ``torch.func.vmap``; per-run quantities
  become padded rows with per-run masks. Used when K > 1, the runs share the method options and the model draws
  no dropout mask (a run's randomness comes from its own generator) and has no BatchNorm (whose batch statistics
  would count the padding rows): MLP encoders, any fusion, joint and concat with or without the DUS losses.
- per run: each run's method takes its own ``train_step`` on its own module (OGM-GE's modulation, MIE's SAM and
  projections, MMPareto's gradient combination, ... unchanged), with the run's torch RNG state swapped in: exactly
  the computation of the run alone. One run (K = 1) always takes this path, so a single run is bit for bit what
  it was before the run axis existed.

Optimisers. With K > 1, one stacked optimiser when the runs share the optimiser settings (the update is
elementwise, so it is K independent optimisers) and the method is vectorised; otherwise one optimiser per run over
its module's parameters (its own learning rate, momentum and weight decay, and a parameter without gradient is
skipped as a run alone skips it).

Randomness. Each run keeps its own torch RNG state and numpy generator and swaps them in around its work,
so runs interleaved in one process give the same numbers as runs alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mml_backbones.config import to_dict
from mml_backbones.controller import DUSController, score_and_loss
from mml_backbones.data.dataset import DatasetSplits
from mml_backbones.data.registry import load_dataset
from mml_backbones.errors import ConfigError, DataError
from mml_backbones.methods import Method, Predictions
from mml_backbones.methods.base import IterationBatch, StepResult
from mml_backbones.metrics import accuracy, linear_probe, macro_f1, mean_average_precision
from mml_backbones.models.model import MultimodalModel
from mml_backbones.observation import DiscrepancyObservation
from mml_backbones.optim import build_optimizer, build_scheduler, param_groups, scale_learning_rates
from mml_backbones.quantities import Quantities
from mml_backbones.run import Run, select_splits
from mml_backbones.run_stack import RunStack
from mml_backbones.statistics import ModalityStatistics
from mml_backbones.trainer_config import ScheduleProgress, TrainerConfig

#: 4: one entry per run (the run axis); 3: one run, plain data; 2: one run with numpy inside (read through
#: ``safe_files``' numpy re-constructors). Every format holds tensors, numbers, strings, lists and dicts only.
CHECKPOINT_FORMAT = 4
READABLE_FORMATS = (2, 3, 4)
#: rows x runs of one vectorised evaluation chunk: activations that stay in cache
EVAL_CHUNK_ROWS = 4096

EpochCallback = Callable[["TrainingCore"], None]

#: fields the runs of one batch may set apart (everything else defines the shared model and schedule)
PER_RUN_FIELDS = frozenset({"seed", "optim", "method_options", "dataset_options", "dus_losses"})


class TrainingCore(ScheduleProgress):
    """K >= 1 training runs in lockstep on stacked parameters (see the module docstring).

    Args:
        config: one TrainerConfig (K = 1) or one per run.
        splits: the runs' data: one DatasetSplits for every run, one per run, or None to load each run's
            dataset from its config (runs with the same dataset settings share one load).
        vectorise: take the vectorised step where it applies (K > 1); False runs every run's own step, each
            bit for bit as the run alone.

    With K = 1 the run's own objects are attributes of the core (``model``, ``method``, ``controller``,
    ``stream``, ``optimizer``, ...); with K > 1 they are ``runs[k].model`` and so on.
    """

    def __init__(
        self,
        config: TrainerConfig | Sequence[TrainerConfig] | None = None,
        splits: DatasetSplits | Sequence[DatasetSplits] | None = None,
        vectorise: bool = True,
    ) -> None:
        configs = [config or TrainerConfig()] if config is None or isinstance(config, TrainerConfig) else list(config)
        if not configs:
            raise ConfigError("a training core needs at least one run")
        configs = [c.resolved() for c in configs]
        _check_shared(configs)
        first = configs[0]
        if first.num_threads:
            torch.set_num_threads(first.num_threads)
        self.device = torch.device(first.device)
        run_splits = _splits_per_run(configs, splits)
        self.runs = [Run(c, select_splits(c, s), self.device) for c, s in zip(configs, run_splits)]
        self.num_runs = len(self.runs)
        lengths = {(r.iterations_per_epoch, r.total_iterations) for r in self.runs}
        if len(lengths) > 1:
            raise ConfigError(f"the runs of one batch must share the schedule; iterations per epoch, total: {lengths}")
        shapes = {tuple(tuple(r.train_data.input_shape(m)) for m in r.modalities) for r in self.runs}
        if len({r.modalities for r in self.runs}) > 1 or len(shapes) > 1:
            raise DataError("the runs of one batch must have the same modalities and input shapes")
        self.modalities = self.runs[0].modalities
        self.iterations_per_epoch = self.runs[0].iterations_per_epoch
        self.total_iterations = self.runs[0].total_iterations
        self.max_quantity = first.max_quantity
        self._vectorizable = vectorise and len(self.runs) > 1 and _can_vectorize(self.runs)
        self.stack = RunStack([r.model for r in self.runs], transpose_linear=self._vectorizable)
        self.shared_optimizer = (
            self._vectorizable and not first.optim.scale_lr_by_quantity and all(c.optim == first.optim for c in configs)
        )
        if self.shared_optimizer:  # fused: one pass over the stacked tensors (the update is memory-bound)
            self.optimizers = [build_optimizer([{"params": self.stack.trainable()}], first.optim, fused=True)]
        else:
            self.optimizers = [
                build_optimizer(param_groups(r.model, r.config.optim), r.config.optim) for r in self.runs
            ]
        #: whether anything reads a run's own gradient after a vectorised step (its rows are then bound)
        self._row_grads = not self.shared_optimizer or any(c.optim.grad_clip is not None for c in configs)
        self.schedulers = [
            build_scheduler(opt, cfg.optim, cfg.epochs)
            for opt, cfg in zip(self.optimizers, configs[: len(self.optimizers)])
        ]
        self.iteration = 0
        self.epoch = 0
        self.epoch_callbacks: list[EpochCallback] = []

    # --------------------------------------------------------------------------------- the single run's view
    def _only(self) -> Run:
        if self.num_runs != 1:
            raise ConfigError(f"this core trains {self.num_runs} runs: use core.runs[k] for one run's objects")
        return self.runs[0]

    @property
    def config(self) -> TrainerConfig:
        """The run's config (with K > 1: the first run's; the shared fields are every run's)."""
        return self.runs[0].config

    @property
    def splits(self) -> DatasetSplits:
        """The run's dataset splits (K = 1)."""
        return self._only().splits

    @property
    def train_data(self) -> Any:
        """The run's training split (K = 1)."""
        return self._only().train_data

    @property
    def model(self) -> MultimodalModel:
        """The run's model (K = 1; its parameters are the stack's only row)."""
        return self._only().model

    @property
    def method(self) -> Method:
        """The run's method (K = 1)."""
        return self._only().method

    @property
    def controller(self) -> DUSController:
        """The run's controller: S_t(m), the quantities in force, the decision countdown (K = 1)."""
        return self._only().controller

    @property
    def stream(self) -> Any:
        """The run's index stream (K = 1)."""
        return self._only().stream

    @property
    def statistics(self) -> ModalityStatistics:
        """The run's running DUS statistics (K = 1)."""
        return self._only().controller.statistics

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The run's optimiser (K = 1)."""
        self._only()
        return self.optimizers[0]

    @property
    def scheduler(self) -> torch.optim.lr_scheduler.LRScheduler | None:
        """The run's learning-rate schedule (K = 1)."""
        self._only()
        return self.schedulers[0]

    @property
    def pending_quantities(self) -> dict[str, int] | None:
        """The quantities in force (K = 1; None before the first decision)."""
        return self._only().controller.current

    @property
    def decision_left(self) -> int:
        """Iterations the quantities in force still hold for (the same for every run)."""
        return self.runs[0].controller.decision_left

    @property
    def decision_due(self) -> bool:
        """True when the runs need new quantities."""
        return self.runs[0].controller.decision_due

    def rng(self) -> Any:
        """Run a block with the run's torch RNG state swapped in (K = 1)."""
        return self._only().rng()

    def _batch(self, q: Mapping[str, int]) -> IterationBatch:
        """The run's next batch for quantities ``q`` (K = 1; draws from the stream)."""
        return self._only().batch(q, self.epoch, self.iteration)

    def _rows(self, split: str, max_samples: int | None) -> np.ndarray:
        return self._only().rows(split, max_samples)

    # ------------------------------------------------------------------------------------ decisions, per run
    def observation(self) -> DiscrepancyObservation:
        """The run's cumulative modality discrepancy now (K = 1)."""
        return self._only().controller.observation()

    def observations(self) -> list[DiscrepancyObservation]:
        """Every run's observation now."""
        return [r.controller.observation() for r in self.runs]

    def observation_vector(self) -> np.ndarray:
        """The run's observation as the float32 vector learned samplers see (K = 1)."""
        return self.observation().vector(self.config.observation_features)

    def observation_vectors(self) -> np.ndarray:
        """(K, D) float32: every run's observation vector."""
        return np.stack([o.vector(r.config.observation_features) for o, r in zip(self.observations(), self.runs)])

    def validate(self, quantities: Quantities) -> dict[str, int]:
        """Check quantities against the runs' modalities and ceiling (the one validation on the path)."""
        return self.runs[0].controller.validate(quantities)

    def decide(self, quantities: Quantities) -> dict[str, int]:
        """Validate ``quantities`` and make them the run's next decision interval's; return them (K = 1)."""
        self._only()
        return self.decide_each([quantities])[0]

    def decide_each(self, quantities: Sequence[Quantities]) -> list[dict[str, int]]:
        """One quantity set per run for the next decision interval; returns them validated, as dicts."""
        if len(quantities) != self.num_runs:
            raise ConfigError(f"expected quantities for {self.num_runs} runs, got {len(quantities)}")
        out = []
        for k, (run, q) in enumerate(zip(self.runs, quantities)):
            q = run.controller.set_quantities(q)
            if run.config.optim.scale_lr_by_quantity:
                scale_learning_rates(self.optimizers[k], q, run.config.batch_size)
            out.append(q)
        return out

    # -------------------------------------------------------------------------------------------- training
    def run_iterations(self, n: int, quantities: Quantities | Sequence[Quantities] | None = None) -> int:
        """Run up to ``n`` iterations of every run (fewer if the schedule ends) with the decided quantities.

        ``quantities``, when given, are decided first (``decide`` for one run, one set per run for K runs), with
        the decision interval restarting. Returns how many iterations ran.
        """
        if quantities is not None:
            if self.num_runs == 1:
                self.decide(quantities)  # type: ignore[arg-type]
            else:
                self.decide_each(quantities)  # type: ignore[arg-type]
        if any(r.controller.current is None for r in self.runs):
            raise ConfigError("no quantities decided yet: call decide(quantities) or pass quantities")
        ran = 0
        while ran < n and not self.done:
            self._one_iteration()
            ran += 1
        return ran

    def run_decision(self, quantities: Quantities) -> int:
        """Decide ``quantities`` and run the whole decision interval; return the iterations run (K = 1)."""
        self.decide(quantities)
        return self.run_iterations(self.config.decision_interval)

    def _one_iteration(self) -> None:
        runs = self.runs
        quantities = [r.controller.current for r in runs]
        for r in runs:
            if not r.model.training:  # predict() and methods restore the mode they found; train() walks the tree
                r.model.train()
        if self._vectorizable:
            results = self._vectorised_step(quantities)
        else:
            results = self._per_run_step([r.batch(q, self.epoch, self.iteration) for r, q in zip(runs, quantities)])
        for run in runs:
            clip = run.config.optim.grad_clip
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(run.model.parameters(), clip)
        for opt in self.optimizers:
            opt.step()
        for k, (run, q, (losses, scored)) in enumerate(zip(runs, quantities, results)):
            bad = [name for name, v in losses.items() if not math.isfinite(v)]
            if bad:
                where = f" of run {k} (seed {run.config.seed})" if self.num_runs > 1 else ""
                raise FloatingPointError(
                    f"non-finite loss {bad}{where} at iteration {self.iteration}; "
                    "lower the learning rate or check the inputs"
                )
            run.controller.update_scores({m: v[0] for m, v in scored.items()}, q, {m: v[1] for m, v in scored.items()})
            run.log_losses(losses)
        self.iteration += 1
        if self.iteration % self.iterations_per_epoch == 0:
            self._end_epoch()

    def _per_run_step(self, batches: Sequence[IterationBatch]) -> list[tuple[dict[str, float], dict]]:
        """Every run's own ``train_step`` on its own module (exactly the run alone)."""
        out = []
        for opt in self.optimizers if not self.shared_optimizer else ():
            opt.zero_grad(set_to_none=True)
        if self.shared_optimizer:
            self.stack.clear_run_grads()
        for run, batch in zip(self.runs, batches):
            with run.rng():
                result: StepResult = run.method.train_step(batch)
            # s_t(m) and the head's cross-entropy (the observation's loss feature); modalities a method did not run
            # this iteration (alternating methods) are not scored
            scored = {
                m: score_and_loss(logits, batch.labels_of(m)[: len(logits)])
                for m, logits in result.output.unimodal_logits.items()
                if len(logits)
            }
            out.append(({**result.losses, **result.extras}, scored))
        if self.shared_optimizer:
            self.stack.gather_run_grads()
        return out

    def _vectorised_step(self, quantities: Sequence[Mapping[str, int]]) -> list[tuple[dict[str, float], dict]]:
        """Forward and losses of every run at once (``vmap``), per-run quantities as padded rows with masks."""
        packed = _Packed(self.runs, quantities, self.epoch, self.iteration, self.device)
        template = self.runs[0].method

        def step(model: nn.Module, inputs: dict, labels: torch.Tensor, rows: dict, paired: torch.Tensor) -> Any:
            batch = packed.batch(inputs, labels, rows, paired)
            output = template.forward(batch)
            return template.loss_terms(output, batch), output.unimodal_logits

        self.stack.clear_grads()
        losses, logits = self.stack.vmap(step, packed.inputs, packed.labels, packed.row_weights, packed.paired_weights)
        total = sum(v.sum() for v in losses.values() if v.requires_grad)
        if isinstance(total, torch.Tensor):
            total.backward()
        if self._row_grads:  # per-run clipping and per-run optimisers read the rows
            self.stack.bind_row_grads()
        scores = packed.scores(logits)
        values = {name: v.detach().double().tolist() for name, v in losses.items()}
        return [({name: vals[k] for name, vals in values.items()}, scores[k]) for k in range(self.num_runs)]

    def _end_epoch(self) -> None:
        self.epoch += 1
        for scheduler in self.schedulers:
            if scheduler is not None:
                scheduler.step()
        for run in self.runs:
            with run.rng():
                run.method.on_epoch_end(self.epoch)
        for callback in self.epoch_callbacks:
            callback(self)

    def running_losses(self) -> dict[str, float]:
        """Mean of each logged training term since the last ``pop_train_losses`` (K = 1; this epoch's so far)."""
        return self._only().running_losses()

    def pop_train_losses(self) -> dict[str, float]:
        """Mean of each logged training term since the last call, then reset (K = 1)."""
        return self._only().pop_losses()

    def pop_train_losses_each(self) -> list[dict[str, float]]:
        """Every run's ``pop_train_losses``."""
        return [r.pop_losses() for r in self.runs]

    def current_lr(self, run: int = 0) -> float:
        """Learning rate of the first parameter group of run ``run``'s optimiser (the shared one if stacked)."""
        opt = self.optimizers[0 if self.shared_optimizer else run]
        return float(opt.param_groups[0]["lr"])

    # --------------------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def predict(
        self, split: str = "val", max_samples: int | None = None, with_features: bool = False, run: int = 0
    ) -> tuple[Predictions, dict[str, np.ndarray]]:
        """Run ``run``'s fused and unimodal logits (and optionally encoder features) on a split, in eval mode."""
        r = self.runs[run]
        data = r.splits[split]
        rows = r.rows(split, max_samples)
        model = r.model
        was_training = model.training
        model.eval()
        fused, uni, feats = [], {m: [] for m in r.modalities}, {m: [] for m in r.modalities}
        for start in range(0, len(rows), r.config.eval_batch_size):
            idx = torch.from_numpy(rows[start : start + r.config.eval_batch_size])
            inputs = {m: x.to(self.device) for m, x in data.batch(idx, r.modalities).items()}
            out = model(inputs)
            fused.append(out.fused_logits.float().cpu())
            for m in r.modalities:
                uni[m].append(out.unimodal_logits[m].float().cpu())
                if with_features:
                    feats[m].append(out.features[m].float().cpu())
        model.train(was_training)
        pred = Predictions(
            labels=data.labels[torch.from_numpy(rows)].numpy(),
            fused_logits=torch.cat(fused).numpy(),
            unimodal_logits={m: torch.cat(v).numpy() for m, v in uni.items()},
            meta={k: np.asarray(v)[rows] for k, v in data.meta.items()},
        )
        features = {m: torch.cat(v).numpy() for m, v in feats.items()} if with_features else {}
        return pred, features

    @torch.no_grad()
    def predict_each(self, split: str = "val", max_samples: int | None = None) -> list[Predictions]:
        """Every run's predictions on a split; vectorised (one batched pass) when the runs read the same rows."""
        rows = [r.rows(split, max_samples) for r in self.runs]
        data = self.runs[0].splits[split]
        same = all(r.splits[split] is data and np.array_equal(x, rows[0]) for r, x in zip(self.runs, rows))
        if not (self._vectorizable and same):
            return [self.predict(split, max_samples, run=k)[0] for k in range(self.num_runs)]
        modes = [r.model.training for r in self.runs]
        for r in self.runs:
            r.model.eval()
        chunk = max(1, min(self.config.eval_batch_size, EVAL_CHUNK_ROWS // self.num_runs))
        fused, uni = [], {m: [] for m in self.modalities}
        try:
            for start in range(0, len(rows[0]), chunk):
                idx = torch.from_numpy(rows[0][start : start + chunk])
                inputs = {m: x.to(self.device) for m, x in data.batch(idx, self.modalities).items()}
                f, u = self.stack.vmap(_logits, inputs, in_dims=(None,))
                fused.append(f.float().cpu())
                for m in self.modalities:
                    uni[m].append(u[m].float().cpu())
        finally:
            for r, mode in zip(self.runs, modes):
                r.model.train(mode)
        labels = data.labels[torch.from_numpy(rows[0])].numpy()
        meta = {key: np.asarray(v)[rows[0]] for key, v in data.meta.items()}
        fused_all = torch.cat(fused, 1).numpy()
        uni_all = {m: torch.cat(v, 1).numpy() for m, v in uni.items()}
        return [
            Predictions(labels, fused_all[k], {m: v[k] for m, v in uni_all.items()}, meta) for k in range(self.num_runs)
        ]

    def metrics_of(self, pred: Predictions, accuracy_only: bool = False, run: int = 0) -> dict[str, float]:
        """Fused accuracy, macro-F1, mAP and each modality's head accuracy (accuracies only if asked)."""
        r = self.runs[run]
        scores = r.method.fused_scores(pred)
        y_hat = scores.argmax(1)
        out = {"fused_acc": accuracy(pred.labels, y_hat)}
        if not accuracy_only:
            out["macro_f1"] = macro_f1(pred.labels, y_hat, r.splits.num_classes)
            out["map"] = mean_average_precision(pred.labels, scores)
        for m in r.modalities:
            out[f"acc/{m}"] = accuracy(pred.labels, pred.unimodal_logits[m].argmax(1))
        if not accuracy_only:
            out.update(r.method.extra_metrics(pred, scores))
        return out

    def evaluate(
        self,
        splits: str | Sequence[str] = "val",
        probe: bool = False,
        max_samples: int | None = None,
        accuracy_only: bool = False,
        run: int = 0,
    ) -> dict[str, dict[str, float]] | dict[str, float]:
        """Run ``run``'s metrics on one split (a dict) or several (split -> dict); ``probe`` adds probe accuracies.

        The probe is a logistic regression fitted on the frozen encoder's train features (see ProbeConfig),
        scored on each requested split.
        """
        r = self.runs[run]
        names = [splits] if isinstance(splits, str) else list(splits)
        results, features, labels = {}, {}, {}
        for s in names:
            pred, feats = self.predict(s, max_samples=max_samples, with_features=probe, run=run)
            results[s] = self.metrics_of(pred, accuracy_only, run=run)
            features[s], labels[s] = feats, pred.labels
        if probe:
            train_pred, train_feats = self.predict(
                "train", max_samples=r.config.probe.max_train_samples, with_features=True, run=run
            )
            for m in r.modalities:
                acc = linear_probe(
                    train_feats[m],
                    train_pred.labels,
                    {s: features[s][m] for s in names},
                    labels,
                    r.config.probe,
                    seed=r.config.seed,
                )
                for s in names:
                    results[s][f"probe/{m}"] = acc[s]
        return results[names[0]] if isinstance(splits, str) else results

    # ------------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue these runs exactly (tensors, numbers, strings, lists and dicts)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "configs": [to_dict(r.config) for r in self.runs],
            "models": [r.model.state_dict() for r in self.runs],
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "schedulers": [s.state_dict() if s is not None else None for s in self.schedulers],
            "runs": [r.state_dict() for r in self.runs],
            "iteration": self.iteration,
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a ``state_dict()`` taken from runs with the same configurations (or one run's older format).

        The device and thread count may differ; so may ``epochs`` when these runs are longer (extending a run: the
        schedule goes on to the new length), except under a cosine schedule, which is fixed by the length.
        """
        if state.get("format") not in READABLE_FORMATS:
            raise DataError(
                f"checkpoint format {state.get('format')!r} is not one this version reads {READABLE_FORMATS}; "
                "start the run again without --resume"
            )
        if state["format"] < 4:
            state = _one_run_state(state)
        theirs = state["configs"]
        if len(theirs) != self.num_runs:
            raise ConfigError(f"checkpoint holds {len(theirs)} runs, this core {self.num_runs}")
        for k, run in enumerate(self.runs):
            mine = to_dict(run.config)
            free = {"device", "num_threads"}
            if theirs[k].get("epochs", 0) < mine["epochs"] and run.config.optim.schedule != "cosine":
                free.add("epochs")
            differ = sorted(key for key in set(mine) | set(theirs[k]) if mine.get(key) != theirs[k].get(key))
            differ = [key for key in differ if key not in free]
            if differ:
                where = f"run {k}: " if self.num_runs > 1 else ""
                raise ConfigError(f"checkpoint was written by a run with different settings: {where}{differ}")
        for run, model_state in zip(self.runs, state["models"]):
            run.model.load_state_dict(model_state)
        for opt, opt_state in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(opt_state)
        for scheduler, s in zip(self.schedulers, state["schedulers"]):
            if scheduler is not None:
                scheduler.load_state_dict(s)
        for run, run_state in zip(self.runs, state["runs"]):
            run.load_state_dict(run_state)
        self.iteration = int(state["iteration"])
        self.epoch = int(state["epoch"])


# ----------------------------------------------------------------------------------------------- helpers
def _one_run_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """A format 2 or 3 checkpoint (one run, before the run axis) in the layout of format 4."""
    run_keys = ("method", "controller", "stream", "torch_rng", "loss_sums", "loss_count")
    return {
        "format": CHECKPOINT_FORMAT,
        "configs": [state["config"]],
        "models": [state["model"]],
        "optimizers": [state["optimizer"]],
        "schedulers": [state["scheduler"]],
        "runs": [{k: state[k] for k in run_keys}],
        "iteration": state["iteration"],
        "epoch": state["epoch"],
    }


def _logits(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    out = model(inputs)
    return out.fused_logits, out.unimodal_logits


def _check_shared(configs: Sequence[TrainerConfig]) -> None:
    """The runs of one batch may differ only in PER_RUN_FIELDS (the rest defines the shared model and schedule)."""
    first = to_dict(configs[0])
    for k, c in enumerate(configs[1:], 1):
        mine = to_dict(c)
        differ = sorted(key for key in first if key not in PER_RUN_FIELDS and mine.get(key) != first.get(key))
        if differ:
            raise ConfigError(
                f"run {k} differs from run 0 in {differ}; runs of one batch may differ only in {sorted(PER_RUN_FIELDS)}"
            )


def _splits_per_run(
    configs: Sequence[TrainerConfig], splits: DatasetSplits | Sequence[DatasetSplits] | None
) -> list[DatasetSplits]:
    if isinstance(splits, DatasetSplits):
        return [splits] * len(configs)
    if splits is not None:
        out = list(splits)
        if len(out) != len(configs):
            raise ConfigError(f"expected splits for {len(configs)} runs, got {len(out)}")
        return out
    loaded: dict[str, DatasetSplits] = {}
    out = []
    for c in configs:
        key = repr((c.dataset, sorted(to_dict(c.dataset_options).items())))
        if key not in loaded:
            loaded[key] = load_dataset(c.dataset, **c.dataset_options)
        out.append(loaded[key])
    return out


def _can_vectorize(runs: Sequence[Run]) -> bool:
    """Whether the runs' iterations can run under vmap: an opted-in method with shared options, no dropout."""
    first = runs[0]
    if not type(first.method).vectorizable:
        return False
    if any(
        to_dict(r.method.config) != to_dict(first.method.config) or r.config.dus_losses != first.config.dus_losses
        for r in runs[1:]
    ):
        return False
    # BatchNorm: its batch statistics would count the padding rows of unequal quantities, and a model that is
    # vectorised only now and then would train its runs on transposed views between (not bit for bit alone)
    return not any(
        (isinstance(m, nn.Dropout) and m.p > 0) or isinstance(m, nn.modules.batchnorm._BatchNorm)
        for m in first.model.modules()
    )


class _Packed:
    """One iteration's batches of K runs as padded tensors with per-run masks (for the vectorised step).

    Run k draws ``max_m n_km`` indices from its own stream, as it would alone; the draws are padded to the widest
    with index 0 (masked out) and every modality is gathered once for all runs when they share their data.
    """

    def __init__(
        self,
        runs: Sequence[Run],
        quantities: Sequence[Mapping[str, int]],
        epoch: int,
        iteration: int,
        device: torch.device,
    ) -> None:
        first = runs[0]
        self.modalities = first.modalities
        self.nominal_batch_size = first.config.batch_size
        self.epoch, self.iteration = epoch, iteration
        q = np.array([[qk[m] for m in self.modalities] for qk in quantities], dtype=np.int64)  # (K, M)
        draw = q.max(1)
        self.rows = {m: int(r) for m, r in zip(self.modalities, q.max(0))}
        self.n_paired = int(q.min(1).max())
        idx = np.zeros((len(runs), int(draw.max())), dtype=np.int64)
        for k, run in enumerate(runs):
            idx[k, : draw[k]] = run.stream.take(int(draw[k]))
        index = torch.from_numpy(idx)
        if all(r.train_data is first.train_data for r in runs[1:]):
            data = first.train_data
            self.labels = data.labels[index].to(device)
            self.inputs = {m: data.modalities[m][index[:, : self.rows[m]]].to(device) for m in self.modalities}
        else:
            self.labels = torch.stack([r.train_data.labels[i] for r, i in zip(runs, index)]).to(device)
            self.inputs = {
                m: torch.stack([r.train_data.modalities[m][i[: self.rows[m]]] for r, i in zip(runs, index)]).to(device)
                for m in self.modalities
            }
        qt = torch.from_numpy(q).to(device)
        self.row_weights = {
            m: (torch.arange(self.rows[m], device=device) < qt[:, j, None]).float()
            for j, m in enumerate(self.modalities)
        }
        paired = qt.min(1).values
        self.paired_weights = (torch.arange(self.n_paired, device=device) < paired[:, None]).float() / paired[
            :, None
        ].float()

    def batch(self, inputs: dict, labels: torch.Tensor, rows: dict, paired: torch.Tensor) -> IterationBatch:
        """One run's padded batch (inside vmap: the run axis is hidden)."""
        return IterationBatch(
            inputs=inputs,
            labels=labels,
            quantities=dict(self.rows),
            n_paired=self.n_paired,
            nominal_batch_size=self.nominal_batch_size,
            epoch=self.epoch,
            iteration=self.iteration,
            row_weights=rows,
            paired_weights=paired,
        )

    def scores(self, logits: Mapping[str, torch.Tensor]) -> list[dict[str, tuple[float, float]]]:
        """Per run, (s_t(m), mean cross-entropy) of each modality's head over the run's own n_m rows."""
        per_modality = {}
        with torch.no_grad():
            for m, z in logits.items():
                k, n, c = z.shape
                y = self.labels[:, :n]
                ce = F.cross_entropy(z.detach().float().reshape(-1, c), y.reshape(-1), reduction="none").view(k, n)
                mask = self.row_weights[m]
                count = mask.sum(1)
                # the true-class probability is exp(-cross-entropy)
                s = (torch.exp(-ce) * mask).sum(1) / count
                loss = (ce * mask).sum(1) / count
                per_modality[m] = list(zip(s.double().tolist(), loss.double().tolist()))
        return [{m: v[k] for m, v in per_modality.items()} for k in range(len(self.labels))]
