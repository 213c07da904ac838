"""Learning curves of the v1 policies over agent seeds: the selection-seed return against environment steps.

Reads each run's ``eval/evaluations.npz`` (written by ``dus train-policy``'s evaluation callback on the selection
seeds) for the runs named ``<world>_<algo>[-<variant>][_seed<k>]`` under ``results/policies_v1/`` (see
``benchmarks.rl_scores`` for the variants), prints the mean and the spread over agent seeds per evaluation, and
draws ``results/rl_curves.png``: one panel per world, the mean over agent seeds with a band from the lowest to the
highest seed. A run resumed to more steps (variant ``long``) stands for its shorter original in the figure.

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
RUN_NAME = re.compile(r"(?P<world>.+?-v\d+)_(?P<algo>[a-z0-9]+)(?:-(?P<variant>[a-z0-9]+))?(?:_seed(?P<seed>\d+))?")


def parse_run(name: str) -> dict[str, str | int] | None:
    """``DUS-v1_ppo-long_seed2`` -> world DUS-v1, algo ppo, variant long, seed 2 (None for other names)."""
    m = RUN_NAME.fullmatch(name)
    if m is None:
        return None
    return {"world": m["world"], "algo": m["algo"], "variant": m["variant"] or "", "seed": int(m["seed"] or 0)}


def curves(root: Path = RESULTS / "policies_v1") -> pd.DataFrame:
    """One row per (run, evaluation): world and algorithm, agent seed, environment steps, mean return."""
    rows = []
    for run in sorted(root.iterdir()):
        ev = run / "eval" / "evaluations.npz"
        parsed = parse_run(run.name)
        if not ev.is_file() or parsed is None:
            continue
        with np.load(ev) as data:
            for t, r in zip(data["timesteps"], data["results"]):
                rows.append({**parsed, "steps": int(t), "return": r.mean()})
    return pd.DataFrame(rows)


def kept_run(world: str, algo: str, variant: str = "", root: Path = RESULTS / "policies_v1") -> Path | None:
    """Of the agent seeds of (world, algo, variant), the run whose kept checkpoint did best on the selection seeds.

    This is how one policy per algorithm is chosen for the downstream tables: on the selection seeds 30000+, never
    on the evaluation or downstream seeds that then score it. None when no such run has been evaluated.
    """
    best: tuple[float, Path] | None = None
    for run in sorted(root.iterdir()) if root.is_dir() else []:
        parsed, ev = parse_run(run.name), run / "eval" / "evaluations.npz"
        if parsed is None or (parsed["world"], parsed["algo"], parsed["variant"]) != (world, algo, variant):
            continue
        if not ev.is_file() or not (run / "best" / "best_model.zip").is_file():
            continue
        with np.load(ev) as data:
            score = float(data["results"].mean(axis=1).max())
        if best is None or score > best[0]:
            best = (score, run)
    return None if best is None else best[1]


def _label(algo: str, variant: str) -> str:
    return algo + (f" ({variant} features)" if variant in ("discrepancy", "learning") else "")


def main() -> pd.DataFrame:
    """Print the curves' table and draw the figure."""
    df = curves()
    keys = ["world", "algo", "variant", "steps"]
    table = df.groupby(keys)["return"].agg(["mean", "std", "min", "max", "count"]).round(2)
    print(table.to_markdown())
    longs = {(w, a) for w, a, v in df[["world", "algo", "variant"]].itertuples(index=False) if v == "long"}
    shown = df[~df.apply(lambda r: r["variant"] == "" and (r["world"], r["algo"]) in longs, axis=1)]
    worlds = sorted(shown["world"].unique())
    fig, axes = plt.subplots(1, len(worlds), figsize=(5 * len(worlds), 4), sharey=True, squeeze=False)
    for ax, world in zip(axes[0], worlds):
        for (algo, variant), part in shown[shown["world"] == world].groupby(["algo", "variant"]):
            g = part.groupby("steps")["return"]
            steps = g.mean().index
            ax.plot(steps, g.mean(), marker="o", label=f"{_label(algo, variant)}, {part['seed'].nunique()} seeds")
            ax.fill_between(steps, g.min(), g.max(), alpha=0.2)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(title=world, xlabel="environment steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set(ylabel="return on selection seeds (pp over uniform)")
    fig.tight_layout()
    fig.savefig(RESULTS / "rl_curves.png", dpi=120)
    return df


if __name__ == "__main__":
    main()
