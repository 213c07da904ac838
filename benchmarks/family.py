"""Generalist policies on the instances of a set: per instance, paired against uniform, beside the references.

    python -m benchmarks.family --policies runs/sac/best/best_model.zip --split test --seeds 10000:10

Every policy and every reference plays each instance of the split on the same evaluation seeds (never the gate
seeds the oracles were chosen on), scored by the kept epoch's validation score (``agents.family_eval``):
uniform (the pairing), the heuristic (gamma 2, equal budget), the best single constant share of the train
instances (quantities by modality position, chosen on the train instances' oracle episodes) and the instance's
oracle share. Rows are appended to ``results/family_scores.csv`` per (instance, sampler) as they finish (a re-run
skips them); ``results/family_scores.md`` gets the per-instance table (difference to uniform with its interval,
regret to the oracle, normalised score), the summary over instances, and each policy's mean allocation per
instance (does it read the run, or play one share everywhere?).

A random policy (``random``: a uniformly random action at every decision) is scored beside them. Policies
trained with several agent seeds (run directories ``NAME_seedK``) are grouped: the per-instance table averages
a group's agent seeds on each evaluation seed, and the aggregate table (``agents.family_stats``: normalised
interquartile mean, mean gain and regret, probability of improvement over the heuristic, each with a stratified
bootstrap interval) counts each (agent seed, evaluation seed) as a run. ``results/family_scores.png`` draws both.

``--workers N`` plays N instances at once in N processes; ``--baselines heuristic`` (or ``''``) scores fewer
baselines, e.g. for a selection check on the train instances, where uniform and the oracle are all a regret needs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

RESULTS = Path(__file__).parent / "results"
#: the samplers every run of this benchmark scores beside the policies
REFERENCES = ("heuristic", "best train constant", "random", "oracle")


def policy_name(path: str) -> str:
    """A policy's label: its run directory's name (``runs/sac/best/best_model.zip`` -> ``sac``)."""
    p = Path(path)
    parts = [x for x in p.parent.parts if x not in ("best", "checkpoints")]
    return parts[-1] if parts else p.stem


def allocations(df: pd.DataFrame) -> pd.DataFrame:
    """Per (instance, sampler): the mean quantity of each modality position over the seeds."""
    cols = [c for c in df.columns if c.startswith("mean_n/")]
    return df.groupby(["instance", "sampler"], sort=False)[cols].mean().round(1)


def by_group(df: pd.DataFrame) -> pd.DataFrame:
    """The rows with each policy's agent seeds averaged per evaluation seed (one sampler per group)."""
    from agents.family_stats import group_name

    out = df.assign(sampler=df["sampler"].map(group_name))
    keys = ["instance", "split", "sampler", "seed"]
    return out.groupby(keys, sort=False).mean(numeric_only=True).reset_index()


#: the baselines scored beside the policies (``--baselines`` names fewer)
BASELINES = ("heuristic", "best train constant", "random")


def score_sections(scores: pd.DataFrame, agg: pd.DataFrame) -> list[str]:
    """The report's per-instance table, the summary over instances and the aggregates, each after its heading."""
    from agents.family_eval import summary

    return [
        scores.round(2).to_markdown(index=False),
        "Summary over instances:",
        summary(scores).round(2).to_markdown(),
        "Aggregates (agents.family_stats; runs = agent seeds x evaluation seeds; stratified bootstrap 95% intervals; "
        "normalised scores on the instances where the oracle has headroom):",
        agg.to_markdown(index=False),
    ]


def samplers_for(instance_set: str, policies: list[str], baselines: tuple[str, ...] = BASELINES) -> dict[str, Any]:
    """Name -> sampler source: the named baselines and each policy file (loaded safely), by its run's name."""
    from agents.family_eval import PerInstance, best_train_constant, positional_constant
    from agents.oracle import load_oracles
    from agents.policy_sampler import PolicySampler
    from agents.random_sampler import RandomSampler

    out: dict[str, Any] = {}
    if "heuristic" in baselines:
        out["heuristic"] = "heuristic:gamma=2,budget=equal"
    if "best train constant" in baselines:
        out["best train constant"] = positional_constant(best_train_constant(load_oracles(instance_set))[0])
    if "random" in baselines:
        out["random"] = PerInstance(lambda mods, b: RandomSampler(seed=0))
    for path in policies:
        out[policy_name(path)] = PolicySampler(path)
    return out


