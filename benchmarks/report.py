"""Tables for RESULTS.md: mean +- std over seeds per group, paired differences with 95% intervals."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from agents.evaluation import paired_difference

__all__ = ["mean_std_table", "paired_difference", "pm", "publish"]


def publish(path: str | Path, *parts: str) -> str:
    """Write a report (``parts``, e.g. a heading line and markdown tables, a blank line apart) and print it."""
    text = "\n\n".join(parts) + "\n"
    Path(path).write_text(text)
    print(text)
    return text


def pm(values: pd.Series, scale: float = 100.0, digits: int = 2) -> str:
    """``mean ± std`` of a series (empty string when it has no values)."""
    v = values.dropna().to_numpy(dtype=float)
    if len(v) == 0:
        return ""
    std = v.std(ddof=1) if len(v) > 1 else 0.0
    return f"{scale * v.mean():.{digits}f} ± {scale * std:.{digits}f}"


def _bayes_of_run(part: pd.DataFrame) -> pd.Series | None:
    """The Bayes accuracy each row can reach: of its own modality set (older rows only know the joint one)."""
    if "bayes/run" in part and part["bayes/run"].notna().all():
        return part["bayes/run"]
    multimodal = "modalities" in part and part["modalities"].astype(str).str.contains(",").all()
    if multimodal and "bayes/all" in part and part["bayes/all"].notna().all():
        return part["bayes/all"]  # a single-modality row is not divided by the joint Bayes accuracy
    return None


def mean_std_table(df: pd.DataFrame, order: Sequence[str] | None = None, by: str = "group") -> pd.DataFrame:
    """Per group: test fused accuracy, each modality's test probe accuracy (all %), s/epoch and seeds."""
    probes = sorted(c for c in df if c.startswith("test/probe/") and df[c].notna().any())
    rows = []
    groups = order or list(dict.fromkeys(df[by]))
    for g in groups:
        part = df[df[by] == g]
        if part.empty:
            continue
        row = {by: g, "test acc (%)": pm(part["test/fused_acc"])}
        for c in probes:
            row[f"probe {c.split('/')[-1]} (%)"] = pm(part[c])
        bayes = _bayes_of_run(part)
        if bayes is not None:
            row["acc / Bayes"] = f"{(part['test/fused_acc'] / bayes).mean():.3f}"
        row["s/epoch"] = f"{part['seconds_per_epoch'].mean():.2f}"
        row["seeds"] = part["seed"].nunique()
        rows.append(row)
    return pd.DataFrame(rows).set_index(by)
