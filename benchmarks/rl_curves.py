"""Learning curves of the v1 policies over agent seeds: the selection-seed return against environment steps.

Reads each run's ``eval/evaluations.npz`` (written by ``dus train-policy``'s evaluation callback on the selection
seeds) for the runs named ``<world>_<algo>`` and ``<world>_<algo>_seed<k>`` under ``results/policies_v1/``, prints
the mean and the spread over agent seeds per evaluation, and draws ``results/rl_curves.png`` (mean, with a band
from the lowest to the highest seed).

    python -m benchmarks.rl_curves
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

RESULTS = Path(__file__).parent / "results"


def curves(root: Path = RESULTS / "policies_v1") -> pd.DataFrame:
    """One row per (run, evaluation): world and algorithm, agent seed, environment steps, mean return."""
    rows = []
    for run in sorted(root.iterdir()):
        ev = run / "eval" / "evaluations.npz"
        m = re.fullmatch(r"(.+?)_([a-z0-9]+?)(?:_seed(\d+))?", run.name)
        if not ev.is_file() or m is None:
            continue
        with np.load(ev) as data:
            for t, r in zip(data["timesteps"], data["results"]):
                rows.append({"world": m[1], "algo": m[2], "seed": int(m[3] or 0), "steps": int(t), "return": r.mean()})
    return pd.DataFrame(rows)


def main() -> pd.DataFrame:
    """Print the curves' table and draw the figure."""
    df = curves()
    table = df.groupby(["world", "algo", "steps"])["return"].agg(["mean", "std", "min", "max", "count"]).round(2)
    print(table.to_markdown())
    fig, ax = plt.subplots(figsize=(7, 4))
    for (world, algo), part in df.groupby(["world", "algo"]):
        g = part.groupby("steps")["return"]
        steps = g.mean().index
        ax.plot(steps, g.mean(), marker="o", label=f"{world} {algo} ({part['seed'].nunique()} seeds)")
        ax.fill_between(steps, g.min(), g.max(), alpha=0.2)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="environment steps", ylabel="return on selection seeds (pp over uniform)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "rl_curves.png", dpi=120)
    return df


if __name__ == "__main__":
    main()
