"""The search: one Optuna study per row, kept by this process (ask and tell), trials run by a TaskPool.

Choices, and why:

- **Slots and seeds.** A row's budget is ``trials`` slots. Slot k trains on tuning seed 50_000 + k (dus_env.seeds),
  the same k for every row (common random numbers), never a downstream or evaluation seed. Slot 0 is the paper
  default (``Row.paper_params``), enqueued when the study is made.
- **Reproducible.** Each ask uses a fresh ``TPESampler`` seeded from (seed, slot); TPE keeps no other state, so a
  study is a function of its seed, its generation size and the trials' values, whatever the workers' timing, the
  backend, or an interruption. The first ``startup`` slots are random (TPE's start-up); the shared parameters
  drawn there are the same for every row (same seeds, same order), so rows start from the same points.
- **Generations.** A row asks ``batch`` trials at a time and asks again only when all of them are told; rows run
  side by side, so two workers keep busy with two rows and one trial each (batch 1: a sequential TPE per row).
- **Validation only.** A trial's value is the validation score (``selection_metric``) of the epoch ``fit`` keeps;
  ``fit(validation_only=True)`` never reads the test split.
- **Resumable.** Studies live in a SQLite file (``OUT/studies.db``). A trial found RUNNING when a run starts was
  cut off by a kill: it is marked FAIL (without an ``error``: interrupted) and rerun on its slot with its parameters.
  A trial whose training raised is FAIL with its ``error`` and uses up its slot. One run at a time per folder (a
  lock file).
- **Wall time.** Each trial records ``seconds`` (build and fit, in the worker) so rows compare at equal compute too.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from benchmarks.grid import Cell, TaskPool, build_cell
from benchmarks.tuning.rows import Row
from benchmarks.tuning.space import SharedSpace
from benchmarks.tuning.worlds import World
from dus_env.seeds import TUNING_SEED_BASE
from mml_backbones.errors import ConfigError

DB_NAME = "studies.db"


def run_trial(cell: Cell) -> dict[str, Any]:
    """Train one trial's run and score it on validation only (one torch thread)."""
    start = time.perf_counter()
    trainer, sampler = build_cell(cell, threads=1)
    result = trainer.fit(sampler, progress=False, validation_only=True)
    return {
        "value": float(result.val[trainer.config.selection_metric]),
        "best_epoch": result.best_epoch,
        "seconds": time.perf_counter() - start,
        **{f"val/{k}": float(v) for k, v in result.val.items()},
    }


def storage_url(out: str | Path) -> str:
    """The SQLite URL of a tuning folder's studies."""
    return f"sqlite:///{Path(out).resolve() / DB_NAME}"


