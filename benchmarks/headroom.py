"""The headroom gate over every v1 world: does some equal-budget sampler beat uniform there?

Runs ``agents.headroom`` (the same code as ``dus headroom ENV_ID``) on each v1 id, on the gate seeds (40000...),
appends every episode to ``results/gate_v1.csv`` as it finishes (a re-run resumes), and writes to
``results/gate_v1.md`` each world's table under the kept epoch's score (what ``fit`` reports) and the comparison
with the last evaluation's score (what the gates before issue 18 reported), on the same episodes.

    python -m benchmarks.headroom --seeds 6 --probes core        # all v1 worlds (results/gate_v1.csv)
    python -m benchmarks.headroom --envs dus_env/DUS-v1 --seeds 8 --probes full

The first v1 gates (last evaluation, evaluation seeds 10000...) are ``results/headroom_v1.csv`` / ``.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

RESULTS = Path(__file__).parent / "results"
V1_WORLDS = ("dus_env/DUS-v1", "dus_env/DUS-Strong-v1", "dus_env/DUS-ThreeModal-v1", "dus_env/DUS-HAPT-v1")


def score_comparison(df: pd.DataFrame) -> pd.DataFrame:
    """Per schedule: the paired difference to uniform under the last evaluation's score and under the kept one's."""
    from agents.headroom import LAST_SCORE, SCORE, UNIFORM, gate_table

    last, kept = gate_table(df, LAST_SCORE), gate_table(df, SCORE)
    fmt = lambda t: [  # noqa: E731
        "" if n == UNIFORM else f"{r['diff (pp)']:+.2f} [{r['ci95 low']:+.2f}, {r['ci95 high']:+.2f}]"
        for n, r in t.iterrows()
    ]
    epochs = df.groupby("schedule", sort=False)["selected_epoch"].mean()
    return pd.DataFrame(
        {
            "block": kept["block"],
            "last: val acc (%)": last["val acc (%)"].round(2),
            "last: Δ vs uniform (pp)": fmt(last),
            "kept: val acc (%)": kept["val acc (%)"].round(2),
            "kept: Δ vs uniform (pp)": fmt(kept),
            "kept epoch (mean)": epochs.round(1),
        },
        index=kept.index,
    )


def main(argv: list[str] | None = None) -> dict[str, bool]:
    """Run (or finish) the gate on each world; print and write the reports; return each world's verdict."""
    from agents.headroom import LAST_SCORE, best_constant, format_gate, gate_table, run_gate, verdict

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", default=",".join(V1_WORLDS))
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--csv", default=str(RESULTS / "gate_v1.csv"))
    p.add_argument("--probes", default="core", choices=["full", "core"])
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    reports, verdicts = [], {}
    for env_id in args.envs.split(","):
        df = run_gate(env_id, args.seeds, args.csv, args.probes, progress=True)
        table = gate_table(df)
        verdicts[env_id] = verdict(table)
        old = gate_table(df, LAST_SCORE)
        lines = [
            f"## {env_id}",
            "```\n" + format_gate(table, env_id) + "\n```",
            f"Under the last evaluation's score: best constant share {best_constant(old)}, "
            f"headroom {'yes' if verdict(old) else 'no'}.",
            score_comparison(df).to_markdown(),
        ]
        reports.append("\n\n".join(lines))
        print(reports[-1], flush=True)
    (Path(args.csv).with_suffix(".md")).write_text("\n\n".join(reports) + "\n")
    return verdicts


if __name__ == "__main__":
    main()
