"""Batched runs: throughput of K runs trained in lockstep on the one core, against the compute bound and baselines.

Batched runs (dus_env.batched on the training core's run axis) on a v1 world, whose episodes also train the uniform
reference run:

    K runs     a Trainer with K runs, uniform quantities, training only: run-iterations/s
    env        BatchedDUSEnv(K): environment steps/s; the work of a whole step (agent and reference runs' training
               and both validation passes) in FLOPs per second, as a fraction of the bound
    bound      FLOPs counted from the model's Linear shapes (training: forward + backward = 3 x the forward
               matmuls at B rows; validation: the forward matmuls over the validation split) over a matmul peak
               measured in the same process: torch.matmul on the same shapes at K x B rows (forward,
               input-gradient and weight-gradient products); rows of P processes sum P peaks measured concurrently
    memory     peak resident memory (ru_maxrss) of the row's own process (each row runs in a fresh one)
    baselines  one ordinary DUSEnv on one thread, and SB3 SubprocVecEnv with 2 workers of it (bound: the peaks of
               2 one-thread processes measured concurrently; memory: the workers' and the parent's summed)

Ratios are what to compare (one run, same machine); absolute numbers depend on the machine's load. The first
release's table (the v0 environment against the raw loop, SubprocVecEnv scaling) is
``python -m benchmarks.archive_v0.throughput``.

    python -m benchmarks.throughput --batched 1,8,32 --out benchmarks/results/throughput_batched.md
    python -m benchmarks.throughput --batched 32 --env dus_env/DUS-HAPT-v1 --out ...

The batched Linear layer against its alternatives on DUS-v1's MLP shapes (``run_stack.py`` quotes it):

    python -m benchmarks.throughput --layers 64
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dus_env import DUSEnv


def main(argv: list[str] | None = None) -> None:
    """Print the batched-runs table (or the batched Linear's comparison)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batched", metavar="K,K,...", default="1,8,32", help="runs per batch, one row each")
    p.add_argument("--threads", default="1", help="torch threads of the batched rows, e.g. 1,2 (one row each)")
    p.add_argument("--processes", type=int, default=2, help="also K split over this many 1-thread processes")
    p.add_argument("--out", help="also write the batched table (markdown) here")
    p.add_argument("--env", default=V1_ID, help="environment id of the batched table")
    p.add_argument("--layers", type=int, metavar="K", help="the batched Linear against its alternatives, K runs")
    p.add_argument("--batched-row", type=int, help=argparse.SUPPRESS)  # one row, in its own process
    p.add_argument("--single-row", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--peak", help=argparse.SUPPRESS)  # JSON [shapes, rows]: one matmul peak, in its own process
    args = p.parse_args(argv)
    if args.peak is not None:
        torch.set_num_threads(1)
        shapes, rows = json.loads(args.peak)
        print(json.dumps(matmul_peak([tuple(x) for x in shapes], rows)))
        return
    if args.batched_row is not None:
        print(json.dumps(batched_row(args.env, args.batched_row, int(args.threads))))
        return
    if args.single_row:
        print(json.dumps(single_row(args.env)))
        return
    if args.layers:
        print(f"DUS-v1 MLP, K = {args.layers} runs, one thread: run-iterations/s (forward, backward, SGD step)")
        for name, rate in layer_rates(args.layers).items():
            print(f"  {name}: {rate:.0f}")
        return
    ks, threads = [int(k) for k in args.batched.split(",")], [int(t) for t in args.threads.split(",")]
    table = batched_table(args.env, ks, threads, args.processes)
    print(table)
    if args.out:
        Path(args.out).write_text(table)


# ----------------------------------------------------------------------------------------------- batched runs
V1_ID = "dus_env/DUS-v1"


def model_linear_shapes(model: torch.nn.Module) -> list[tuple[int, int]]:
    """(in, out) of every Linear layer of a model."""
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]


def iteration_flops(shapes: list[tuple[int, int]], batch_size: int) -> float:
    """FLOPs of one run-iteration with B samples per modality: forward + backward = 3 x the forward matmuls.

    With uniform quantities every Linear (encoders, heads, fusion projections and head) sees B rows.
    """
    return 3.0 * sum(2.0 * batch_size * i * o for i, o in shapes)


def step_flops(shapes: list[tuple[int, int]], runs: int, batch_size: int, interval: int, val_rows: int) -> float:
    """FLOPs of one environment step of ``runs`` runs: their training iterations and one validation pass each."""
    forward_per_row = sum(2.0 * i * o for i, o in shapes)
    return runs * (interval * iteration_flops(shapes, batch_size) + val_rows * forward_per_row)


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


def batched_row(env_id: str, k: int, threads: int) -> dict[str, float]:
    """One row of the batched table, measured in this process (run it in a fresh one for its peak memory)."""
    from dus_env import ENV_IDS
    from dus_env.batched import BatchedDUSEnv
    from mml_backbones.trainer import Trainer

    torch.set_num_threads(threads)
    env = BatchedDUSEnv(k, None, **{**ENV_IDS[env_id], "num_threads": threads})
    c = env.config
    b, interval = c.trainer.batch_size, c.trainer.decision_interval
    trainer = Trainer([c.trainer_config(100 + i) for i in range(k)], env.splits)
    shapes = model_linear_shapes(trainer.runs[0].model)
    peak = matmul_peak(shapes, k * b)
    trainer.decide_each([dict.fromkeys(env.modalities, b)] * k)
    trainer.run_iterations(2)  # warm-up
    n = max(8, 2048 // k)
    t = time.perf_counter()
    trainer.run_iterations(n)
    train_rate = k * n / (time.perf_counter() - t)
    shares = _time_shares(trainer, max(4, 256 // k)) if k == 32 else {}
    del trainer
    env.reset(seed=0)
    action = np.zeros((k, *env.single_action_space.shape), np.float32)  # the uniform equal-budget action
    env.step(action)  # warm-up (the first step also validates at reset)
    steps = max(2, min(env.episode_length - 1, 64 // k))
    t = time.perf_counter()
    for _ in range(steps):
        env.step(action)
    dt = time.perf_counter() - t
    runs = k * (2 if c.reference else 1)
    val_rows = len(env.splits.val) if c.trainer.val_max_samples is None else c.trainer.val_max_samples
    return {
        "env": env_id,
        "k": k,
        "threads": threads,
        "flops": iteration_flops(shapes, b),
        "step_flops": step_flops(shapes, runs, b, interval, val_rows),
        "peak": peak,
        "train_rate": train_rate,
        "env_steps": k * steps / dt,
        "memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_mib": _proc_mib(os.getpid(), "VmRSS"),
        **{f"share_{key}": v for key, v in shares.items()},
    }


def _one_env(env_id: str) -> tuple[Any, list[tuple[int, int]], int, float]:
    """One ordinary DUSEnv on one thread, reset on seed 0: the env, its Linear shapes, B and one step's FLOPs."""
    import gymnasium as gym

    torch.set_num_threads(1)
    env = gym.make(env_id).unwrapped
    c = env.config
    env.reset(seed=0)
    shapes = model_linear_shapes(env.run.model)
    val_rows = len(env.splits.val) if c.trainer.val_max_samples is None else c.trainer.val_max_samples
    b = c.trainer.batch_size
    return env, shapes, b, step_flops(shapes, 2 if c.reference else 1, b, c.trainer.decision_interval, val_rows)


def single_row(env_id: str, steps: int = 6) -> dict[str, float]:
    """One ordinary DUSEnv on one thread: environment steps/s, the same work counted in FLOPs."""
    env, shapes, b, work = _one_env(env_id)
    peak = matmul_peak(shapes, b)
    action = np.zeros(env.action_space.shape, np.float32)
    env.step(action)  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        env.step(action)
    dt = time.perf_counter() - t
    return {
        "env": env_id,
        "k": 1,
        "threads": 1,
        "flops": iteration_flops(shapes, b),
        "step_flops": work,
        "peak": peak,
        "env_steps": steps / dt,
        "memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_mib": _proc_mib(os.getpid(), "VmRSS"),
    }


def _proc_mib(pid: int, field: str = "VmHWM") -> float:
    """A memory field of a process's /proc status (VmHWM: peak resident, VmRSS: resident now), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def subproc_row(env_id: str, workers: int = 2, steps: int = 12) -> dict[str, float]:
    """SubprocVecEnv of ``workers`` ordinary environments (one torch thread each), as a table row."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from dus_env import ENV_IDS

    probe, shapes, b, work = _one_env(env_id)
    del probe
    # the bound of `workers` one-thread processes, measured as they would run: concurrently, B rows each
    cmd = [sys.executable, "-m", "benchmarks.throughput", "--peak", json.dumps([shapes, b])]
    root = Path(__file__).resolve().parents[1]
    running = [subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    peak = sum(json.loads(p.communicate()[0]) for p in running)
    venv = make_vec_env(partial(DUSEnv, **ENV_IDS[env_id]), n_envs=workers, seed=0, vec_env_cls=SubprocVecEnv)
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
    return {
        "env": env_id,
        "k": workers,
        "threads": 1,
        "flops": iteration_flops(shapes, b),
        "step_flops": work,
        "peak": peak,
        "env_steps": workers * steps / dt,
        "memory_mib": memory,
        "rss_mib": rss,
    }


def _fresh(args: list[str]) -> subprocess.Popen:
    root = Path(__file__).resolve().parents[1]
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.throughput", *args], cwd=root, stdout=subprocess.PIPE, text=True
    )


def _row_processes(env_id: str, k: int, threads: int, processes: int) -> dict[str, float]:
    """A row measured by ``processes`` concurrent fresh processes of K / processes runs each, summed."""
    args = ["--batched-row", str(k // processes), "--env", env_id, "--threads", str(threads)]
    running = [_fresh(args) for _ in range(processes)]
    parts = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in running]
    if any(p.returncode for p in running):
        raise RuntimeError(f"a batched row failed: {args}")
    row = {key: sum(part[key] for part in parts) for key in ("peak", "train_rate", "env_steps", "step_flops")}
    row.update({key: sum(part[key] for part in parts) for key in ("memory_mib", "rss_mib")})
    return {**parts[0], **row, "k": k, "processes": processes}


def _single_in_fresh_process(env_id: str) -> dict[str, float]:
    p = _fresh(["--single-row", "--env", env_id])
    return {**json.loads(p.communicate()[0].strip().splitlines()[-1]), "processes": 1}


def batched_table(env_id: str, ks: list[int], threads: list[int], processes: int = 1) -> str:
    """Measure every row (each in fresh processes) and format the markdown table.

    With ``processes`` > 1, K is also split over that many concurrent 1-thread processes (the way to use several
    cores when intra-op threads stall on a shared machine); their rates, peaks and memory are summed.
    """
    load = os.getloadavg()
    single = _single_in_fresh_process(env_id)
    rows = []
    for th in threads:
        for k in ks:
            rows.append(_row_processes(env_id, k, th, 1))
            print(f"measured K={k}, {th} thread(s)", file=sys.stderr)
    if processes > 1:
        for k in (k for k in ks if k % processes == 0 and k > processes):
            rows.append(_row_processes(env_id, k, 1, processes))
            print(f"measured K={k} as {processes} processes", file=sys.stderr)
    base = subproc_row(env_id)
    load_after = os.getloadavg()
    lines = [
        f"# Batched runs: throughput on {env_id}",
        "",
        f"`python -m benchmarks.throughput --env {env_id} --batched {','.join(map(str, ks))} "
        f"--threads {','.join(map(str, threads))} --processes {processes}`"
        f"; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
        f"1-minute load average {load[0]:.1f} before, {load_after[0]:.1f} after (the machine is shared: compare "
        "ratios within a row, whose rate and matmul peak were measured moments apart).",
        "",
        "Run-iterations: one training iteration of one run (B = 64 per modality). v1 episodes train the agent's "
        "run and the uniform reference run; an environment step's work is both runs' training iterations and "
        "both validation passes, counted in FLOPs ('step work'). Rows 'K (P x K/P)' split the K environments over "
        "P concurrent one-thread processes (rates, matmul peaks and memory summed): on a shared machine torch's "
        "intra-op threads wait for each other, processes do not.",
        "",
        "| K | threads | K runs: run-it/s | of bound | env steps/s | vs one env, 1 thread | step work, of bound |"
        " peak RSS (MiB) | RSS after the steps (MiB) | matmul peak (GFLOP/s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    work = single["step_flops"] * single["env_steps"] / single["peak"]
    lines.append(
        f"| one DUSEnv | 1 | - | - | {single['env_steps']:.2f} | 1x | {work:.0%} | {single['memory_mib']:.0f} | "
        f"{single['rss_mib']:.0f} | {single['peak'] / 1e9:.0f} |"
    )
    for r in rows:
        bound = r["peak"] / r["flops"]
        k = f"{r['k']} ({r['processes']} x {r['k'] // r['processes']})" if r["processes"] > 1 else r["k"]
        th = f"{r['threads']} each" if r["processes"] > 1 else r["threads"]
        work = r["step_flops"] / r["k"] * r["env_steps"] / r["peak"]
        lines.append(
            f"| {k} | {th} | {r['train_rate']:.0f} | {r['train_rate'] / bound:.0%} | {r['env_steps']:.2f} | "
            f"{r['env_steps'] / single['env_steps']:.2f}x | {work:.0%} | {r['memory_mib']:.0f} | "
            f"{r['rss_mib']:.0f} | {r['peak'] / 1e9:.0f} |"
        )
    work = base["step_flops"] * base["env_steps"] / base["peak"]
    lines.append(
        f"| SubprocVecEnv, 2 workers | 1 each | - | - | {base['env_steps']:.2f} | "
        f"{base['env_steps'] / single['env_steps']:.2f}x | {work:.0%} | {base['memory_mib']:.0f} (sum of 3) | "
        f"{base['rss_mib']:.0f} (sum of 3) | {base['peak'] / 1e9:.0f} (2 processes at once) |"
    )
    lines += [
        "",
        f"FLOPs per run-iteration (from the Linear shapes): {rows[0]['flops'] / 1e6:.1f} M; per environment step "
        f"(both runs, both validation passes): {single['step_flops'] / 1e9:.2f} G.",
    ]
    for r in rows:
        if "share_matmul" in r:
            lines.append(
                f"Where the training time goes at K = {r['k'] // r['processes']}, {r['threads']} thread(s)"
                + (f" (one of the {r['processes']} processes of row {r['k']}) " if r["processes"] > 1 else " ")
                + "(torch.profiler, self CPU time of the training loop): batched matmuls "
                f"{r['share_matmul']:.0%}, optimiser step {r['share_optimizer']:.0%}, everything else "
                f"{r['share_other']:.0%}."
            )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- the batched Linear
def layer_rates(k: int, iterations: int = 20) -> dict[str, float]:
    """Run-iterations/s of DUS-v1's MLP model trained K at a time four ways (forward, backward, SGD step)."""
    import copy

    import torch.nn.functional as F
    from torch.func import functional_call, vmap

    from dus_env import ENV_IDS
    from mml_backbones.models.layers import vectorised
    from mml_backbones.trainer import Trainer

    torch.set_num_threads(1)
    config = DUSEnv(**ENV_IDS[V1_ID]).config
    runs = Trainer([config.trainer_config(100 + i) for i in range(k)], vectorise=False).runs
    models = [r.model for r in runs]
    data = runs[0].train_data
    b = config.trainer.batch_size
    idx = torch.randint(0, len(data), (k, b))
    inputs = {m: data.modalities[m][idx] for m in runs[0].modalities}
    y = data.labels[idx]

    def loss_of(out: object, yy: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.fused_logits, yy) + sum(F.cross_entropy(v, yy) for v in out.unimodal_logits.values())

    def stacked(transpose: bool) -> dict[str, torch.Tensor]:
        out = {}
        for n, _ in models[0].named_parameters():
            t = torch.stack([m.get_parameter(n).detach() for m in models])
            out[n] = (t.transpose(1, 2).contiguous() if transpose and n.endswith("weight") else t).requires_grad_()
        return out

    results = {}
    base = copy.deepcopy(models[0])
    for name, transpose, custom in (
        ("vmap over F.linear, (K, out, in)", False, False),
        ("vmap over the batched Linear, (K, in, out)", True, True),
    ):
        params = stacked(transpose)
        opt = torch.optim.SGD(list(params.values()), lr=1e-3, momentum=0.9, fused=True)

        def f(p: dict, x: dict, yy: torch.Tensor) -> torch.Tensor:
            return loss_of(functional_call(base, p, (x,), {"n_paired": b}), yy)

        def step(
            params: dict = params, opt: torch.optim.Optimizer = opt, transpose: bool = transpose, custom: bool = custom
        ) -> None:
            view = {n: t.transpose(1, 2) if transpose and n.endswith("weight") else t for n, t in params.items()}
            with vectorised() if custom else contextlib.nullcontext():
                loss = vmap(f)(view, inputs, y).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()

        results[name] = _rate(step, k, iterations)
    opts = [torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9) for m in models]

    def loop() -> None:
        for j, (m, o) in enumerate(zip(models, opts)):
            loss = loss_of(m({mm: x[j] for mm, x in inputs.items()}, n_paired=b), y[j])
            o.zero_grad()
            loss.backward()
            o.step()

    results["one module per run, in a loop"] = _rate(loop, k, iterations)
    return results


def _rate(step: object, k: int, iterations: int) -> float:
    step()
    step()
    t = time.perf_counter()
    for _ in range(iterations):
        step()
    return k * iterations / (time.perf_counter() - t)


if __name__ == "__main__":
    main()
