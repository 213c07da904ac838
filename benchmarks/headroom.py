"""The headroom gate over every v1 world: does some equal-budget sampler beat uniform there?

Runs ``agents.headroom`` (the same code as ``dus headroom ENV_ID``) on each v1 id, appends every episode to
``results/headroom_v1.csv`` as it finishes (a re-run resumes), and writes the tables and verdicts to
``results/headroom_v1.md``.

    python -m benchmarks.headroom --seeds 8                      # all v1 worlds
    python -m benchmarks.headroom --envs dus_env/DUS-v1 --seeds 8
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
V1_WORLDS = ("dus_env/DUS-v1", "dus_env/DUS-Strong-v1", "dus_env/DUS-ThreeModal-v1", "dus_env/DUS-HAPT-v1")


def main(argv: list[str] | None = None) -> dict[str, bool]:
    """Run (or finish) the gate on each world; print and write the reports; return each world's verdict."""
    from agents.headroom import format_gate, gate_table, run_gate, verdict

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", default=",".join(V1_WORLDS))
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--csv", default=str(RESULTS / "headroom_v1.csv"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    reports, verdicts = [], {}
    for env_id in args.envs.split(","):
        table = gate_table(run_gate(env_id, args.seeds, args.csv, progress=True))
        verdicts[env_id] = verdict(table)
        reports.append(format_gate(table, env_id))
        print(reports[-1], flush=True)
    (Path(args.csv).with_suffix(".md")).write_text("\n\n".join(f"```\n{r}\n```" for r in reports) + "\n")
    return verdicts


if __name__ == "__main__":
    main()