def score_instance(
    instance_set: str, split: str, seeds: list[int], name: str, todo: list[str], policies: list[str], extra: list[str]
) -> list[dict[str, Any]]:
    """One instance's episodes (a worker's job): the samplers in ``todo``; uniform and the oracle if in ``extra``."""
    import torch

    from agents.family_eval import evaluate_instances
    from agents.oracle import load_oracles

    torch.set_num_threads(1)
    wanted = [p for p in policies if policy_name(p) in todo]  # the others are on record for this instance
    samplers = samplers_for(instance_set, wanted, tuple(todo))
    cached = load_oracles(instance_set) if "oracle" in extra else None  # only what is not on record is played
    part = evaluate_instances(samplers, instance_set, split, seeds, cached, names=[name], uniform="uniform" in extra)
    return part.to_dict("records")


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Score the policies and the references on the split's instances; write the CSV and the report."""
    from agents.episode_log import play_logged
    from agents.family_eval import best_train_constant, instance_scores
    from agents.family_plot import plot_family
    from agents.family_stats import aggregate, versus
    from agents.oracle import load_oracles
    from benchmarks.report import publish
    from dus_env.family import load_instance_set
    from dus_env.seeds import parse_seed_span
    from mml_backbones.errors import ConfigError
    from mml_backbones.run_dir import CsvLog

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policies", default="", help="comma-separated policy .zip files")
    p.add_argument("--set", default="two_modal")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--seeds", default="10000:10", help="START:COUNT (evaluation seeds)")
    p.add_argument(
        "--baselines", default=",".join(BASELINES), help=f"comma-separated, of {', '.join(BASELINES)} ('' for none)"
    )
    p.add_argument("--workers", type=int, default=1, help="processes, one instance each at a time")
    p.add_argument("--csv", default=str(RESULTS / "family_scores.csv"))
    p.add_argument("--md", default=str(RESULTS / "family_scores.md"))
    p.add_argument("--plot", default=str(RESULTS / "family_scores.png"))
    args = p.parse_args(argv)
    seeds = parse_seed_span(args.seeds)
    baselines = tuple(b.strip() for b in args.baselines.split(",") if b.strip())
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ConfigError(f"unknown baseline(s) {unknown}; valid: {', '.join(BASELINES)}")
    oracles = load_oracles(args.set)
    best, best_gain = best_train_constant(oracles)
    policies = [x for x in args.policies.split(",") if x]
    names = [*baselines, *(policy_name(x) for x in policies)]
    log = CsvLog(Path(args.csv))
    rows = [r for r in log.read() if int(r["seed"]) in seeds and r["split"] == args.split]
    done = {(r["instance"], r["sampler"]) for r in rows}
    jobs = []
    for name in load_instance_set(args.set).names(args.split):
        todo = [k for k in names if (name, k) not in done]
        extra = [n for n in ("uniform", "oracle") if (name, n) not in done]
        if todo or extra:
            jobs.append((args.set, args.split, seeds, name, todo, policies, extra))
    play_logged(log, rows, score_instance, jobs, args.workers)
    df = pd.DataFrame(rows)
    for c in df.columns:
        if c not in ("instance", "split", "sampler"):
            df[c] = pd.to_numeric(df[c])
    grouped = by_group(df)
    scores = instance_scores(grouped, oracles)
    agg = aggregate(df, oracles)
    policies = [g for g in agg["sampler"] if g not in REFERENCES]
    against = policies if "heuristic" in set(df["sampler"]) else []  # a selection check may play no heuristic
    vs = [versus(df, g).round(2).to_markdown(index=False) for g in against]
    plot_family(df, oracles, args.plot)
    publish(
        args.md,
        f"Instance set {args.set!r}, {args.split} instances, evaluation seeds {seeds[0]}..{seeds[-1]}; kept epoch's "
        f"validation score paired against uniform (points). Best train constant: {'/'.join(map(str, best))} "
        f"(mean gain {best_gain:+.2f} over the train instances' gate seeds).",
        *score_sections(scores, agg),
        *[f"{g} against the heuristic, per instance (same seeds):\n\n{t}" for g, t in zip(against, vs)],
        "Mean quantities by modality position:",
        allocations(grouped).to_markdown(),
    )
    return scores


if __name__ == "__main__":
    main()
