"""After the search: each row's best configuration and its paper default, retrained on unseen seeds, test scored once.

Both run on the first N downstream seeds (dus_env.seeds, never a tuning seed), so every difference is paired: tuned
against untuned for the same row, and each row against joint-uniform (tuned against tuned, untuned against untuned).
The untuned run is the paper's own configuration (its optimiser and schedule exactly, every knob at its default),
the same run as benchmarks.v1_downstream makes. The best configuration is the completed trial with the highest
validation score (the lower slot on a tie, so the paper default wins ties). Results go to ``OUT/retrain.csv`` as they
finish (``benchmarks.grid``: resumable, local or Ray).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.grid import Cell, run_grid
from benchmarks.tuning.study import RowStudy
from dus_env.seeds import downstream_seeds

TUNED, UNTUNED = "tuned", "untuned"


def best_trial(study: Any) -> Any | None:
    """The completed trial with the highest value (lowest slot on a tie); None before any completed."""
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return None
    return max(done, key=lambda t: (t.value, -t.user_attrs.get("slot", t.number)))


def group(row: str, which: str) -> str:
    """The retrain CSV's group of a row's tuned or untuned runs."""
    return f"{row}|{which}"


def retrain_cells(studies: list[RowStudy], seeds: int) -> list[Cell]:
    """Every row's best and paper-default configurations on the first ``seeds`` downstream seeds."""
    out = []
    for s in studies:
        best = best_trial(s.study)
        for seed in downstream_seeds(seeds):
            if best is not None:
                out.append(s.row.cell(s.world, best.params, s.space, seed, group(s.row.spec, TUNED)))
            out.append(s.row.paper_cell(s.world, seed, group(s.row.spec, UNTUNED)))
    return out


def retrain(
    out: str | Path,
    studies: list[RowStudy],
    seeds: int,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run (or finish) the retraining; the rows of the current best configurations, as a DataFrame."""
    cells = retrain_cells(studies, seeds)
    df = run_grid(
        cells, Path(out) / "retrain.csv", workers=workers, backend=backend, address=address, progress=progress
    )
    return current(df.read(), cells)


def current(df: pd.DataFrame, cells: list[Cell]) -> pd.DataFrame:
    """The rows of ``cells`` only (a longer search may have changed a best configuration since an earlier retrain)."""
    return df[df["key"].isin({c.key for c in cells})].reset_index(drop=True)
