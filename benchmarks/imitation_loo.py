"""Which imitation fit carries over to instances it never saw? Leave one train instance out, on recorded states.

    python -m benchmarks.imitation_loo --run benchmarks/results/policies_family/two_modal_imitation_seed0

The cheap check that chose the committed generalist's fit (issue 18) without touching a test instance. For each
variant of the fit (``VARIANTS``: loss, epochs, weight decay, modality-swap augmentation) and each train instance
h, a policy is fitted (``agents.imitation.fit``) on the recorded decisions of the other train instances (the run
directory's ``demonstrations.csv`` and ``dagger_*.csv``) and acts on h's recorded decisions. Each decision's share
n_0 / B is scored on h's own gate-seed gain curve (the oracle cache's constant shares, interpolated, not clipped):
a proxy for the episode score that replays no run. Regret is h's oracle gain where it has headroom, else 0, minus
that proxy. Rows go to ``results/imitation_loo.csv`` as each variant finishes (a re-run resumes), the table to
``results/imitation_loo.md``.

The proxy scores recorded states, not the states the policy would reach itself, and constant-share curves, not
the schedule it plays; it ranks fits, and the family benchmark scores the chosen one on test instances.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from agents.imitation_config import ImitationConfig

RESULTS = Path(__file__).parent / "results"
DEFAULT_RUN = RESULTS / "policies_family" / "two_modal_imitation_seed0"
#: the fits compared: ImitationConfig overrides (the first is the first committed generalist's)
VARIANTS: dict[str, dict] = {
    "mse": {},
    "mse, 600 epochs": {"epochs": 600, "weight_decay": 0.0},
    "grid_gain": {"loss": "grid_gain"},
    "grid_gain, 600 epochs": {"loss": "grid_gain", "epochs": 600, "weight_decay": 0.0},
    "mse + augment": {"augment": True},
    "grid_gain + augment": {"loss": "grid_gain", "augment": True},
}
LATE = 4  # decisions from here on are averaged for the table's share (the run has settled its context)


def recorded(run: Path) -> pd.DataFrame:
    """Every recorded decision of an imitation run directory (demonstrations and DAgger rounds)."""
    files = [run / "demonstrations.csv", *sorted(run.glob("dagger_*.csv"))]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"no recorded decisions: {', '.join(missing)} (run `dus imitate --out {run}` first)")
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def leave_one_out(df: pd.DataFrame, instance_set: str, overrides: dict, seed: int = 0) -> pd.DataFrame:
    """One row per held-out train instance: its proxy gain and regret under a fit on the other instances."""
    import torch

    from agents.imitation import GAIN_GRID, dataset, fit, gain_curves, labels, new_model, row_curves, share_n0
    from agents.oracle import load_oracles

    config = dataclasses.replace(ImitationConfig(instance_set=instance_set, seed=seed), **overrides)
    targets, oracles = labels(instance_set), load_oracles(instance_set)
    clipped, raw = gain_curves(instance_set), gain_curves(instance_set, clip=False)
    rows = []
    for held in sorted(targets):
        train = (df["instance"] != held).to_numpy()
        model = new_model(instance_set, seed)
        x, y = dataset(df[train], targets)
        fit(model, x, y, config, row_curves(df[train], clipped))
        with torch.no_grad():
            mean = model.policy.get_distribution(torch.as_tensor(dataset(df[~train], targets)[0])).distribution.mean
        share = share_n0(mean).numpy()
        gain = np.interp(share, GAIN_GRID, raw[held])
        o = oracles[held]
        k = df.loc[~train, "k"].to_numpy()
        late = k >= min(LATE, k.max())  # short runs: their last decisions
        label = float(share_n0(torch.as_tensor(targets[held][None]))[0])
        rows.append(
            {
                "instance": held,
                "headroom": o.headroom,
                "label n0/B": label,
                "played n0/B": float(share[late].mean()),
                "proxy gain": float(gain.mean()),
                "regret": (o.gain if o.headroom else 0.0) - float(gain.mean()),
            }
        )
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per variant: mean proxy regret and gain, over all held-out instances and split by headroom."""
    out = []
    for variant, part in df.groupby("variant", sort=False):
        head = part["headroom"].astype(bool)
        out.append(
            {
                "variant": variant,
                "mean regret": part["regret"].mean(),
                "mean proxy gain": part["proxy gain"].mean(),
                "regret (headroom)": part.loc[head, "regret"].mean(),
                "proxy gain (no headroom)": part.loc[~head, "proxy gain"].mean(),
            }
        )
    return pd.DataFrame(out)


def markdown(df: pd.DataFrame, run: Path) -> str:
    """The summary table and each variant's per-instance shares."""
    shares = df.pivot_table(index="instance", columns="variant", values="played n0/B", sort=False)
    shares.insert(0, "label", df.groupby("instance")["label n0/B"].first())
    return "\n\n".join(
        [
            "# Imitation fits, leave one train instance out",
            f"Recorded decisions of `{run}`; proxy gain on each held-out instance's gate-seed curve (points against "
            "uniform); regret to its oracle (0 without headroom). Written by `python -m benchmarks.imitation_loo`.",
            summary(df).round(2).to_markdown(index=False),
            f"Share n_0 / B played from decision {LATE} on (mean), beside the label:",
            shares.round(2).to_markdown(),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run the variants not yet on record, then write the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", type=Path, default=DEFAULT_RUN, help="imitation run directory with recorded decisions")
    p.add_argument("--set", default="two_modal", help="instance set (its train split and oracle cache)")
    p.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=list(VARIANTS), help="fits to compare")
    p.add_argument("--out", type=Path, default=RESULTS / "imitation_loo.csv", help="rows (a re-run resumes)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    df = recorded(args.run)
    done = pd.read_csv(args.out) if args.out.exists() else pd.DataFrame(columns=["variant"])
    for variant in args.variants:
        if variant in set(done["variant"]):
            continue
        rows = leave_one_out(df, args.set, VARIANTS[variant]).assign(variant=variant)
        done = pd.concat([done, rows], ignore_index=True) if len(done) else rows
        args.out.parent.mkdir(parents=True, exist_ok=True)
        done.to_csv(args.out, index=False)  # after each variant: a stopped run loses at most one
        print(f"{variant}: mean regret {rows['regret'].mean():.2f}", flush=True)
    done = done[done["variant"].isin(args.variants)]
    args.out.with_suffix(".md").write_text(markdown(done, args.run) + "\n")
    print(summary(done).round(2).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
