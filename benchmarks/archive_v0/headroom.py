"""v0: how much room is there for any sampler to beat uniform? Fixed and two-phase schedules as probes.

Before asking whether an RL agent learns a good sampler, check whether good samplers exist: run the environment
with simple hand-written schedules — constant allocations that favour one modality, more (or fewer) samples for
the weak modality in the first or second half of training, and the heuristic rule — and compare the final
validation accuracy with uniform sampling on the same seeds (paired). If none of these beats uniform by more
than the noise, a learned policy has little to find. Every episode is appended to
``results/headroom.csv`` as it finishes; a re-run skips finished ones.

    python -m benchmarks.archive_v0.headroom --seeds 6
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from benchmarks.grid import ResultsCsv
from benchmarks.report import paired_difference

RESULTS = Path(__file__).parent / "results"

CONFIGS: dict[str, dict[str, Any]] = {
    "mild, joint": {},
    "strong, joint": {"dataset_options": {"preset": "strong"}},
    "mild, ogm_ge": {"method": "ogm_ge"},
    "mild, joint, unimodal weight 0.25": {"method_options": {"unimodal_weight": 0.25}},
    "mild, 20k train, 2 epochs": {"dataset_options": {"preset": "mild", "n_train": 20000}, "epochs": 2},
}


def schedules() -> dict[str, Callable]:
    """Schedule name -> sampler, for the two modalities (strong, weak) at B = 64."""
    from agents.heuristic import HeuristicSampler

    def const(strong: int, weak: int) -> Callable:
        return lambda o: {"strong": strong, "weak": weak}

    def phase(first: tuple[int, int], second: tuple[int, int]) -> Callable:
        return lambda o: dict(zip(("strong", "weak"), first if o.progress < 0.5 else second))

    return {
        "uniform 64/64": const(64, 64),
        "weak favoured 48/96": const(48, 96),
        "strong favoured 96/48": const(96, 48),
        "fewer samples 32/64": const(32, 64),
        "less weak 64/32": const(64, 32),
        "weak x2 first half": phase((64, 128), (64, 64)),
        "weak x2 second half": phase((64, 64), (64, 128)),
        "weak /4 second half": phase((64, 64), (64, 16)),
        "heuristic gamma 1": HeuristicSampler(1.0, budget="free"),  # v0: a free budget
        "heuristic gamma 2": HeuristicSampler(2.0, budget="free"),
    }


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Run (or finish) the probes and print the paired differences to uniform."""
    from agents.evaluation import run_episode
    from agents.seeds import eval_seeds
    from dus_env import V0, DUSEnv

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=6)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = ResultsCsv(RESULTS / "headroom.csv")
    done = set(out.read()["key"])
    seeds = eval_seeds(args.seeds)
    for config, overrides in CONFIGS.items():
        env = None
        for name, sampler in schedules().items():
            for seed in seeds:
                key = f"{config}|{name}|{seed}"
                if key in done:
                    continue
                env = env or DUSEnv(**{**V0, **overrides, "val_max_samples": None})
                ep = run_episode(env, sampler, seed)
                out.append(
                    {"key": key, "config": config, "group": name, "seed": seed, "final_val_acc": ep.final_val_acc}
                )
    df = out.read()
    rows = []
    for config in CONFIGS:
        part = df[df["config"] == config]
        for name in schedules():
            d = paired_difference(part, "final_val_acc", name, "uniform 64/64")
            rows.append(
                {
                    "setting": config,
                    "schedule": name,
                    "final val acc (%)": f"{100 * part[part['group'] == name]['final_val_acc'].mean():.2f}",
                    "Δ vs uniform (pp, 95% CI)": ""
                    if name.startswith("uniform")
                    else f"{100 * d['mean']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]",
                }
            )
    table = pd.DataFrame(rows)
    print(f"final validation accuracy after one episode, {args.seeds} held-out seeds (paired)\n")
    print(table.to_markdown(index=False))
    return table


if __name__ == "__main__":
    main()
