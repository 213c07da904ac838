"""The instance-set figure: per-instance gain over uniform, and the normalised interquartile mean per sampler."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from agents.family_stats import interval, iqm, mean, oracle_gains, paired_runs, runs_of
from agents.oracle import Oracle


def plot_family(df: pd.DataFrame, oracles: Mapping[str, Oracle], path: str | Path, reps: int = 2000) -> Path:
    """Save the figure: left, each group's mean gain per instance (95% bootstrap bars); right, normalised IQM."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paired = paired_runs(df)
    groups = list(paired["group"].unique())
    instances = list(paired["instance"].unique())
    norm = oracle_gains(paired, oracles)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / len(groups)
    for j, g in enumerate(groups):
        runs = runs_of(paired, g)
        stats = [interval({k: runs[k]}, mean, reps // 4) for k in instances if k in runs]
        xs = [i + (j - (len(groups) - 1) / 2) * width for i, k in enumerate(instances) if k in runs]
        means = np.array([s[0] for s in stats])
        err = np.array([[s[0] - s[1], s[2] - s[0]] for s in stats]).T
        ax.bar(xs, means, width, yerr=err, capsize=2, label=g)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(instances)), instances, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("kept validation score - uniform (points)")
    ax.legend(fontsize=7, ncol=2)
    rows = [(g, interval(runs_of(paired, g, norm), iqm, reps)) for g in groups if runs_of(paired, g, norm)]
    for i, (_, (m, lo, hi)) in enumerate(rows):
        bx.errorbar(m, i, xerr=[[m - lo], [hi - m]], fmt="o", capsize=3)
    bx.axvline(0, color="k", lw=0.8)
    bx.axvline(1, color="grey", lw=0.8, ls="--")
    bx.set_yticks(range(len(rows)), [g for g, _ in rows], fontsize=8)
    bx.set_xlabel("normalised IQM (oracle = 1)")
    bx.set_title("instances with headroom", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
