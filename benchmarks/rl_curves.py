"""Learning curves of the v1 policies over agent seeds: the selection-seed return against environment steps.

Reads each run's ``eval/evaluations.npz`` (written by ``dus train-policy``'s evaluation callback on the selection
seeds) for the runs named ``<world>_<algo>[-<variant>][_seed<k>]`` under ``results/policies_v1/`` (see
``benchmarks.rl_scores`` for the variants), prints the mean and the spread over agent seeds per evaluation, and
draws ``results/rl_curves.png``: one panel per world, the mean over agent seeds with a band from the lowest to the
highest seed.

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
    """``DUS-v1_reinforce-learning_seed1`` -> world DUS-v1, algo reinforce, variant learning, seed 1 (else None)."""
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


def best_selection_return(run: Path) -> float:
    """The best mean return on the selection seeds over a run's evaluations (what picked its kept checkpoint)."""
    with np.load(run / "eval" / "evaluations.npz") as data:
        return float(data["results"].mean(axis=1).max())


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
        score = best_selection_return(run)
        if best is None or score > best[0]:
            best = (score, run)
    return None if best is None else best[1]


def _label(algo: str, variant: str) -> str:
    if variant in ("discrepancy", "learning"):
        return f"{algo}, {variant} features"
    return f"{algo}, {variant}" if variant else algo


def panels(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Figure panels: each world's algorithms at their defaults, then each world's variants beside its default."""
    worlds = sorted(df["world"].unique(), key=lambda w: (w != "DUS-v1", w))  # the main world first
    out = {world: df[(df["world"] == world) & (df["variant"] == "")] for world in worlds}
    for world in worlds:
        part = df[df["world"] == world]
        variants = part[part["variant"] != ""]
        for algo in variants["algo"].unique():
            out[f"{world}: {algo} variants"] = part[part["algo"] == algo]
    return out


def main() -> pd.DataFrame:
    """Print the curves' table and draw the figure."""
    df = curves()
    g = df.groupby(["world", "algo", "variant", "steps"])["return"].agg(["mean", "min", "max"])
    steps = g.index.get_level_values("steps")
    g["cell"] = [f"{t}: {r['mean']:.2f} ({r['min']:.2f} to {r['max']:.2f})" for t, r in zip(steps, g.iloc)]
    seeds = df.groupby(["world", "algo", "variant"])["seed"].nunique().rename("agent seeds")
    curve = g.groupby(level=[0, 1, 2])["cell"].agg(", ".join).rename("steps: mean (lowest–highest seed)")
    print(pd.concat([seeds, curve], axis=1).to_markdown())
    shown = panels(df)
    cols = min(3, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4 * rows), sharey=True, squeeze=False)
    for ax, (title, part) in zip(axes.flat, shown.items()):
        for (algo, variant), runs in part.groupby(["algo", "variant"]):
            g = runs.groupby("steps")["return"]
            steps = g.mean().index
            ax.plot(steps, g.mean(), marker="o", label=f"{_label(algo, variant)} ({runs['seed'].nunique()} seeds)")
            ax.fill_between(steps, g.min(), g.max(), alpha=0.2)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(title=title, xlabel="environment steps", ylabel="selection-seed return (pp over uniform)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(shown) :]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(RESULTS / "rl_curves.png", dpi=120)
    return df


if __name__ == "__main__":
    main()
