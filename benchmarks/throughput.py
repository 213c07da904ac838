"""Batched runs on DUS-v1: throughput of K runs trained in lockstep, against the compute bound and SubprocVecEnv.

    K runs     BatchedTrainer with K runs, uniform quantities, training only: run-iterations/s
    env        BatchedDUSEnv(K): environment steps/s and run-iterations/s (agent + reference runs, with the
               validation pass of every step)
    bound      FLOPs per run-iteration counted from the model's Linear shapes (forward + backward = 3 x the
               forward matmuls) over a matmul peak measured in the same process: torch.matmul on the same
               shapes at K x B rows (forward, input-gradient and weight-gradient products)
    memory     peak resident memory (ru_maxrss) of the row's own process (each row runs in a fresh one)
    baseline   SB3 SubprocVecEnv with 2 workers of the ordinary DUSEnv on DUS-v1 (bound: the peaks of 2 one-thread
               processes measured concurrently; memory: the workers' and the parent's summed)

Ratios are what to compare (one run, same machine); absolute numbers depend on the machine's load. The first
release's table (the v0 environment against the raw loop, SubprocVecEnv scaling) is
``python -m benchmarks.archive_v0.throughput``.

    python -m benchmarks.throughput --batched 1,8,32,128 --out benchmarks/results/throughput_batched.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from dus_env import DUSEnv


def main(argv: list[str] | None = None) -> None:
    """Print the batched-runs table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batched", metavar="K,K,...", default="1,8,32,128", help="runs per batch, one row each")
    p.add_argument("--threads", default="1", help="torch threads of the batched rows, e.g. 1,2 (one row each)")
    p.add_argument("--processes", type=int, default=2, help="also K split over this many 1-thread processes")
    p.add_argument("--out", help="also write the batched table (markdown) here")
    p.add_argument("--batched-row", type=int, help=argparse.SUPPRESS)  # one row, in its own process
    p.add_argument("--peak", help=argparse.SUPPRESS)  # JSON [shapes, rows]: one matmul peak, in its own process
    args = p.parse_args(argv)
    if args.peak is not None:
        torch.set_num_threads(1)
        shapes, rows = json.loads(args.peak)
        print(json.dumps(matmul_peak([tuple(x) for x in shapes], rows)))
        return
    if args.batched_row is not None:
        print(json.dumps(batched_row(args.batched_row, int(args.threads))))
        return
    ks, threads = [int(k) for k in args.batched.split(",")], [int(t) for t in args.threads.split(",")]
    table = batched_table(ks, threads, args.processes)
    print(table)
    if args.out:
        Path(args.out).write_text(table)


# ----------------------------------------------------------------------------------------------- batched runs
V1_ID = "dus_env/DUS-v1"


def linear_shapes(params: dict[str, torch.Tensor]) -> list[tuple[int, int]]:
    """(in, out) of every Linear of a StackedModel (weights are stored (K, in, out))."""
    return [tuple(p.shape[1:]) for n, p in params.items() if n.endswith(".weight")]


def iteration_flops(shapes: list[tuple[int, int]], batch_size: int) -> float:
    """FLOPs of one run-iteration with B samples per modality: forward + backward = 3 x the forward matmuls.

    With uniform quantities every Linear (encoders, heads, fusion projections and head) sees B rows.
    """
    return 3.0 * sum(2.0 * batch_size * i * o for i, o in shapes)


def matmul_peak(shapes: list[tuple[int, int]], rows: int, seconds: float = 1.0) -> float:
    """FLOP/s of torch.matmul on the same shapes at ``rows`` rows: x @ W, g @ W^T and x^T @ g of every Linear."""
    mats = []
    for i, o in shapes:
        x, w, g = torch.randn(rows, i), torch.randn(i, o), torch.randn(rows, o)
        mats += [(x, w), (g, w.T.contiguous()), (x.T.contiguous(), g)]
    flops = sum(2.0 * a.shape[0] * a.shape[1] * b.shape[1] for a, b in mats)
    for a, b in mats:  # warm-up
        torch.matmul(a, b)
    reps, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        for a, b in mats:
            torch.matmul(a, b)
        reps += 1
    return reps * flops / (time.perf_counter() - t)


