"""How much the environment adds on top of the training it drives.

Three ways to run the same schedule (same data, seed, quantities, decision interval) under the uniform sampler:

    fit     Trainer.fit(sampler): per-epoch validation and checkpoint selection, final probes and test report
    loop    the bare decision loop the environment performs: Trainer.run_decision + a validation-subset score
    env     DUSEnv.reset + DUSEnv.step until the episode ends

Each is repeated ``--repeats`` times, interleaved, and the median wall time is reported; the ratios
env / fit and env / loop are the overhead figures (the issue's target: env / fit <= 1.05).

    python -m benchmarks.archive_v0.env_overhead --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from dus_env import V0, DUSEnv
from mml_backbones.samplers import UniformSampler
from mml_backbones.trainer import Trainer


def time_fit(env: DUSEnv, seed: int) -> float:
    """Wall time of Trainer.fit over the environment's schedule."""
    t = time.perf_counter()
    Trainer(env.config.trainer_config(seed), splits=env.splits).fit(UniformSampler(), progress=False)
    return time.perf_counter() - t


def time_loop(env: DUSEnv, seed: int) -> float:
    """Wall time of the environment's work done by hand (no Gymnasium layer)."""
    t = time.perf_counter()
    trainer = Trainer(env.config.trainer_config(seed), splits=env.splits)
    sampler = UniformSampler()
    trainer.evaluate("val", max_samples=env.config.trainer.val_max_samples, accuracy_only=True)
    while not trainer.done:
        trainer.run_decision(sampler(trainer.observation()))
        trainer.evaluate("val", max_samples=env.config.trainer.val_max_samples, accuracy_only=True)
        trainer.observation_vector()
    return time.perf_counter() - t


def time_env(env: DUSEnv, seed: int) -> float:
    """Wall time of one environment episode with the uniform action."""
    action = env.mapper.action_for(
        np.full(len(env.modalities), env.config.trainer.batch_size), env.config.trainer.batch_size
    )
    t = time.perf_counter()
    env.reset(seed=seed)
    done = False
    while not done:
        _, _, done, _, _ = env.step(action)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the measurement and print a markdown table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    env = DUSEnv(**V0)  # the v0 world these figures were measured in
    times: dict[str, list[float]] = {"fit": [], "loop": [], "env": []}
    time_env(env, 0)  # warm-up (imports, first allocations)
    for r in range(args.repeats):
        for name, fn in (("fit", time_fit), ("loop", time_loop), ("env", time_env)):
            times[name].append(fn(env, 100 + r))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"dus_env/DUS-v0 schedule: {env.episode_length} decisions, {args.repeats} repeats, {args.threads} thread(s)")
    print("| run | median s | min s | max s |")
    print("|---|---|---|---|")
    for k, v in times.items():
        print(f"| {k} | {med[k]:.3f} | {min(v):.3f} | {max(v):.3f} |")
    print(f"\nenv / fit = {med['env'] / med['fit']:.3f}; env / loop = {med['env'] / med['loop']:.3f}")
    return {"env_over_fit": med["env"] / med["fit"], "env_over_loop": med["env"] / med["loop"]}


if __name__ == "__main__":
    main()
