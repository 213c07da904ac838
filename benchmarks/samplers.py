"""``dus bench``: the samplers compared downstream on the v1 worlds.

Uniform, the DUS heuristic (gamma 2, equal budget), the headroom gate's best constant share and the committed
learned policies (per world and algorithm, the agent seed best on the selection seeds), each plugged into fresh
``Trainer.fit`` runs of joint training on unseen downstream seeds (20000+), in each world's v1 regime (SGD lr 1e-3,
momentum 0.9, 12 epochs, an equal budget of M x B samples per iteration); the epoch is chosen on validation and the
test split is scored once. Each row is paired with uniform and with the heuristic on the same seeds.

These are the rows ``joint`` and ``learned`` of ``benchmarks.v1_downstream``: the same cells and the same CSV, so
the committed rows (RESULTS.md, section 0.4) are read, not run again, and ``--rows`` adds that grid's other rows
(DUS on Concat, OGM-GE and MIE; the data-level peers). Run it from the repository root (the committed policies are
found there).

    dus bench --quick                  # DUS-v1's world: uniform, heuristic, best share, the 3 DUS-v1 policies; 3 seeds
    dus bench                          # mild and strong, 5 seeds: section 0.4's sampler rows from the committed CSV
    dus bench --rows joint,learned,concat,ogm_ge,mie,peers --workers 2    # the whole of section 0.4
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from benchmarks import v1_downstream

if TYPE_CHECKING:
    import pandas as pd

#: --quick: one world, the policies trained on it, 3 seeds, its own CSV (a fresh measurement, not the committed one)
QUICK = {
    "worlds": "mild",
    "rows": "joint,learned",
    "policies": "DUS-v1 PPO,DUS-v1 REINFORCE,DUS-v1 SAC",
    "seeds": 3,
    "csv": str(v1_downstream.RESULTS / "v1_downstream_quick.csv"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's options: v1_downstream's, defaulting to the sampler rows on mild and strong, and --quick."""
    v1_downstream.add_arguments(p, worlds="mild,strong", rows="joint,learned")
    p.add_argument(
        "--quick",
        action="store_true",
        help="DUS-v1's world only, uniform / heuristic / best share / the DUS-v1 PPO, REINFORCE and SAC policies, "
        "3 seeds, its own CSV (benchmarks/results/v1_downstream_quick.csv)",
    )


def run(args: argparse.Namespace, **kwargs: Any) -> dict[str, pd.DataFrame]:
    """Run the benchmark ``args`` describe (``--quick`` replaces worlds, rows, policies, seeds and csv)."""
    if args.quick:
        args = argparse.Namespace(**{**vars(args), **QUICK})
    return v1_downstream.run(args, **kwargs)


def register_commands(sub: Any) -> None:
    """``dus bench``."""
    p = sub.add_parser(
        "bench",
        help="the samplers compared downstream on the v1 worlds (benchmarks/samplers.py)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=lambda a: (run(a), 0)[1])


def main(argv: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Entry point of ``python -m benchmarks.samplers``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    main()