def startup_trials(trials: int) -> int:
    """Random start-up trials before TPE models the results: a third of the budget, between 2 and 10."""
    return max(2, min(10, trials // 3))


def _tpe(seed: int, slot: int, startup: int) -> Any:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)
        mixed = int(np.random.SeedSequence([seed, slot]).generate_state(1)[0])
        return optuna.samplers.TPESampler(seed=mixed, n_startup_trials=startup)


class RowStudy:
    """One row's study: its budget, its slots, ask and tell.

    Args:
        storage: the Optuna storage (URL or object) of the tuning folder.
        row: the row.
        world: the world it runs on.
        space: the shared search space.
        trials: the row's budget (complete trials, the paper default included).
        seed: the search seed.
        batch: trials asked per generation.
        readonly: load an existing study and change nothing (for reports while a search runs).
    """

    def __init__(
        self,
        storage: Any,
        row: Row,
        world: World,
        space: SharedSpace,
        trials: int,
        seed: int,
        batch: int,
        readonly: bool = False,
    ) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.row, self.world, self.space, self.trials, self.seed = row, world, space, trials, seed
        self.live: dict[int, Any] = {}  # trial number -> Trial, asked by this process and not told yet
        if readonly:
            try:
                self.study = optuna.load_study(study_name=row.spec, storage=storage)
            except KeyError:
                raise ConfigError(
                    f"row {row.spec}: no study in this folder yet; run dus tune without --report"
                ) from None
            return
        self.study = optuna.create_study(
            study_name=row.spec, storage=storage, direction="maximize", load_if_exists=True
        )
        identity = {
            "world": {"name": world.name, "fields": world.fields},
            "space": {**space.as_dict(), "knobs": [k.as_dict() for k in row.knobs]},
            "seed": seed,
        }
        attrs = self.study.user_attrs
        if "identity" in attrs:
            if attrs["identity"] != json.loads(json.dumps(identity)):
                raise ConfigError(
                    f"row {row.spec}: the study in this folder was made with another world, search space or seed "
                    f"({attrs['identity']}); use another --out, or the same options"
                )
        else:
            self.study.set_user_attr("identity", identity)
            self.study.set_user_attr("batch", batch)
            self.study.set_user_attr("startup", startup_trials(trials))
        self.batch = int(self.study.user_attrs["batch"])
        self.startup = int(self.study.user_attrs["startup"])
        self._recover()
        if not any(t.user_attrs.get("slot") == 0 for t in self.study.get_trials(deepcopy=False)):
            self.study.enqueue_trial(row.paper_params(space), user_attrs={"slot": 0, "paper_default": True})

    def _recover(self) -> None:
        """Fail the trials a killed run left RUNNING, and queue each again on its slot with its parameters."""
        from optuna.trial import TrialState

        names = set(self.row.paper_params(self.space))
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self.study.tell(t.number, state=TrialState.FAIL)  # no "error": interrupted, its slot is not used up
            if "slot" in t.user_attrs and set(t.params) == names:
                keep = {k: v for k, v in t.user_attrs.items() if k in ("slot", "paper_default")}
                self.study.enqueue_trial(t.params, user_attrs={**keep, "rerun_of": t.number})

    def _slots(self) -> tuple[set[int], list[int]]:
        """(slots used up or taken, slots of waiting trials in queue order)."""
        from optuna.trial import TrialState

        taken, waiting = set(), []
        for t in self.study.get_trials(deepcopy=False):
            slot = t.user_attrs.get("slot")
            if slot is None or interrupted(t):
                continue
            if t.state == TrialState.WAITING:
                waiting.append(slot)
            taken.add(slot)
        return taken, waiting

    @property
    def remaining(self) -> int:
        """Slots of the budget not used up yet (waiting and running trials count as not done)."""
        from optuna.trial import TrialState

        done = {
            t.user_attrs.get("slot")
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
            if not interrupted(t)
        }
        return sum(1 for s in range(self.trials) if s not in done)

    def ask(self) -> tuple[int, Cell] | None:
        """The next trial of the budget as (trial number, its run); None when every slot is taken."""
        taken, waiting = self._slots()
        free = [s for s in range(self.trials) if s not in taken]
        if not waiting and not free:
            return None
        slot = waiting[0] if waiting else free[0]
        self.study.sampler = _tpe(self.seed, slot, self.startup)
        trial = self.study.ask()
        slot = int(trial.user_attrs.get("slot", slot))
        trial.set_user_attr("slot", slot)
        trial.set_user_attr("seed", TUNING_SEED_BASE + slot)
        params = self.row.suggest(trial, self.space)
        self.live[trial.number] = trial
        cell = self.row.cell(self.world, params, self.space, TUNING_SEED_BASE + slot, group=self.row.spec)
        return trial.number, cell

    def ask_generation(self) -> list[tuple[int, Cell]]:
        """Up to ``batch`` trials, asked together (each sees the others as running)."""
        out = []
        for _ in range(self.batch):
            if self.remaining - len(self.live) <= 0:
                break
            asked = self.ask()
            if asked is None:
                break
            out.append(asked)
        return out

    def tell(self, number: int, outcome: dict[str, Any] | BaseException) -> None:
        """Record a finished trial: its value and timing, or the error it raised (FAIL, slot used up)."""
        from optuna.trial import TrialState

        trial = self.live.pop(number)
        if isinstance(outcome, BaseException):
            trial.set_user_attr("error", f"{type(outcome).__name__}: {outcome}"[:500])
            self.study.tell(trial, state=TrialState.FAIL)
            return
        for key, value in outcome.items():
            if key != "value":
                trial.set_user_attr(key, value)
        value = outcome["value"]
        if not math.isfinite(value):
            trial.set_user_attr("error", f"non-finite validation score {value}")
            self.study.tell(trial, state=TrialState.FAIL)
            return
        self.study.tell(trial, value)


def interrupted(trial: Any) -> bool:
    """A trial cut off by a kill: failed without an error of its own (its slot runs again)."""
    from optuna.trial import TrialState

    return trial.state == TrialState.FAIL and "error" not in trial.user_attrs


@contextlib.contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.tune.lock`` for the run: a second ``dus tune`` on the same folder is refused (POSIX only)."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no advisory locks here: one run per folder is then the user's care
        yield
        return
    with open(out / ".tune.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"another dus tune is running on {out}; wait for it or use another --out") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_studies(
    out: str | Path,
    world: World,
    rows: list[Row],
    space: SharedSpace,
    trials: int,
    seed: int = 0,
    batch: int = 1,
    readonly: bool = False,
) -> list[RowStudy]:
    """Each row's study in ``out`` (made, or loaded and recovered after a kill; ``readonly``: loaded as it is)."""
    if readonly and not (Path(out) / DB_NAME).is_file():
        raise ConfigError(f"no studies in {out} ({DB_NAME} missing); run dus tune there first")
    url = storage_url(out)
    return [RowStudy(url, row, world, space, trials, seed, batch, readonly) for row in rows]


def tune(
    out: str | Path,
    world: World,
    rows: list[Row],
    space: SharedSpace,
    trials: int,
    workers: int | None = None,
    batch: int | None = None,
    seed: int = 0,
    backend: str = "local",
    address: str | None = None,
    progress: bool = True,
    runner: Callable[[Cell], dict[str, Any]] = run_trial,
) -> list[RowStudy]:
    """Run every row's budget of ``trials`` (resuming what ``out`` holds) and return the studies.

    ``workers`` (trials at once) defaults to 1 locally and to the cluster's CPUs with Ray; ``batch`` (trials a row
    asks at once) to ceil(workers / rows). A study keeps the batch it was made with.
    """
    if trials < 1:
        raise ConfigError(f"--trials must be >= 1 (trial 0 is the paper default), got {trials}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    out = Path(out)
    with folder_lock(out), TaskPool(runner, workers or 1, backend, address) as pool:
        workers = workers or pool.capacity
        batch = batch or max(1, math.ceil(workers / len(rows)))
        studies = open_studies(out, world, rows, space, trials, seed, batch)
        bar = tqdm(total=sum(s.remaining for s in studies), disable=not progress, desc="trials")
        first = 0
        while True:
            for i in [*range(first, len(studies)), *range(first)]:  # rows take turns at a free worker
                if len(pool) >= workers:
                    break
                if not studies[i].live:
                    for number, cell in studies[i].ask_generation():
                        pool.submit((i, number), cell)
            first = (first + 1) % len(studies)
            if not len(pool):
                break
            (i, number), outcome = pool.next()
            studies[i].tell(number, outcome)
            bar.update()
        bar.close()
    return studies
