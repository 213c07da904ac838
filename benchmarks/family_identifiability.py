"""Can a policy tell the instances apart? Predict each instance's oracle direction from the first k observations.

    python -m benchmarks.family_identifiability --set two_modal --seeds 4 --workers 2

The decisive cheap check before training a generalist (issue 18, item 5). On the train instances of a set, runs
play the first ``max(K)`` decisions under uniform actions and under random actions (uniform on the action box,
seeded), on training seeds; the observation vector (``CONTEXT_FEATURES``, every feature) after k decisions is
kept, for k in K. A small classifier (standardised logistic regression) predicts the instance's oracle direction
(``agents.oracle``: favour the weak modality / none / favour the other one) from a feature subset of it,
cross-validated by instance (leave one instance out: the classifier never sees the instance it is scored on), and
its accuracy is reported beside the majority-class rate. Observations go to ``results/family_identifiability.csv``
(a re-run resumes), the table to ``results/family_identifiability.md``.

Feature sets: ``discrepancy`` (cumulative, ratio: what the heuristic reads), ``learning`` (v1's observation),
``validation`` (the validation context alone, with progress) and ``context`` (all of them: DUS-Family-v1's), each
as the policy sees it (the instance's modality order) and with the lower-S modality first (the labels' frame).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).parent / "results"
#: inverse L2 strength of the classifier: a weak prior, because "none" lies between the two directions and a linear
#: model separates a middle class only with large weights (C = 0.1 to 1 fails on a stub a single feature separates)
C = 10.0
KS = (1, 2, 4, 8)
FEATURE_SETS = {
    "discrepancy": ("cumulative", "ratio"),
    "learning": ("cumulative", "ratio", "speed", "loss", "allocation", "progress"),
    "validation": ("val_acc", "val_gap", "val_score", "val_drop", "progress"),
    "context": (
        "cumulative",
        "ratio",
        "speed",
        "loss",
        "allocation",
        "progress",
        "val_acc",
        "val_gap",
        "val_score",
        "val_drop",
    ),
}


def _episode(
    instance_set: str, name: str, seed: int, policy: str, ks: tuple[int, ...], validation_context: str = "epoch"
) -> list[dict[str, Any]]:
    """The observation after each k of ``ks`` decisions of one run (uniform or random actions)."""
    import torch

    from agents.oracle import oracle_env
    from mml_backbones.observation import CONTEXT_FEATURES

    torch.set_num_threads(1)
    env = oracle_env(instance_set, name, observation_features=CONTEXT_FEATURES, validation_context=validation_context)
    rng = np.random.default_rng([seed, 17])
    env.reset(seed=seed)
    rows = []
    for k in range(1, max(ks) + 1):
        action = np.zeros(2, np.float32) if policy == "uniform" else rng.uniform(-1, 1, 2).astype(np.float32)
        obs, *_ = env.step(action)
        if k in ks:
            row = {"instance": name, "seed": seed, "policy": policy, "k": k}
            row.update({f"x{i}": float(v) for i, v in enumerate(obs)})
            rows.append(row)
    return rows


def collect(
    instance_set: str,
    seeds: list[int],
    csv: Path,
    workers: int,
    ks: tuple[int, ...] = KS,
    validation_context: str = "epoch",
) -> pd.DataFrame:
    """Run (or finish) the episodes; one row per (instance, seed, policy, k) with the observation vector."""
    from agents.episode_log import numeric_frame, play_logged
    from dus_env.family import load_instance_set
    from mml_backbones.run_dir import CsvLog

    log = CsvLog(csv)
    rows = log.read()
    done = {(r["instance"], int(r["seed"]), r["policy"]) for r in rows}
    names = load_instance_set(instance_set).names("train")
    todo = [(n, s, p) for s in seeds for n in names for p in ("uniform", "random") if (n, s, p) not in done]
    play_logged(log, rows, _episode, [(instance_set, n, s, p, ks, validation_context) for n, s, p in todo], workers)
    df = numeric_frame(rows, ("instance", "policy"))
    return df[df["seed"].isin(seeds)]


def columns(features: tuple[str, ...]) -> list[str]:
    """The observation-vector columns of ``features`` (two modalities, CONTEXT_FEATURES order)."""
    from mml_backbones.observation import CONTEXT_FEATURES, FEATURES

    cols, i = {}, 0
    for f in CONTEXT_FEATURES:
        n = 2 if FEATURES[f][0] else 1
        cols[f] = [f"x{j}" for j in range(i, i + n)]
        i += n
    return [c for f in features for c in cols[f]]


def lower_score_first(df: pd.DataFrame) -> pd.DataFrame:
    """The observations with each per-modality feature pair reordered so the modality with the lower S comes first.

    The direction labels are relative to the lower-S modality, which sits first in some instances and second in
    others; a linear classifier cannot take a minimum over positions, a policy network can. This view asks whether
    the information is there at all, whatever the position.
    """
    from mml_backbones.observation import CONTEXT_FEATURES, FEATURES

    out = df.copy()
    swap = (df["x1"] < df["x0"]).to_numpy()  # x0, x1: the cumulative scores S of the two modalities
    for f in CONTEXT_FEATURES:
        if FEATURES[f][0]:
            a, b = columns((f,))
            out.loc[swap, a], out.loc[swap, b] = df.loc[swap, b].to_numpy(), df.loc[swap, a].to_numpy()
    return out


def accuracy_table(df: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """Leave-one-instance-out accuracy of a logistic regression per (feature set, k, policy), and the majority rate.

    Each feature set is scored on the observation as the policy sees it (modalities in the instance's order) and
    with the lower-S modality first (``lower_score_first``, columns ``... (weak first)``).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    df = df[df["instance"].isin(labels)].copy()
    df["label"] = df["instance"].map(labels)
    rows = []
    for policy in ("uniform", "random"):
        for k in sorted(df["k"].unique()):
            part = df[(df["policy"] == policy) & (df["k"] == k)]
            y, groups = part["label"].to_numpy(), part["instance"].to_numpy()
            row: dict[str, Any] = {"actions": policy, "k": int(k), "runs": len(part)}
            row["majority class"] = float(pd.Series(y).value_counts(normalize=True).iloc[0])  # a constant guess
            sorted_part = lower_score_first(part)
            for view, data in (("", part), (" (weak first)", sorted_part)):
                for name, features in FEATURE_SETS.items():
                    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
                    x = data[columns(features)].to_numpy()
                    score = cross_val_score(model, x, y, groups=groups, cv=LeaveOneGroupOut()).mean()
                    row[name + view] = float(score)
            rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Collect the observations, fit and score the classifiers, write the table."""
    from agents.oracle import load_oracles
    from benchmarks.report import publish
    from dus_env.seeds import TRAIN_SEED_RANGE

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", default="two_modal")
    p.add_argument("--seeds", type=int, default=4, help="training seeds per instance and action policy")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--validation-context",
        default="epoch",
        choices=["epoch", "decision"],
        help="when the validation features are refreshed: epoch ends (DUS-Family-v1) or every decision (-v2)",
    )
    p.add_argument("--csv", default=str(RESULTS / "family_identifiability.csv"))
    p.add_argument("--md", default=str(RESULTS / "family_identifiability.md"))
    args = p.parse_args(argv)
    seeds = list(range(TRAIN_SEED_RANGE[0] + 100, TRAIN_SEED_RANGE[0] + 100 + args.seeds))
    df = collect(args.set, seeds, Path(args.csv), args.workers, validation_context=args.validation_context)
    oracles = load_oracles(args.set)
    labels = {k: o.direction for k, o in oracles.items() if o.split == "train"}
    table = accuracy_table(df, labels)
    counts = pd.Series(labels).value_counts().to_dict()
    publish(
        args.md,
        f"Oracle direction of the {len(labels)} train instances of {args.set!r}: {counts}. Leave-one-instance-out "
        f"accuracy, {args.seeds} training seeds per instance ({seeds[0]}..{seeds[-1]}); validation context "
        f"refreshed at every {args.validation_context} end:".replace("decision end", "decision"),
        table.round(3).to_markdown(index=False),
    )
    return table


if __name__ == "__main__":
    main()
