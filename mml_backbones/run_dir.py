"""A run directory: the resolved config, metrics written as they come, the final report and checkpoints.

config.json          resolved configuration, dataset facts, package versions
metrics.csv          one row per epoch, appended and flushed when the epoch ends
decisions.csv        one row per sampler decision (quantities and statistics)
final.json           best epoch, validation and test metrics (written at the end)
checkpoints/last.pt  full trainer state after the latest epoch (resume point)
checkpoints/best.pt  model weights of the best validation epoch
tensorboard/         TensorBoard events (``dus train --tensorboard``)
plots/               ``dus plot`` figures

The rules of a run directory on the command line (``check_run_dir``; ``dus train`` and ``dus train-policy``):
a non-empty ``--out`` is refused unless ``--resume`` continues the run in it or ``--overwrite`` replaces it;
``--resume`` needs ``--out`` and a run there (its config file), whose saved config it then starts from.

Checkpoints hold tensors, numbers, strings, lists and dicts only, and are read with ``torch.load(weights_only=True)``
(``mml_backbones.safe_files``): resuming from a directory one was sent runs no code from it.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mml_backbones.errors import ConfigError, DataError
from mml_backbones.safe_files import load_torch, save_torch

#: how to continue when a resume checkpoint cannot be read
RESTART_HINT = "start the run again without --resume (resume=False), which rewrites this run directory"
#: what ``dus train`` writes in a run directory (``--overwrite`` removes these and nothing else)
RUN_FILES = ("config.json", "metrics.csv", "decisions.csv", "final.json", "checkpoints", "tensorboard", "plots")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON atomically (tmp file, then rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_clean(dict(data)), indent=2, default=_json_default) + "\n")
    tmp.replace(path)


class CsvLog:
    """A CSV file that gets one row at a time, flushed and fsynced, with a header fixed by the first row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if path.is_file() and path.stat().st_size > 0:
            with path.open(newline="") as f:
                self.fields = next(csv.reader(f), None)

    def append(self, row: Mapping[str, Any]) -> None:
        """Append ``row``; keys unseen in the header are added by rewriting the file once."""
        new_keys = [k for k in row if self.fields is None or k not in self.fields]
        if new_keys:
            rows = self.read()
            self.fields = (self.fields or []) + new_keys
            self._rewrite(rows)
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.fields).writerow({k: _cell(row.get(k)) for k in self.fields})
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[dict[str, str]]:
        """All rows as dicts of strings."""
        if not self.path.is_file():
            return []
        with self.path.open(newline="") as f:
            return list(csv.DictReader(f))

    def clear(self) -> None:
        """Remove the file and forget its header (a fresh run in an old directory)."""
        self.path.unlink(missing_ok=True)
        self.fields = None

    def truncate(self, keep: int) -> None:
        """Keep only the first ``keep`` rows (used when resuming from an earlier checkpoint)."""
        rows = self.read()
        if len(rows) > keep:
            self._rewrite(rows[:keep])

    def _rewrite(self, rows: list[Mapping[str, Any]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, self.fields or [])
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in self.fields or []})
        tmp.replace(self.path)


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


class RunDir:
    """Reads and writes the files of one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "checkpoints").mkdir(exist_ok=True)
        self.metrics = CsvLog(self.path / "metrics.csv")
        self.decisions = CsvLog(self.path / "decisions.csv")

    @property
    def last_checkpoint(self) -> Path:
        """Path of the resume checkpoint."""
        return self.path / "checkpoints" / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        """Path of the best-on-validation weights."""
        return self.path / "checkpoints" / "best.pt"

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Write config.json."""
        write_json(self.path / "config.json", config)

    def write_final(self, final: Mapping[str, Any]) -> None:
        """Write final.json."""
        write_json(self.path / "final.json", final)

    def save_checkpoint(self, state: Mapping[str, Any], path: Path) -> None:
        """Save a checkpoint atomically, as plain data (numpy arrays become tensors: ``safe_files.to_plain``)."""
        save_torch(dict(state), path)

    def load_checkpoint(self, path: Path, trust_file: bool = False) -> dict[str, Any]:
        """Load a checkpoint of ``save_checkpoint`` (or of the previous format) as data; DataError when it cannot be.

        ``trust_file`` unpickles it instead (logged): only for a checkpoint one wrote oneself.
        """
        if not path.is_file():
            raise DataError(f"checkpoint not found: {path}")
        state = load_torch(path, f"checkpoint {path}", trust_file=trust_file, legacy_numpy=True, hint=RESTART_HINT)
        if not isinstance(state, dict):
            held = type(state).__name__
            raise DataError(f"cannot read checkpoint {path}: it holds a {held}, not a dict; {RESTART_HINT}")
        return state


def check_run_dir(
    path: Path | None,
    resume: bool,
    overwrite: bool,
    config_name: str = "config.json",
    run_files: Sequence[str] = RUN_FILES,
) -> dict[str, Any] | None:
    """Apply the run-directory rules of the command line; return the saved config when resuming, else None.

    Args:
        path: the ``--out`` directory (None: none given).
        resume: ``--resume``: continue the run in ``path`` (its ``config_name`` must be there).
        overwrite: ``--overwrite``: remove ``run_files`` from ``path`` first (other files stay).
        config_name: the file holding the run's saved config.
        run_files: the files and folders a run writes there.
    """
    if resume and overwrite:
        raise ConfigError("give --resume (continue the run) or --overwrite (replace it), not both")
    if path is None:
        if resume:
            raise ConfigError("--resume needs --out RUN_DIR: the run directory to continue")
        return None
    if resume:
        config = path / config_name
        if not config.is_file():
            what = "does not exist" if not path.exists() else f"holds no run (no {config_name})"
            raise ConfigError(f"nothing to resume: {path} {what}; drop --resume to start a new run there")
        try:
            return json.loads(config.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{config} is not valid JSON ({e}); the run cannot be resumed") from e
    if path.is_file():
        raise ConfigError(f"--out {path} is a file; give a directory")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            present = sorted(p.name for p in path.iterdir())
            shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
            raise ConfigError(
                f"{path} is not empty ({shown}); --resume continues the run in it, --overwrite replaces it, "
                "or choose another --out"
            )
        for name in run_files:
            target = path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    return None
