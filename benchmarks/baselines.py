"""Training methods without DUS, and the imbalance they leave: unimodal, Concat, joint, OGM-GE, MIE, MLA.

For each dataset: every modality trained alone, Concat (fusion loss only), joint (fusion + unimodal losses, the
uniform control), OGM-GE, MIE (late fusion, as its paper) and MIE under the heuristic DUS sampler; 3 seeds.
Reported on the test split of the epoch chosen on validation: fused accuracy, each modality's linear-probe
accuracy inside the model (the imbalance: compare a modality's probe in a joint model with the same modality
trained alone) and seconds per epoch. Results are appended to ``benchmarks/results/baselines.csv`` cell by
cell; a re-run skips finished cells.

    python -m benchmarks.baselines --workers 2          # full: synthetic mild + HAPT, 3 seeds, 15 epochs
    python -m benchmarks.baselines --quick              # synthetic only, 2 seeds, 4 epochs
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from agents.heuristic import V0_HEURISTIC
from benchmarks.grid import Cell, run_grid
from benchmarks.report import mean_std_table

RESULTS = Path(__file__).parent / "results"

DATASETS = {
    "synthetic": {"options": {"preset": "mild"}, "modalities": ("strong", "weak")},
    "hapt": {"options": {}, "modalities": ("acc", "gyro")},
}


def cells(datasets: list[str], seeds: int, epochs: int, methods: list[str]) -> list[Cell]:
    """The grid: per dataset, unimodal baselines and each method, for every seed."""
    out = []
    for name in datasets:
        d = DATASETS[name]
        for seed in range(seeds):
            common = {"dataset": name, "dataset_options": d["options"], "seed": seed, "epochs": epochs}
            if "alone" in methods:
                for m in d["modalities"]:
                    out.append(Cell(group=f"{m} alone", method="joint", modalities=(m,), **common))
            for method in [m for m in methods if m != "alone"]:
                if method == "mie+heuristic":
                    late = {"model": {"fusion": "late"}}
                    out.append(Cell(group=method, method="mie", sampler=V0_HEURISTIC, trainer=late, **common))
                elif method in ("mie", "mla"):
                    out.append(Cell(group=method, method=method, trainer={"model": {"fusion": "late"}}, **common))
                else:
                    out.append(Cell(group=method, method=method, **common))
    return out


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Run (or finish) the grid and print the summary tables."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="synthetic,hapt")
    p.add_argument("--methods", default="alone,concat,joint,ogm_ge,mie,mie+heuristic")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--backend", default="local", choices=["local", "ray"])
    p.add_argument("--csv", default=str(RESULTS / "baselines.csv"))
    p.add_argument("--quick", action="store_true", help="synthetic only, 2 seeds, 4 epochs, its own CSV")
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds, args.epochs = "synthetic", 2, 4
        args.csv = str(RESULTS / "baselines_quick.csv")
    grid = cells(args.datasets.split(","), args.seeds, args.epochs, args.methods.split(","))
    df = run_grid(grid, args.csv, workers=args.workers, backend=args.backend).read()
    df = df[df["key"].isin({c.key for c in grid})]
    for dataset, part in df.groupby("dataset", sort=False):
        print(f"\n### {dataset} ({part['seed'].nunique()} seeds, {int(part['epochs'].iloc[0])} epochs)\n")
        order = list(dict.fromkeys(c.group for c in grid if c.dataset == dataset))
        print(mean_std_table(part, order=order).to_markdown())
    return df


if __name__ == "__main__":
    main()
