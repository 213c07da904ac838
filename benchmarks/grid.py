"""Running a grid of training runs that survives interruption.

A cell is one ``Trainer.fit`` (dataset, method, modalities, sampler, seed, schedule). Each finished cell is
appended to a CSV at once (one row, flushed); a re-run reads the CSV and skips the cells already there, so an
interrupted grid loses at most the cells in flight. Cells run in local worker processes (one torch thread
each) or, with ``backend="ray"``, as Ray tasks (``ray.init()`` locally or ``address=`` a cluster).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm


@dataclass(frozen=True)
class Cell:
    """One training run of a grid.

    Attributes:
        group: the table row it belongs to (e.g. "concat", "weak alone", "heuristic").
        dataset: dataset name; dataset_options: its loader options.
        method: method name; method_options: its overrides.
        modalities: train on these modalities only (None: all).
        sampler: sampler spec (uniform, heuristic:gamma=2, policy:PATH.zip).
        seed: training seed.
        epochs: epochs of the schedule.
        trainer: further TrainerConfig fields (fusion via model, statistics, batch size, ...).
        run_root: keep the run directory (metrics.csv, decisions.csv, ...) under run_root/<key> (None: none).
    """

    group: str
    dataset: str
    method: str
    seed: int
    epochs: int
    sampler: str = "uniform"
    modalities: tuple[str, ...] | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    method_options: dict[str, Any] = field(default_factory=dict)
    trainer: dict[str, Any] = field(default_factory=dict)
    run_root: str | None = None

    @property
    def key(self) -> str:
        """A stable id of the cell (its settings hashed; where its run directory goes is not a setting)."""
        settings = asdict(self)
        settings.pop("run_root")
        blob = json.dumps(settings, sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


def legacy_trainer_fields(trainer: dict[str, Any]) -> dict[str, Any]:
    """A cell's TrainerConfig fields, with the v0 grids' settings kept as their (stable) keys recorded them.

    Cells that name no optimiser run Adam 1e-3, the optimiser of every grid before the v1 worlds (their keys
    predate paper optimisers); name ``"optim": None`` for the method's paper optimiser. ``max_quantity`` (v0)
    becomes ``bounds.high``.
    """
    out = {"optim": {"name": "adam", "lr": 1e-3}, **trainer}
    if "max_quantity" in out:
        out["bounds"] = {"low": 0.25, "high": out.pop("max_quantity") / out.get("batch_size", 64)}
    return out


def cell_config(cell: Cell) -> Any:
    """The TrainerConfig of one cell."""
    from mml_backbones.config import from_dict
    from mml_backbones.trainer import TrainerConfig

    return from_dict(
        TrainerConfig,
        {
            "dataset": cell.dataset,
            "dataset_options": dict(cell.dataset_options),
            "method": cell.method,
            "method_options": dict(cell.method_options),
            "modalities": cell.modalities,
            "epochs": cell.epochs,
            "seed": cell.seed,
            **legacy_trainer_fields(cell.trainer),
        },
    )


def build_cell(cell: Cell, threads: int = 1, splits: Any = None) -> tuple[Any, Any]:
    """The Trainer and the sampler of one cell (torch limited to ``threads`` CPU threads; ``splits``: data loaded
    already, else the cell's dataset is loaded)."""
    import torch

    from mml_backbones.samplers import make_sampler
    from mml_backbones.trainer import Trainer

    torch.set_num_threads(threads)
    config = cell_config(cell)
    trainer = Trainer(config, splits=splits)
    return trainer, make_sampler(cell.sampler, modalities=trainer.modalities, batch_size=config.batch_size)


def run_cell(cell: Cell, threads: int = 1) -> dict[str, Any]:
    """Train one cell and return its result row (flat: settings, test and val metrics, timing)."""
    trainer, sampler = build_cell(cell, threads)
    start = time.perf_counter()
    run_dir = Path(cell.run_root) / cell.key if cell.run_root else None
    result = trainer.fit(sampler, run_dir=run_dir, progress=False)
    row: dict[str, Any] = {
        "key": cell.key,
        "group": cell.group,
        "dataset": cell.dataset,
        "preset": cell.dataset_options.get("preset", ""),
        "method": cell.method,
        "sampler": cell.sampler,
        "modalities": ",".join(trainer.modalities),
        "seed": cell.seed,
        "epochs": cell.epochs,
        "best_epoch": result.best_epoch,
        "run_dir": str(run_dir) if run_dir else "",
        "seconds": time.perf_counter() - start,
        "seconds_per_epoch": (time.perf_counter() - start) / cell.epochs,
    }
    row.update({f"test/{k}": v for k, v in result.test.items()})
    row.update({f"val/{k}": v for k, v in result.val.items()})
    for m, n in zip(trainer.modalities, trainer.statistics.samples):
        row[f"samples/{m}"] = int(n)
    bayes = trainer.splits.info.get("bayes_accuracy", {})
    if "all" in bayes:
        row["bayes/all"] = bayes["all"]
    # the Bayes accuracy of what this run sees: all modalities, or the one it was restricted to
    subset = "all" if cell.modalities is None else cell.modalities[0] if len(cell.modalities) == 1 else None
    if subset in bayes:
        row["bayes/run"] = bayes[subset]
    return row


class ResultsCsv:
    """The grid's CSV (a ``run_dir.CsvLog``): rows appended and fsynced as cells finish, read as a DataFrame."""

    def __init__(self, path: str | Path) -> None:
        from mml_backbones.run_dir import CsvLog

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.log = CsvLog(self.path)

    def done(self) -> set[str]:
        """Keys of the cells already in the file."""
        return set(self.read()["key"]) if self.path.is_file() else set()

    def read(self):  # -> pd.DataFrame
        """The file as a DataFrame."""
        import pandas as pd

        return pd.read_csv(self.path) if self.path.is_file() else pd.DataFrame({"key": []})

    def append(self, row: dict[str, Any]) -> None:
        """Append one row; a new column rewrites the file once with the widened header."""
        self.log.append(row)


class TaskPool:
    """Runs ``fn(item)`` for submitted items: in this process (one local worker), in local worker processes, or
    as Ray tasks (``ray.init()`` locally, or ``address=`` a cluster such as "auto").

    ``next()`` returns ``(tag, outcome)`` of one finished item, in completion order, where ``outcome`` is the
    result or the ``Exception`` it raised (a KeyboardInterrupt is never caught). One worker runs items in order,
    in this process, when ``next()`` asks for them.
    """

    def __init__(
        self, fn: Callable[[Any], Any], workers: int = 1, backend: str = "local", address: str | None = None
    ) -> None:
        if backend not in ("local", "ray"):
            raise ValueError(f"unknown backend {backend!r}; valid: local, ray")
        self.fn, self.backend, self._workers = fn, backend, max(1, workers)
        self._pending: dict[Any, Any] = {}  # handle -> tag
        self._queue: list[tuple[Any, Any]] = []  # in-process items not run yet
        self._pool: ProcessPoolExecutor | None = None
        self._ray: Any = None
        if backend == "ray":
            self._ray = _init_ray(address)
            self._task = self._ray.remote(num_cpus=1)(fn)
        elif workers > 1:
            self._pool = ProcessPoolExecutor(workers)

    @property
    def capacity(self) -> int:
        """How many items run at once: the local workers, or the CPUs of the Ray cluster."""
        if self._ray is not None:
            return max(1, int(self._ray.cluster_resources().get("CPU", 1)))
        return self._workers

    def __len__(self) -> int:
        """Items submitted and not yet returned by ``next()``."""
        return len(self._pending) + len(self._queue)

    def submit(self, tag: Any, item: Any) -> None:
        """Start ``fn(item)`` (queued in this process for one local worker); ``tag`` comes back with the outcome."""
        if self._ray is not None:
            self._pending[self._task.remote(item)] = tag
        elif self._pool is not None:
            self._pending[self._pool.submit(self.fn, item)] = tag
        else:
            self._queue.append((tag, item))

    def next(self) -> tuple[Any, Any]:
        """Wait for one item to finish: ``(tag, result or the Exception it raised)``."""
        if self._queue:
            tag, item = self._queue.pop(0)
            try:
                return tag, self.fn(item)
            except Exception as e:
                return tag, e
        if self._ray is not None:
            ready, _ = self._ray.wait(list(self._pending), num_returns=1)
            handle = ready[0]
            try:
                outcome = self._ray.get(handle)
            except Exception as e:
                outcome = getattr(e, "cause", None) or e  # the task's own exception, not Ray's wrapper
        else:
            handle = next(as_completed(self._pending))
            exc = handle.exception()
            outcome = exc if exc is not None else handle.result()
        return self._pending.pop(handle), outcome

    def close(self) -> None:
        """Stop the local worker processes (Ray stays up: ``ray.shutdown()`` is the caller's)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def __enter__(self) -> TaskPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _init_ray(address: str | None) -> Any:
    try:
        import ray
    except ImportError as e:
        raise ImportError("the ray backend needs Ray: pip install 'dus[ray]'") from e
    ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    return ray


def run_grid(
    cells: Sequence[Cell],
    csv_path: str | Path,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    progress: bool = True,
    runner: Callable[[Cell], dict[str, Any]] = run_cell,
) -> ResultsCsv:
    """Run every cell not yet in ``csv_path``; each result is appended as soon as it finishes."""
    out = ResultsCsv(csv_path)
    todo = _unique(c for c in cells if c.key not in out.done())
    bar = tqdm(total=len(todo), disable=not progress, desc="cells")
    with TaskPool(runner, workers, backend, address) as pool:
        for cell in todo:
            pool.submit(cell.key, cell)
        while len(pool):
            _, row = pool.next()
            if isinstance(row, Exception):
                raise row
            out.append(row)
            bar.update()
    bar.close()
    return out


def _unique(cells: Iterable[Cell]) -> list[Cell]:
    seen, out = set(), []
    for c in cells:
        if c.key not in seen:
            seen.add(c.key)
            out.append(c)
    return out