def _time_shares(trainer: object, iterations: int) -> dict[str, float]:
    """Shares of the training loop's self CPU time: batched matmuls, the optimiser step, everything else."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.run_iterations(iterations)
    shares = {"matmul": 0.0, "optimizer": 0.0, "other": 0.0}
    total = 0.0
    for e in prof.key_averages():
        if not e.key.startswith("aten::"):  # the aten ops hold the self time; the rest are wrappers
            continue
        t = e.self_cpu_time_total
        total += t
        kind = "matmul" if e.key in ("aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm") else "other"
        shares["optimizer" if "fused_sgd" in e.key or "fused_adam" in e.key else kind] += t
    return {k: v / max(total, 1e-9) for k, v in shares.items()}


def batched_row(k: int, threads: int) -> dict[str, float]:
    """One row of the batched table, measured in this process (run it in a fresh one for its peak memory)."""
    from dus_env import ENV_IDS
    from dus_env.batched import BatchedDUSEnv
    from mml_backbones.batched_model import BatchedTrainer

    torch.set_num_threads(threads)
    env = BatchedDUSEnv(k, None, **{**ENV_IDS[V1_ID], "num_threads": threads})
    c = env.config
    b, interval = c.trainer.batch_size, c.trainer.decision_interval
    trainer = BatchedTrainer([c.trainer_config(100 + i) for i in range(k)], env.splits)
    shapes = linear_shapes(trainer.model.params)
    flops = iteration_flops(shapes, b)
    peak = matmul_peak(shapes, k * b)
    trainer.decide(np.full((k, len(env.modalities)), b))
    trainer.run_iterations(2)  # warm-up
    n = max(8, 2048 // k)
    t = time.perf_counter()
    trainer.run_iterations(n)
    train_rate = k * n / (time.perf_counter() - t)
    shares = _time_shares(trainer, max(4, 256 // k)) if k == 32 else {}
    del trainer
    env.reset(seed=0)
    action = np.zeros((k, *env.single_action_space.shape), np.float32)  # the uniform equal-budget action
    steps = max(2, min(env.episode_length, 64 // k))
    t = time.perf_counter()
    for _ in range(steps):
        env.step(action)
    dt = time.perf_counter() - t
    runs = k * (2 if c.reference else 1)
    return {
        "k": k,
        "threads": threads,
        "flops": flops,
        "peak": peak,
        "train_rate": train_rate,
        "env_steps": k * steps / dt,
        "env_rate": runs * interval * steps / dt,
        "memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_mib": _proc_mib(os.getpid(), "VmRSS"),
        **{f"share_{key}": v for key, v in shares.items()},
    }


def _proc_mib(pid: int, field: str = "VmHWM") -> float:
    """A memory field of a process's /proc status (VmHWM: peak resident, VmRSS: resident now), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def subproc_row(workers: int = 2, steps: int = 12) -> dict[str, float]:
    """SubprocVecEnv of ``workers`` ordinary DUS-v1 environments (one torch thread each), as a table row."""
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from dus_env import ENV_IDS

    torch.set_num_threads(1)
    probe = gym.make(V1_ID).unwrapped
    c = probe.config
    b, interval = c.trainer.batch_size, c.trainer.decision_interval
    probe.reset(seed=0)
    shapes = [(m.in_features, m.out_features) for m in probe.trainer.model.modules() if isinstance(m, torch.nn.Linear)]
    del probe
    # the bound of `workers` one-thread processes, measured as they would run: concurrently, B rows each
    cmd = [sys.executable, "-m", "benchmarks.throughput", "--peak", json.dumps([shapes, b])]
    root = Path(__file__).resolve().parents[1]
    running = [subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    peak = sum(json.loads(p.communicate()[0]) for p in running)
    venv = make_vec_env(partial(DUSEnv, **ENV_IDS[V1_ID]), n_envs=workers, seed=0, vec_env_cls=SubprocVecEnv)
    venv.reset()
    action = np.zeros((workers, *venv.action_space.shape), np.float32)  # the uniform equal-budget action
    venv.step(action)  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        venv.step(action)
    dt = time.perf_counter() - t
    pids = [p.pid for p in venv.processes] + [os.getpid()]
    memory = sum(_proc_mib(pid) for pid in pids)
    rss = sum(_proc_mib(pid, "VmRSS") for pid in pids)
    venv.close()
    runs = workers * (2 if c.reference else 1)
    return {
        "k": workers,
        "threads": 1,
        "flops": iteration_flops(shapes, b),
        "peak": peak,
        "env_steps": workers * steps / dt,
        "env_rate": runs * interval * steps / dt,
        "memory_mib": memory,
        "rss_mib": rss,
    }


def _row_processes(k: int, threads: int, processes: int) -> dict[str, float]:
    """A row measured by ``processes`` concurrent fresh processes of K / processes runs each, summed."""
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "benchmarks.throughput", "--batched-row", str(k // processes), "--threads"]
    running = [
        subprocess.Popen([*cmd, str(threads)], cwd=root, stdout=subprocess.PIPE, text=True) for _ in range(processes)
    ]
    parts = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in running]
    if any(p.returncode for p in running):
        raise RuntimeError(f"a batched row failed: {cmd}")
    row = {key: sum(part[key] for part in parts) for key in ("peak", "train_rate", "env_steps", "env_rate")}
    row.update({key: sum(part[key] for part in parts) for key in ("memory_mib", "rss_mib")})
    return {**parts[0], **row, "k": k, "processes": processes}


def batched_table(ks: list[int], threads: list[int], processes: int = 1) -> str:
    """Measure every row (each batched row in fresh processes) and format the markdown table.

    With ``processes`` > 1, K is also split over that many concurrent 1-thread processes (the way to use several
    cores when intra-op threads stall on a shared machine); their rates, peaks and memory are summed.
    """
    load = os.getloadavg()
    rows = []
    for th in threads:
        for k in ks:
            rows.append(_row_processes(k, th, 1))
            print(f"measured K={k}, {th} thread(s)", file=sys.stderr)
    if processes > 1:
        for k in (k for k in ks if k % processes == 0 and k > processes):
            rows.append(_row_processes(k, 1, processes))
            print(f"measured K={k} as {processes} processes", file=sys.stderr)
    base = subproc_row()
    load_after = os.getloadavg()
    lines = [
        f"# Batched runs: throughput on {V1_ID}",
        "",
        f"`python -m benchmarks.throughput --batched {','.join(map(str, ks))} --threads {','.join(map(str, threads))} "
        f"--processes {processes}`"
        f"; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
        f"1-minute load average {load[0]:.1f} before, {load_after[0]:.1f} after (the machine is shared: compare "
        "ratios within a row, whose rate and matmul peak were measured moments apart).",
        "",
        "Run-iterations: one training iteration of one run (B = 64 per modality). DUS-v1 episodes train the agent's "
        "run and the uniform reference run, so the env columns count 2 runs per environment. Rows 'K (P x K/P)' "
        "split the K environments over P concurrent one-thread processes (rates, matmul peaks and memory summed): "
        "on a shared machine torch's intra-op threads wait for each other, processes do not.",
        "",
        "| K | threads | K runs: run-it/s | of bound | env steps/s | env run-it/s | of bound | peak RSS (MiB) |"
        " RSS after the steps (MiB) | matmul peak (GFLOP/s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        bound = r["peak"] / r["flops"]
        k = f"{r['k']} ({r['processes']} x {r['k'] // r['processes']})" if r["processes"] > 1 else r["k"]
        th = f"{r['threads']} each" if r["processes"] > 1 else r["threads"]
        lines.append(
            f"| {k} | {th} | {r['train_rate']:.0f} | {r['train_rate'] / bound:.0%} | "
            f"{r['env_steps']:.2f} | {r['env_rate']:.0f} | {r['env_rate'] / bound:.0%} | {r['memory_mib']:.0f} | "
            f"{r['rss_mib']:.0f} | {r['peak'] / 1e9:.0f} |"
        )
    bound = base["peak"] / base["flops"]
    lines.append(
        f"| SubprocVecEnv, 2 workers | 1 each | - | - | {base['env_steps']:.2f} | {base['env_rate']:.0f} | "
        f"{base['env_rate'] / bound:.0%} | {base['memory_mib']:.0f} (sum of 3) | {base['rss_mib']:.0f} (sum of 3) | "
        f"{base['peak'] / 1e9:.0f} (2 processes at once) |"
    )
    lines += [
        "",
        f"FLOPs per run-iteration (from the Linear shapes): {rows[0]['flops'] / 1e6:.1f} M. Peak RSS is dominated by "
        "the synthetic loader's Monte Carlo Bayes estimate (about 835 MiB in any process that loads DUS-v1's data); "
        "the RSS after the steps is the footprint of the data, the runs and their optimiser state.",
    ]
    for r in rows:
        if "share_matmul" in r:
            lines.append(
                f"Where the time goes at K = {r['k'] // r['processes']}, {r['threads']} thread(s) (torch.profiler, "
                "self CPU time of "
                f"the training loop): batched matmuls {r['share_matmul']:.0%}, optimiser step "
                f"{r['share_optimizer']:.0%}, everything else {r['share_other']:.0%}."
            )
    for r in rows:
        if r["k"] >= 8:  # the same runs per step on both sides: the ratio of run-iterations/s too
            ratio = r["env_steps"] / base["env_steps"]
            how = f"{r['processes']} processes of 1 thread" if r["processes"] > 1 else f"{r['threads']} thread(s)"
            lines.append(f"K = {r['k']}, {how}: {ratio:.2f}x SubprocVecEnv's environment steps/s.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
