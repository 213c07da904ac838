"""Downstream on the instances of a set: fresh ``Trainer.fit`` runs under each sampler, the test split scored once.

    python -m benchmarks.family_downstream --policies runs/imitation/policy.zip --split test --seeds 5

Each instance's training run (its dataset, method, optimiser, schedule and decision interval, as the instance
set defines it) is trained from scratch on unseen downstream seeds (``agents.seeds.downstream_seeds``) under
uniform (the control), the heuristic (gamma 2, equal budget), the instance's oracle share (chosen on the gate
seeds) and each policy; ``fit`` keeps the epoch with the best validation score and the test split is scored
once. Rows are appended to ``results/family_downstream.csv`` as runs finish (a re-run skips them); the table
(test accuracy paired with uniform and with the heuristic, per instance) goes to ``results/family_downstream.md``.
HAPT, a test-only instance, is real data that no training instance holds: the zero-shot row.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.grid import Cell

RESULTS = Path(__file__).parent / "results"
HEURISTIC = "heuristic:gamma=2,budget=equal"
#: TrainerConfig fields a cell carries besides its dataset, method, modalities, seed and epochs
TRAINER_FIELDS = ("model", "optim", "batch_size", "decision_interval", "bounds", "statistics", "selection_metric")


def instance_cells(
    instance_set: str, split: str, samplers: dict[str, str], seeds: int, oracles: dict[str, Any]
) -> list[Cell]:
    """The runs: every instance of ``split`` under uniform, the heuristic, its oracle share and ``samplers``."""
    from agents.seeds import downstream_seeds
    from dus_env.family import load_instance_set
    from mml_backbones.config import to_dict

    out = []
    for inst in load_instance_set(instance_set).split(split):
        t = to_dict(inst.trainer_config())
        chosen = {"uniform": "uniform", "heuristic": HEURISTIC}
        if inst.name in oracles:
            chosen["oracle"] = oracles[inst.name].sampler_spec
        chosen.update(samplers)
        for seed in downstream_seeds(seeds):
            for label, spec in chosen.items():
                out.append(
                    Cell(
                        group=f"{inst.name}|{label}",
                        dataset=t["dataset"],
                        dataset_options=t["dataset_options"],
                        method=t["method"],
                        method_options=t["method_options"],
                        modalities=tuple(t["modalities"]) if t["modalities"] else None,
                        sampler=spec,
                        seed=seed,
                        epochs=t["epochs"],
                        trainer={k: t[k] for k in TRAINER_FIELDS},
                    )
                )
    return out


def table(df: pd.DataFrame) -> pd.DataFrame:
    """Per (instance, sampler): test accuracy, and the paired differences to uniform and to the heuristic."""
    from benchmarks.report import paired_difference, pm

    rows = []
    for group, g in df.groupby("group", sort=False):
        inst, label = str(group).split("|", 1)
        r: dict[str, Any] = {"instance": inst, "sampler": label, "test acc (%)": pm(g["test/fused_acc"])}
        for name, ref in (("vs uniform (pp)", "uniform"), ("vs heuristic (pp)", "heuristic")):
            if label == ref:
                r[name] = ""
                continue
            d = paired_difference(df, "test/fused_acc", str(group), f"{inst}|{ref}")
            r[name] = f"{100 * d['mean']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]"
        r["best epoch"] = round(float(g["best_epoch"].mean()), 1)
        r["seeds"] = g["seed"].nunique()
        rows.append(r)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Run (or finish) the downstream runs and write the table."""
    from agents.oracle import load_oracles
    from benchmarks.family import policy_name
    from benchmarks.grid import run_grid
    from benchmarks.report import publish

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policies", default="", help="comma-separated policy .zip files")
    p.add_argument("--set", default="two_modal")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--seeds", type=int, default=5, help="downstream seeds per row, from 20000")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--csv", default=str(RESULTS / "family_downstream.csv"))
    p.add_argument("--md", default=str(RESULTS / "family_downstream.md"))
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    samplers = {policy_name(x): f"policy:{x}" for x in filter(None, args.policies.split(","))}
    grid = instance_cells(args.set, args.split, samplers, args.seeds, load_oracles(args.set))
    out = run_grid(grid, args.csv, workers=args.workers, progress=not args.no_progress)
    df = out.read()
    df = df[df["key"].isin({c.key for c in grid})]
    result = table(df)
    publish(
        args.md,
        f"Instance set {args.set!r}, {args.split} instances: fresh Trainer.fit runs on downstream seeds (from 20000), "
        "the epoch kept on validation, the test split scored once; differences paired on seeds, 95% t-intervals.",
        result.to_markdown(index=False),
    )
    return result


if __name__ == "__main__":
    main()
