"""The run layer over the step-wise Trainer: a whole schedule, validation selection, the run directory, resume.

``fit(trainer, sampler)`` (also ``Trainer.fit``) calls the sampler at every decision point, evaluates on
validation after every epoch, keeps the best epoch's weights (``mml_backbones.selection``, the rule the DUS
environment scores episodes with), scores the test split once at the end (unless ``validation_only``: a tuning
trial never reads it), and,
given a run directory, writes config.json, metrics.csv, decisions.csv, checkpoints and final.json as it goes
(see ``run_dir.py``); ``resume=True`` continues from the last checkpoint exactly. A run resumed with more epochs
in its config than its checkpoint was written with is extended: it trains on to the new length (the optimiser
and a step schedule carry on; cosine schedules cannot be extended). Loggers (``EpochLogger``, e.g. TensorBoard)
get every epoch's row.
"""

from __future__ import annotations

import copy
import math
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from mml_backbones.config import to_dict
from mml_backbones.errors import DataError, DUSError, one_line
from mml_backbones.methods import method_config
from mml_backbones.run_dir import RESTART_HINT, RunDir
from mml_backbones.samplers import Sampler, UniformSampler
from mml_backbones.selection import EpochSelection

if TYPE_CHECKING:
    from mml_backbones.core import TrainingCore as Trainer


@dataclass
class FitResult:
    """The outcome of ``fit``.

    Attributes:
        best_epoch: epoch (1-based) whose weights were kept, chosen on validation.
        val: validation metrics of the kept weights (with probes).
        test: test metrics of the kept weights (with probes); the only time the test split is read (empty for a
            ``validation_only`` fit).
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


class EpochLogger(Protocol):
    """Receives each epoch's row (the metrics.csv row: train losses, val metrics, S, samples, lr)."""

    def log_epoch(self, row: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


def run_config(trainer: Trainer, sampler: Sampler | None = None) -> dict[str, Any]:
    """The resolved configuration of a run, as written to config.json."""
    c = trainer.config
    return {
        "trainer": to_dict(c),
        "method_config": to_dict(method_config(c.method, c.method_options)),
        "sampler": repr(sampler) if sampler is not None else None,
        "dataset": {"sizes": trainer.splits.sizes(), "modalities": list(trainer.modalities), **trainer.splits.info},
        "schedule": {
            "iterations_per_epoch": trainer.iterations_per_epoch,
            "total_iterations": trainer.total_iterations,
        },
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
    }


class _Selection:
    """Per-epoch validation, best-epoch bookkeeping and the run directory's epoch files."""

    def __init__(self, trainer: Trainer, out: RunDir | None, start: float, loggers: Sequence[EpochLogger] = ()) -> None:
        self.trainer, self.out, self.start, self.loggers = trainer, out, start, list(loggers)
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"score": -math.inf, "epoch": 0, "model": None}
        self.decisions_written = 0
        #: the validation and best-epoch rule, shared with the environment's score
        self.selection = EpochSelection()

    def resume(self, trust_file: bool = False) -> None:
        """Continue from the run directory's last checkpoint (``trust_file``: see ``RunDir.load_checkpoint``)."""
        assert self.out is not None
        path = self.out.last_checkpoint
        ckpt = self.out.load_checkpoint(path, trust_file=trust_file)
        try:
            self.trainer.load_state_dict(ckpt["trainer"])
            self.best, self.history = dict(ckpt["best"]), list(ckpt["history"])
            self.start -= float(ckpt["seconds"])
            self.decisions_written = int(ckpt["decisions_written"])
            self.selection.restore(self.best["score"], self.best["epoch"])
        except DUSError:  # names the problem already (other settings, another format)
            raise
        except (KeyError, TypeError, AttributeError, ValueError, IndexError, RuntimeError) as e:  # data, wrong shape
            why = f"{type(e).__name__}: {one_line(e, 200)}"
            raise DataError(f"checkpoint {path} does not hold a run's state ({why}); {RESTART_HINT}") from None
        self.out.metrics.truncate(len(self.history))
        self.out.decisions.truncate(self.decisions_written)

    def log_decision(self, quantities: dict[str, int], cumulative: np.ndarray) -> None:
        """One row of decisions.csv."""
        t = self.trainer
        if self.out is None:
            return
        row: dict[str, Any] = {"iteration": t.iteration, "epoch": t.epoch}
        row.update({f"n/{m}": quantities[m] for m in t.modalities})
        row.update({f"S/{m}": float(s) for m, s in zip(t.modalities, cumulative)})
        self.out.decisions.append(row)
        self.decisions_written += 1

    def on_epoch_end(self, trainer: Trainer) -> None:
        """Validate, keep the best weights, write the epoch's row and the resume checkpoint."""
        t, out = trainer, self.out
        ev = self.selection(t)
        selected, val = ev.selected, ev.metrics
        row: dict[str, Any] = {"epoch": t.epoch, "iteration": t.iteration, "lr": t.current_lr()}
        row.update({f"train/{k}": v for k, v in t.pop_train_losses().items()})
        row.update({f"val/{k}": v for k, v in val.items()})
        row.update({f"S/{m}": float(s) for m, s in zip(t.modalities, t.statistics.cumulative)})
        row.update({f"samples/{m}": int(n) for m, n in zip(t.modalities, t.statistics.samples)})
        row["seconds"] = time.perf_counter() - self.start
        if ev.improved:
            model = copy.deepcopy(t.model.state_dict())
            self.best = {"score": ev.score, "epoch": t.epoch, "model": model}
            if out is not None:
                out.save_checkpoint({"model": model, "epoch": t.epoch, "selected": selected}, out.best_checkpoint)
        self.history.append(row)
        for logger in self.loggers:
            logger.log_epoch(row)
        if out is not None:
            out.metrics.append(row)
            state = {
                "trainer": t.state_dict(),
                "best": self.best,
                "history": self.history,
                "seconds": time.perf_counter() - self.start,
                "decisions_written": self.decisions_written,
            }
            out.save_checkpoint(state, out.last_checkpoint)


