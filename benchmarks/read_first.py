"""What a sampler that must first read the run can reach: uniform for the first k decisions, the oracle's share after.

    python -m benchmarks.read_first --split test --seeds 10000:10 --delays 1,2,3,4 \
        --references benchmarks/results/family_scores.csv --workers 2

An instance's oracle (``agents.oracle``) is a constant share played from the first iteration. A generalist does
not know the instance: it has to read the run before it can favour anything (the family's identifiability is
0.55 after one decision, 0.78 after four: ``benchmarks.family_identifiability``). This benchmark plays the
oracle's own share after k uniform decisions, on every instance of the split and on the same evaluation seeds as
``benchmarks.family``. It is an upper bound on a sampler that reads k decisions and then knows the answer
exactly, and it is scored the way a generalist is: normalised interquartile mean, mean gain and regret, with the
stratified bootstrap intervals of ``agents.family_stats``. If the bound misses a target at the k a run needs to
be read, no sampler that reads the run can meet it.

Uniform and oracle episodes already on record (``--references``, e.g. ``results/family_scores.csv``) are copied
for the same instances, split and seeds, since they are the same episodes; whatever is missing is played. Rows
are appended to ``--csv`` as each (instance, sampler) finishes; a re-run skips them.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mml_backbones.observation import DiscrepancyObservation

RESULTS = Path(__file__).parent / "results"


@dataclass
class ReadFirst:
    """Uniform (``batch_size`` each) for an episode's first ``k`` decisions, ``quantities`` from then on."""

    quantities: Mapping[str, int]
    batch_size: int
    k: int
    _decisions: int = field(default=0, repr=False)

    def __call__(self, observation: DiscrepancyObservation) -> dict[str, int]:
        """The quantities for this decision (an observation at iteration 0 starts a new episode)."""
        if observation.iteration == 0:
            self._decisions = 0
        self._decisions += 1
        if self._decisions <= self.k:
            return dict.fromkeys(self.quantities, self.batch_size)
        return dict(self.quantities)


def sampler_name(k: int) -> str:
    """The row label of delay ``k`` (0 is the oracle itself)."""
    return "oracle" if k == 0 else f"oracle after {k}"


def play(instance_set: str, name: str, split: str, k: int | None, seeds: list[int]) -> list[dict[str, Any]]:
    """The episodes of one instance: uniform (``k`` None) or the oracle share after ``k`` uniform decisions."""
    import torch

    from agents.family_eval import UNIFORM, PerInstance, evaluate_instances
    from agents.oracle import load_oracles

    torch.set_num_threads(1)
    q = load_oracles(instance_set)[name].quantities
    if k is None:
        samplers: dict[str, Any] = {UNIFORM: UNIFORM}
    else:
        samplers = {sampler_name(k): PerInstance(lambda mods, b: ReadFirst(q, b, k))}
    df = evaluate_instances(samplers, instance_set, split, seeds, names=[name], uniform=False)
    return df.to_dict("records")


def references(path: Path, split: str, seeds: list[int], names: list[str]) -> list[dict[str, Any]]:
    """The uniform and oracle rows of ``path`` for these instances, split and seeds."""
    if not path.is_file():
        return []
    df = pd.read_csv(path)
    keep = df["sampler"].isin(["uniform", "oracle"]) & df["seed"].isin(seeds)
    keep &= (df["split"] == split) & df["instance"].isin(names)
    return df[keep].to_dict("records")


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Play (or finish) the read-first bound on a split's instances; write the CSV and the report."""
    from agents.episode_log import numeric_frame, play_logged
    from agents.family_eval import instance_scores
    from agents.family_stats import aggregate
    from agents.oracle import load_oracles
    from benchmarks.family import score_sections
    from benchmarks.report import publish
    from dus_env.family import load_instance_set
    from dus_env.seeds import parse_seed_span
    from mml_backbones.errors import ConfigError
    from mml_backbones.run_dir import CsvLog

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", default="two_modal")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--seeds", default="10000:10", help="START:COUNT (evaluation seeds)")
    p.add_argument("--delays", default="1,2,3,4", help="comma-separated k: uniform decisions before the oracle share")
    p.add_argument("--references", default="", help="a CSV whose uniform and oracle rows are these episodes")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--csv", default=str(RESULTS / "read_first.csv"))
    p.add_argument("--md", default=str(RESULTS / "read_first.md"))
    args = p.parse_args(argv)
    seeds = parse_seed_span(args.seeds)
    try:
        delays = sorted({int(x) for x in args.delays.split(",") if x.strip()})
    except ValueError:
        raise ConfigError(f"--delays must be comma-separated integers, got {args.delays!r}") from None
    if not delays or min(delays) < 1:
        raise ConfigError(f"--delays must be integers >= 1, got {args.delays!r}")
    oracles = load_oracles(args.set)
    names = load_instance_set(args.set).names(args.split)
    log = CsvLog(Path(args.csv))
    rows: list[dict[str, Any]] = [r for r in log.read() if int(r["seed"]) in seeds and r["split"] == args.split]
    have = {(r["instance"], r["sampler"], int(r["seed"])) for r in rows}
    for r in references(Path(args.references), args.split, seeds, names) if args.references else []:
        if (r["instance"], r["sampler"], int(r["seed"])) not in have:
            log.append(r)
            rows.append(r)
            have.add((r["instance"], r["sampler"], int(r["seed"])))
    jobs = []
    for name in names:
        for k in [None, 0, *delays]:
            label = "uniform" if k is None else sampler_name(k)
            todo = [s for s in seeds if (name, label, s) not in have]
            if todo:
                jobs.append((args.set, name, args.split, k, todo))
    play_logged(log, rows, play, jobs, args.workers)
    df = numeric_frame(rows, ("instance", "split", "sampler"))
    labels = ["oracle", *(sampler_name(k) for k in delays)]
    order = {n: i for i, n in enumerate(["uniform", *labels])}
    df = df[df["sampler"].isin(order)].sort_values("sampler", key=lambda c: c.map(order), kind="stable")
    scores = instance_scores(df, oracles)
    agg = aggregate(df, oracles)
    publish(
        args.md,
        f"Instance set {args.set!r}, {args.split} instances, evaluation seeds {seeds[0]}..{seeds[-1]}: the oracle's "
        "share played after k uniform decisions, kept epoch's validation score paired against uniform (points).",
        *score_sections(scores, agg),
    )
    return agg


if __name__ == "__main__":
    main()
