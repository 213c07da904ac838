"""Episodes played in worker processes, each one's rows appended to a CSV as it ends (a re-run resumes)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import pandas as pd

from mml_backbones.run_dir import CsvLog


def play_logged(
    log: CsvLog, rows: list[dict[str, Any]], play: Callable[..., list[dict]], jobs: Sequence[tuple], workers: int
) -> None:
    """Run ``play(*job)`` for every job in ``workers`` processes; append each episode's rows to ``log`` and ``rows``."""
    if not jobs:
        return
    with ProcessPoolExecutor(workers) as pool:
        for f in as_completed([pool.submit(play, *job) for job in jobs]):
            for row in f.result():
                log.append(row)
                rows.append(row)


def numeric_frame(rows: list[dict[str, Any]], text: Sequence[str]) -> pd.DataFrame:
    """``rows`` as a frame whose columns, but the ``text`` ones, are numbers (a CSV reads everything as text)."""
    df = pd.DataFrame(rows)
    for c in df.columns:
        if c not in text:
            df[c] = pd.to_numeric(df[c])
    return df