def fit(
    trainer: Trainer,
    sampler: Sampler | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    validation_only: bool = False,
    trust_file: bool = False,
    loggers: Sequence[EpochLogger] = (),
    run_info: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> FitResult:
    """Train the whole schedule with ``sampler`` deciding the quantities, select on validation, report test.

    Args:
        trainer: a Trainer, fresh or (with ``resume``) to be restored from ``run_dir``.
        sampler: called every ``decision_interval`` iterations with the observation; uniform by default. With
            ``validation_context = "decision"`` in the trainer's config, or on the sampler (a policy trained on
            ``DUS-Family-v2``), the observation's validation features are refreshed before every decision.
        run_dir: where config, metrics, checkpoints and the final report go (None: nothing written).
        resume: continue from ``run_dir``'s last checkpoint when there is one.
        progress: show a tqdm progress bar (loss and the last validation accuracy beside it).
        validation_only: score only the validation split at the end, without probes; the test split and the
            extra splits are never read (``dus tune``'s trials: a search must not see the test split).
        trust_file: with ``resume``, unpickle the checkpoint instead of reading it as data (logged; only for a
            checkpoint one wrote oneself, e.g. of an older version that only unpickling reads).
        loggers: get every epoch's row; closed at the end.
        run_info: more entries for config.json (``dus train`` keeps its sampler spec there for ``--resume``).
        log: receives one-line messages on what happens ("resuming from epoch k ...").
    """
    t = trainer
    sampler = sampler if sampler is not None else UniformSampler()
    out = RunDir(run_dir) if run_dir is not None else None
    sel = _Selection(t, out, time.perf_counter(), loggers)
    if out is not None:
        if resume and out.last_checkpoint.is_file():
            sel.resume(trust_file)
            if log is not None:
                log(f"resuming {out.path} from epoch {t.epoch} of {t.config.epochs} (iteration {t.iteration})")
        else:
            out.metrics.clear()
            out.decisions.clear()
        out.write_config({**run_config(t, sampler), **(run_info or {})})

    bar = tqdm(total=t.total_iterations, initial=t.iteration, disable=not progress, unit="it", leave=False)
    t.epoch_callbacks.append(sel.on_epoch_end)
    shown_epoch = t.epoch
    probe = "decision" in (t.config.validation_context, getattr(sampler, "validation_context", "epoch"))
    try:
        while not t.done:
            if t.controller.decision_due:
                if probe:
                    sel.selection.probe(t)
                obs = t.observation()
                q = t.decide(sampler(obs))
                sel.log_decision(q, obs.cumulative)
            ran = t.run_iterations(t.decision_left)
            bar.update(ran)
            # drawn at once when an epoch ends (its validation accuracy), else at the bar's own pace
            bar.set_postfix(_progress_fields(t, sel.history), refresh=t.epoch != shown_epoch)
            shown_epoch = t.epoch
    finally:
        t.epoch_callbacks.remove(sel.on_epoch_end)
        bar.close()
        for logger in loggers:
            logger.close()

    if sel.best["model"] is not None:
        t.model.load_state_dict(sel.best["model"])
    val_pred, _ = t.predict("val")
    selected = t.method.select_on_validation(val_pred)
    splits = ["val"] if validation_only else ["val", "test", *t.splits.extra]
    final = t.evaluate(splits, probe=not validation_only)
    seconds = time.perf_counter() - sel.start
    result = FitResult(
        best_epoch=sel.best["epoch"],
        val=final["val"],
        test=final.get("test", {}),
        history=sel.history,
        seconds=seconds,
        run_dir=out.path if out is not None else None,
        selected=selected,
        extra={k: final[k] for k in t.splits.extra if k in final},
    )
    if out is not None:
        report = {
            "best_epoch": result.best_epoch,
            "selection_metric": f"val/{t.config.selection_metric}",
            "selected_on_validation": selected,
            "val": result.val,
            "test": result.test,
            **{f"extra/{k}": v for k, v in result.extra.items()},
            "seconds": seconds,
            "seconds_per_epoch": seconds / max(1, t.config.epochs),
        }
        out.write_final(report)
    return result


def _progress_fields(trainer: Trainer, history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the bar shows: the epoch, the mean fusion loss (this epoch's, else the last one's), last val accuracy."""
    fields: dict[str, Any] = {"epoch": trainer.epoch}
    loss = trainer.running_losses().get("fused")
    if loss is None and history:  # an epoch's end moved the running loss into its history row
        loss = history[-1].get("train/fused")
    if loss is not None:
        fields["loss"] = f"{loss:.3f}"
    if history:
        fields["val_acc"] = f"{100 * history[-1]['val/fused_acc']:.1f}%"
    return fields
