"""Every instance's oracle: the gate's core probes on each instance of a set, paired, on the gate seeds.

    python -m benchmarks.family_oracle --set two_modal --seeds 6 --workers 2

One task per (instance, seed) runs uniform, every constant share and the heuristic (gamma 2) on that seed
(``agents.oracle.run_instance``) in local worker processes (one torch thread each); each episode is appended to
``results/family_oracle.csv`` as its task finishes and a re-run skips the episodes already there. At the end it
writes the set's oracle cache beside the set (``dus_env/instances/<set>.oracle.json``) and
``results/family_oracle.md``: the oracle table (oracle share, its gain over uniform with interval, headroom, the
heuristic on the same seeds) and each instance's run time (one episode, wall and CPU seconds).
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd

RESULTS = Path(__file__).parent / "results"


def _task(instance_set: str, name: str, seed: int, done: set[tuple[str, int]]) -> list[dict[str, Any]]:
    import torch

    from agents.oracle import run_instance

    torch.set_num_threads(1)
    return run_instance(instance_set, name, [seed], done)


def run_oracles(instance_set: str, seeds: int, csv: Path, workers: int = 2) -> pd.DataFrame:
    """Run (or finish) every instance's probes on the first ``seeds`` gate seeds; the episodes as a DataFrame."""
    from agents.headroom import numeric_rows
    from dus_env.family import load_instance_set
    from dus_env.seeds import gate_seeds
    from mml_backbones.run_dir import CsvLog

    s = load_instance_set(instance_set)
    log = CsvLog(csv)
    rows = [r for r in log.read() if r.get("instance_set") == s.name]
    done = {(r["instance"], r["schedule"], int(r["seed"])) for r in rows}
    tasks = [(i.name, seed) for seed in gate_seeds(seeds) for i in s.instances]  # every instance gets seeds early
    mine = {t: {(sched, t[1]) for (inst, sched, sd) in done if inst == t[0] and sd == t[1]} for t in tasks}
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(_task, instance_set, name, seed, mine[(name, seed)]) for name, seed in tasks]
        for f in as_completed(futures):
            for row in f.result():
                log.append(row)
                rows.append(row)
    return numeric_rows(rows, gate_seeds(seeds))


def timing_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per instance: one episode's wall and CPU seconds (mean over its episodes)."""
    t = df.groupby("instance", sort=False)[["seconds", "cpu_seconds"]].mean().round(2)
    return t.rename(columns={"seconds": "wall s / run", "cpu_seconds": "CPU s / run"})


def main(argv: list[str] | None = None) -> None:
    """Compute, cache and report the oracles of a set."""
    from agents.oracle import oracle_table, oracles_of, write_oracles
    from benchmarks.report import publish

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", default="two_modal", help="a shipped instance set's name or a .json path")
    p.add_argument("--seeds", type=int, default=6, help="gate seeds 40000... per instance")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--csv", default=str(RESULTS / "family_oracle.csv"))
    p.add_argument("--md", default=str(RESULTS / "family_oracle.md"))
    args = p.parse_args(argv)
    df = run_oracles(args.set, args.seeds, Path(args.csv), args.workers)
    oracles = oracles_of(df, args.set)
    cache = write_oracles(oracles, args.set)
    table = oracle_table(oracles).join(timing_table(df))
    publish(
        args.md,
        f"Oracles of instance set {args.set!r} ({args.seeds} gate seeds each; cache: {cache.name})",
        table.to_markdown(),
    )


if __name__ == "__main__":
    main()
