"""The learned samplers of the v1 worlds on held-out seeds: algorithms, agent seeds and observation feature sets.

Every run directory under ``results/policies_v1`` named ``<world>_<algo>[-<variant>][_seed<k>]`` (written by
``dus train-policy``) is scored once: its kept checkpoint (``best/best_model.zip``, chosen on the selection seeds
30000+) plays the evaluation seeds 10000..10009 in its own world, and the scores are kept in the run directory as
``eval_policy_best_10000_10.csv`` (the file ``dus eval-policy --csv`` writes). The heuristic (gamma 2, equal
budget) and the world's best constant share from the headroom gate play the same seeds once per world
(``results/policies_v1/references_<world>_10000_10.csv``). With the paired reward the return *is* the final
validation accuracy over the uniform run of the same seed, so uniform needs no episodes of its own.

Variants: ``discrepancy`` (observation: cumulative, ratio, progress; the v0 set) and ``learning`` (speed, loss,
allocation, progress: no discrepancy statistic) ablate the observation; no variant is the v1 observation (all six
features). ``1step`` (SAC with 1-step TD targets, gamma 0.99) and ``alpha1`` (SAC with SB3's defaults: also an
entropy coefficient starting at 1.0) are the SAC settings tried before the current default.

    python -m benchmarks.rl_scores      # score what is not scored yet; write results/rl_scores.csv; print tables
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.report import paired_difference
from benchmarks.rl_curves import RESULTS, best_selection_return, parse_run
from benchmarks.v1_downstream import best_share

RUNS = RESULTS / "policies_v1"
SEEDS = (10000, 10)
METRIC = "final_val_acc"


def _env(world: str) -> Any:
    import gymnasium as gym

    import dus_env  # noqa: F401 - registers the ids

    return gym.make(f"dus_env/{world}").unwrapped


def references(world: str, env: Any, root: Path = RUNS, seeds: tuple[int, int] = SEEDS) -> pd.DataFrame:
    """The heuristic's and the best constant share's episodes on the evaluation seeds (computed once, then read)."""
    from agents.evaluation import evaluate_in_env
    from agents.heuristic import HeuristicSampler
    from mml_backbones.samplers import make_sampler

    path = root / f"references_{world}_{seeds[0]}_{seeds[1]}.csv"
    if path.is_file():
        return pd.read_csv(path)
    samplers: dict[str, Any] = {"heuristic": HeuristicSampler(2.0, "equal")}
    share = best_share(f"dus_env/{world}")
    if share is not None:
        samplers["best share"] = make_sampler(share)
    df = evaluate_in_env(env, samplers, range(seeds[0], seeds[0] + seeds[1]), progress=True)
    df["spec"] = df["sampler"].map({"heuristic": "heuristic:gamma=2,budget=equal", "best share": share})
    df.to_csv(path, index=False)
    return df


def policy_scores(run: Path, env: Any, seeds: tuple[int, int] = SEEDS) -> pd.DataFrame:
    """The run's kept checkpoint on the evaluation seeds (computed once, then read)."""
    from agents.evaluation import evaluate_in_env
    from agents.policy_sampler import PolicySampler

    path = run / f"eval_policy_best_{seeds[0]}_{seeds[1]}.csv"
    policy = PolicySampler(run / "best" / "best_model.zip")
    algo = policy.metadata["algo"]
    if not path.is_file():
        evaluate_in_env(env, {algo: policy}, range(seeds[0], seeds[0] + seeds[1]), progress=True).to_csv(
            path, index=False
        )
    df = pd.read_csv(path)
    return df[df["sampler"] == algo].assign(sampler="policy")


def wall_seconds(run: Path) -> float:
    """Training wall time in seconds over all segments (``timing.json``), NaN when not recorded."""
    path = run / "timing.json"
    if not path.is_file():
        return float("nan")
    return float(sum(s["seconds"] for s in json.loads(path.read_text())))


def _steps(run: Path) -> int:
    with np.load(run / "eval" / "evaluations.npz") as ev:
        return int(ev["timesteps"][-1])


def _ci(d: dict[str, float]) -> str:
    return f"{100 * d['mean']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]"


def score_runs(root: Path = RUNS, seeds: tuple[int, int] = SEEDS) -> pd.DataFrame:
    """One row per run: what it is, its cost, and its paired differences on the evaluation seeds."""
    rows: list[dict[str, Any]] = []
    runs = [(r, parse_run(r.name)) for r in sorted(root.iterdir()) if (r / "best" / "best_model.zip").is_file()]
    for world in sorted({p["world"] for _, p in runs if p is not None}):
        env = _env(world)
        refs = references(world, env, root, seeds)
        for run, parsed in runs:
            if parsed is None or parsed["world"] != world:
                continue
            pol = policy_scores(run, env, seeds)
            # the uniform reference run of each episode is the paired reward's own: same seeds, same start
            uniform = pol.assign(sampler="uniform", final_val_acc=pol["final_reference_val_acc"])
            both = pd.concat([pol, refs, uniform])
            row: dict[str, Any] = {"run": run.name, **parsed, "steps": _steps(run), "wall_s": wall_seconds(run)}
            row["best_selection_return"] = round(best_selection_return(run), 2)
            for ref in ("uniform", "heuristic", "best share"):
                if ref in set(both["sampler"]):
                    d = paired_difference(both, METRIC, "policy", ref, by="sampler")
                    key = "vs_" + ref.replace(" ", "_")
                    row.update({key: d["mean"], key + "_ci": _ci(d)})
            means = {c.split("/", 1)[1]: pol[c].mean() for c in pol if c.startswith("mean_n/") and pol[c].notna().all()}
            row["mean n"] = " / ".join(f"{m} {n:.1f}" for m, n in means.items())
            rows.append(row)
    return pd.DataFrame(rows)


def over_seeds(df: pd.DataFrame) -> pd.DataFrame:
    """Per (world, algo, variant): mean and SD over agent seeds of the paired differences, in points."""
    g = df.groupby(["world", "algo", "variant"], sort=False)
    out = pd.DataFrame(
        {
            "agent seeds": g.size(),
            "steps": g["steps"].max(),
            "wall (min, per seed)": (g["wall_s"].mean() / 60).round(0),
        }
    )
    for c in (c for c in ("vs_uniform", "vs_heuristic", "vs_best_share") if c in df):
        mean, sd = 100 * g[c].mean(), 100 * g[c].std(ddof=1)
        out[c + " (pp)"] = [f"{m:+.2f} ± {s:.2f}" if np.isfinite(s) else f"{m:+.2f}" for m, s in zip(mean, sd)]
    # the agent seed is picked on the selection seeds (its best selection-seed return), never on the evaluation
    # seeds that then score it
    out["selected agent seed vs heuristic"] = g.apply(
        lambda p: p.loc[p["best_selection_return"].idxmax(), "vs_heuristic_ci"]
    )
    return out


def main() -> pd.DataFrame:
    """Score every run not scored yet, write ``results/rl_scores.csv`` and print the per-run and per-seed tables."""
    df = score_runs()
    df.to_csv(RESULTS / "rl_scores.csv", index=False)
    shown = df.drop(columns=[c for c in ("vs_uniform", "vs_heuristic", "vs_best_share") if c in df])
    print(shown.to_markdown(index=False))
    print()
    print(over_seeds(df).to_markdown())
    return df


if __name__ == "__main__":
    main()
