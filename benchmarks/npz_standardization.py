"""Does the npz loader's standardisation matter? HAPT's raw windows as a user ``.npz``, trained with and without it.

HAPT's raw (unstandardised) accelerometer and gyroscope windows (``hapt.load_windows``) are written to one
``.npz`` with the HAPT loader's user split as its ``split`` array, then the ``joint`` method is trained on it
with ``standardize=true`` (the default: per feature, train statistics) and ``standardize=false``, beside the HAPT
loader itself (per-channel standardisation) as the reference, with the encoder chosen by input shape (cnn1d,
whose first Conv-BatchNorm block rescales its input anyway) and with an MLP encoder (no normalisation layer,
like the encoder a user's flat feature vectors get). Reported on the test split of the epoch chosen on
validation: fused accuracy and each modality's linear probe inside the model. Each cell is what

    dus train --dataset npz --path NPZ --dataset-option standardize=BOOL --method joint --epochs 10 --seed S \\
        [--encoder mlp]

runs; results are appended to ``benchmarks/results/npz_standardization.csv`` as cells finish, and a re-run skips
finished cells.

    python -m benchmarks.npz_standardization --workers 2     # 2 encoders x 3 seeds x 10 epochs, ~10 CPU-minutes
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.grid import Cell, run_grid
from benchmarks.report import mean_std_table

RESULTS = Path(__file__).parent / "results"


def write_raw_npz(path: Path) -> Path:
    """HAPT's raw windows, labels and user split (0 train, 1 val, 2 test) as a user ``.npz``; kept if present."""
    from mml_backbones.data.hapt import ACTIVITIES, TEST_USERS, VAL_USERS, load_windows

    if path.is_file():
        return path
    x, y, users = load_windows()
    split = np.where(np.isin(users, TEST_USERS), 2, np.where(np.isin(users, VAL_USERS), 1, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp.npz")
    np.savez(tmp, acc=x[:, :3], gyro=x[:, 3:], labels=y, split=split, class_names=np.array(ACTIVITIES))
    tmp.replace(path)
    return path


def cells(npz: Path, seeds: int, epochs: int, method: str, encoders: list[str]) -> list[Cell]:
    """Per encoder and seed: npz standardised, npz raw, and the HAPT loader."""
    out = []
    for encoder in encoders:
        # "default" picks by input shape: cnn1d (Conv-BatchNorm blocks) for these (3, 128) windows
        trainer = {} if encoder == "default" else {"model": {"encoder": encoder}}
        # the group is part of a cell's key: the default encoder's rows keep their unprefixed names
        prefix = "" if encoder == "default" else f"{encoder}: "
        for seed in range(seeds):
            common = {"method": method, "seed": seed, "epochs": epochs, "trainer": trainer}
            for standardize in (True, False):
                options = {"path": str(npz), "standardize": standardize}
                group = f"{prefix}npz, standardize={str(standardize).lower()}"
                out.append(Cell(group=group, dataset="npz", dataset_options=options, **common))
            out.append(Cell(group=f"{prefix}hapt loader (per channel)", dataset="hapt", **common))
    return out


def summary(df: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Mean ± std per group, plus the best modality's probe (the larger mean of the two)."""
    table = mean_std_table(df, order=order)
    probes = [c for c in df if c.startswith("test/probe/")]
    best = df.groupby("group")[probes].mean().max(axis=1)
    table["best probe, mean (%)"] = [f"{100 * best[g]:.2f}" for g in table.index]
    return table


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Write the raw npz, run (or finish) the grid and print the table."""
    from mml_backbones.data.cache import cache_dir

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--method", default="joint")
    p.add_argument("--encoders", default="default,mlp", help="comma-separated; default = chosen by input shape")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--npz", default=str(cache_dir() / "hapt_raw.npz"), help="where the raw-scale .npz is written")
    p.add_argument("--csv", default=str(RESULTS / "npz_standardization.csv"))
    args = p.parse_args(argv)
    grid = cells(write_raw_npz(Path(args.npz)), args.seeds, args.epochs, args.method, args.encoders.split(","))
    df = run_grid(grid, args.csv, workers=args.workers).read()
    df = df[df["key"].isin({c.key for c in grid})]
    order = list(dict.fromkeys(c.group for c in grid))
    print(f"\n### {args.method}, {df['seed'].nunique()} seeds, {args.epochs} epochs (test split, %)\n")
    print(summary(df, order).to_markdown())
    return df


if __name__ == "__main__":
    main()
