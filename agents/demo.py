"""The main job (``make demo`` / ``dus demo``): learn a sampler, then compare it with uniform and heuristic.

1. Train PPO on ``dus_env/DUS-v0`` (synthetic data, strong + weak modality) for a small budget.
2. Score uniform, heuristic and PPO in the environment on held-out seeds (validation return).
3. Plug each into ordinary downstream training runs (``Trainer.fit``, seeds never seen by the agent),
   select on validation, report test accuracy: mean +- std and the paired difference against uniform.
4. Plot each modality's quantity over training for the heuristic and the learned sampler.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import pandas as pd

import dus_env  # noqa: F401
from agents.evaluation import evaluate_downstream, evaluate_in_env, format_mean_std, summarise
from agents.heuristic import HeuristicSampler
from agents.policy_sampler import PolicySampler
from agents.seeds import downstream_seeds, eval_seeds
from agents.training import train_policy
from mml_backbones.samplers import UniformSampler

ENV_ID = "dus_env/DUS-v0"


def plot_quantities(run_root: Path, samplers: list[str], seed: int, path: Path) -> None:
    """Each modality's quantity per decision for the given samplers, from their runs' decisions.csv."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(samplers), figsize=(4.5 * len(samplers), 3.2), sharey=True)
    for ax, name in zip(axes if len(samplers) > 1 else [axes], samplers):
        d = pd.read_csv(run_root / name / f"seed_{seed}" / "decisions.csv")
        for col in [c for c in d if c.startswith("n/")]:
            ax.step(d["iteration"], d[col], where="post", label=col[2:])
        ax.set_title(f"{name} (seed {seed})")
        ax.set_xlabel("iteration")
    (axes[0] if len(samplers) > 1 else axes).set_ylabel("samples per iteration $n_m$")
    (axes[-1] if len(samplers) > 1 else axes).legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_demo(out: Path, timesteps: int = 2048, n_envs: int = 2, seeds: int = 3, progress: bool = True) -> dict:
    """Run the demo and print its tables; returns the tables and the files written."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"[1/3] training PPO on {ENV_ID} for {timesteps} steps with {n_envs} environments ...", flush=True)
    trained = train_policy(ENV_ID, "ppo", timesteps, out / "ppo", n_envs=n_envs, progress_bar=progress)
    t1 = time.perf_counter()
    print(f"      done in {t1 - t0:.0f} s; policy {trained.policy}", flush=True)

    env = gym.make(ENV_ID).unwrapped
    samplers: dict[str, Any] = {
        "uniform": UniformSampler(),
        "heuristic": HeuristicSampler(),
        "ppo": PolicySampler(trained.policy),
    }
    print(f"[2/3] validation return on {len(eval_seeds(4))} held-out environment seeds ...", flush=True)
    env_df = evaluate_in_env(env, samplers, eval_seeds(4))
    env_table = summarise(env_df, "return")
    env_table = env_table.assign(
        **{
            "return (val acc gained, pp)": env_table.apply(lambda r: f"{r['mean']:.2f} ± {r['std']:.2f}", axis=1),
            **{c: env_df.groupby("sampler", sort=False)[c].mean().round(1) for c in env_df if c.startswith("mean_n")},
        }
    )
    cols = ["return (val acc gained, pp)"] + [c for c in env_table if c.startswith("mean_n")]
    print(env_table[cols].to_string(), flush=True)

    config = env.config.trainer_config(seed=0)
    ds_seeds = downstream_seeds(seeds)
    print(f"[3/3] downstream training, {len(ds_seeds)} held-out seeds per sampler, test split ...", flush=True)
    ds_df = evaluate_downstream(config, samplers, ds_seeds, run_root=str(out / "downstream"))
    acc = summarise(ds_df, "test/fused_acc")
    table = pd.DataFrame(
        {
            "test fused acc (%)": format_mean_std(acc),
            "diff vs uniform (pp)": (100 * acc.get("diff_vs_uniform", pd.Series(dtype=float))).round(2),
            "test probe weak (%)": format_mean_std(summarise(ds_df, "test/probe/weak")),
        }
    )
    print(table.fillna("").to_string(), flush=True)
    plot = out / "quantities.png"
    plot_quantities(out / "downstream", ["heuristic", "ppo"], ds_seeds[0], plot)
    env_df.to_csv(out / "env_eval.csv", index=False)
    ds_df.to_csv(out / "downstream.csv", index=False)
    print(f"total {time.perf_counter() - t0:.0f} s", flush=True)
    return {
        "env": env_table,
        "downstream": table,
        "files": {"plot": str(plot), "env_eval": str(out / "env_eval.csv"), "downstream": str(out / "downstream.csv")},
    }
