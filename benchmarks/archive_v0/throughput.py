"""v0: throughput of the environment against the raw training loop, SubprocVecEnv scaling and peak memory.

Measured on the v0 world (``dus_env/DUS-v0``'s settings); the v1 batched-runs table is ``benchmarks/throughput.py``.

    raw loop   Trainer.run_iterations over the environment's schedule (training only): iterations/s
    env        DUSEnv episodes with a fixed action: env steps/s and training iterations/s
    vec envs   SB3 SubprocVecEnv with n_envs = 1, 2, 4: env steps/s summed over environments
    memory     peak resident memory of this process (ru_maxrss) after the single-process runs

Ratios are what to compare (one run, same machine); absolute numbers depend on the machine's load.

    python -m benchmarks.archive_v0.throughput --episodes 3 --n-envs 1,2,4
"""

from __future__ import annotations

import argparse
import resource
import time
from functools import partial

import numpy as np
import torch

from dus_env import V0, DUSEnv


def raw_iterations_per_second(env: DUSEnv, seed: int) -> float:
    """Training iterations per second of the bare Trainer over one episode's schedule."""
    from mml_backbones.trainer import Trainer

    trainer = Trainer(env.config.trainer_config(seed), splits=env.splits)
    b = env.config.trainer.batch_size
    t = time.perf_counter()
    trainer.run_iterations(trainer.total_iterations, [b] * len(env.modalities))
    return trainer.total_iterations / (time.perf_counter() - t)


def env_rates(env: DUSEnv, seed: int) -> tuple[float, float]:
    """(env steps/s, training iterations/s) of one episode with the uniform action."""
    action = env.mapper.action_for(
        np.full(len(env.modalities), env.config.trainer.batch_size), env.config.trainer.batch_size
    )
    env.reset(seed=seed)
    t = time.perf_counter()
    steps, done = 0, False
    while not done:
        _, _, done, _, _ = env.step(action)
        steps += 1
    dt = time.perf_counter() - t
    return steps / dt, env.trainer.total_iterations / dt


def vec_steps_per_second(n_envs: int, steps: int) -> float:
    """Environment steps per second summed over a SubprocVecEnv of ``n_envs`` environments."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    venv = make_vec_env(partial(DUSEnv), n_envs=n_envs, seed=0, vec_env_cls=SubprocVecEnv)
    venv.reset()
    action = np.zeros((n_envs, venv.action_space.shape[0]), np.float32)
    venv.step(action)  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        venv.step(action)
    rate = steps * n_envs / (time.perf_counter() - t)
    venv.close()
    return rate


def main(argv: list[str] | None = None) -> None:
    """Print the throughput tables."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--n-envs", default="1,2,4")
    p.add_argument("--vec-steps", type=int, default=32)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    env = DUSEnv(**V0)  # the v0 world these figures were measured in
    env_rates(env, 0)  # warm-up
    raw = [raw_iterations_per_second(env, 100 + i) for i in range(args.episodes)]
    rates = [env_rates(env, 100 + i) for i in range(args.episodes)]
    steps, its = np.median([r[0] for r in rates]), np.median([r[1] for r in rates])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"dus_env/DUS-v0, {args.episodes} episodes each, 1 torch thread, medians")
    print("| measure | value |\n|---|---|")
    print(f"| raw Trainer iterations/s | {np.median(raw):.0f} |")
    print(f"| env iterations/s (training inside env steps) | {its:.0f} |")
    print(f"| env steps/s | {steps:.2f} |")
    print(f"| env iterations/s ÷ raw iterations/s | {its / np.median(raw):.3f} |")
    print(f"| peak resident memory (MiB) | {peak:.0f} |")
    print("\n| n_envs (SubprocVecEnv) | env steps/s | speed-up |\n|---|---|---|")
    base = None
    for n in (int(x) for x in args.n_envs.split(",")):
        r = vec_steps_per_second(n, args.vec_steps)
        base = base or r
        print(f"| {n} | {r:.2f} | {r / base:.2f} |")


if __name__ == "__main__":
    main()
