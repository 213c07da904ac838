"""Training methods without DUS, and the imbalance they leave: unimodal, Concat, joint, OGM-GE, MIE, MLA.

For each dataset: every modality trained alone, Concat (fusion loss only), joint (fusion + unimodal losses, the
uniform control), OGM-GE, MIE (late fusion, as its paper) and MIE under the heuristic DUS sampler; 3 seeds.
Reported on the test split of the epoch chosen on validation: fused accuracy, each modality's linear-probe
accuracy inside the model (the imbalance: compare a modality's probe in a joint model with the same modality
trained alone) and seconds per epoch. Results are appended to ``archive_v0/results/baselines.csv`` cell by
cell; a re-run skips finished cells.

    python -m benchmarks.archive_v0.baselines --workers 2   # full: synthetic mild + HAPT, 3 seeds, 15 epochs
    python -m benchmarks.archive_v0.baselines --quick       # synthetic only, 2 seeds, 4 epochs
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from agents.heuristic import V0_HEURISTIC
from benchmarks.grid import Cell, run_grid
from benchmarks.report import mean_std_table
from mml_backbones.methods import METHODS

RESULTS = Path(__file__).parent / "results"

DATASETS = {
    "synthetic": {"options": {"preset": "mild"}, "modalities": ("strong", "weak")},
    "hapt": {"options": {}, "modalities": ("acc", "gyro")},
}


def method_fusion(method: str) -> str:
    """The fusion ``method`` recommends (its paper's prediction: late for MIE and MLA; else concat)."""
    return METHODS.get(method).method_class().recommended_fusion or "concat"


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
                # the first release's heuristic (gamma 1, free budget), written out: "heuristic" now means v1's
                base, sampler = ("mie", V0_HEURISTIC) if method == "mie+heuristic" else (method, "uniform")
                fusion = method_fusion(base)
                # these rows were recorded naming a fusion only where it is not concat; the keys must stay theirs
                trainer = {} if fusion == "concat" else {"model": {"fusion": fusion}}
                out.append(Cell(group=method, method=base, sampler=sampler, trainer=trainer, **common))
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
