"""ECSP on the synthetic emotion task: prompts vs no prompt, the ensemble vs each single branch (macro-F1).

``emotion_synthetic`` is an image + comment task where the comment's language changes what its words mean, so a
prompt that names the language (ECSP's emotion-cultural prompt) lets the text encoder disambiguate and the
no-prompt variant cannot. Variants, each trained on its own (3 seeds, the dataset's sample seed = the run seed):

    ecsp + prompt         text-only and image+text branches, softmax ensemble, weight chosen on validation
    ecsp, no prompt       the same without the prompt (the ablation)
    text only + prompt    Concat on the text modality alone
    fusion alone + prompt Concat on text + image (the image+text branch on its own)

Also reported: ECSP's own two branches scored alone (text_branch/*, fusion_branch/* metrics). Images are 32-dim
feature vectors (``image_features_dim=32``; ``--pixels`` uses the raw 3x16x16 images and the 2D CNN).

    python -m benchmarks.ecsp_prompts --workers 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from benchmarks.grid import Cell, run_grid
from benchmarks.report import paired_difference, pm

RESULTS = Path(__file__).parent / "results"
VARIANTS = {
    "ecsp + prompt": ("ecsp", "ecsp", None),
    "ecsp, no prompt": ("ecsp", "none", None),
    "text only + prompt": ("concat", "ecsp", ("text",)),
    "fusion alone + prompt": ("concat", "ecsp", None),
}


def cells(seeds: int, epochs: int, pixels: bool) -> list[Cell]:
    """One cell per variant and seed."""
    out = []
    for seed in range(seeds):
        for group, (method, prompt, modalities) in VARIANTS.items():
            options = {"prompt": prompt, "seed": seed, **({} if pixels else {"image_features_dim": 32})}
            out.append(
                Cell(
                    group=group,
                    dataset="emotion_synthetic",
                    method=method,
                    seed=seed,
                    epochs=epochs,
                    modalities=modalities,
                    dataset_options=options,
                    trainer={"optim": {"lr": 3e-3}, "selection_metric": "macro_f1"},
                )
            )
    return out


def table(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Macro-F1 per variant (and ECSP's branches), paired differences of ECSP + prompt against the others."""
    rows = []
    for group in VARIANTS:
        part = df[df["group"] == group]
        rows.append({"variant": group, "test macro-F1": pm(part["test/macro_f1"], scale=1.0, digits=3)})
        if group == "ecsp + prompt":
            for branch in ("text_branch", "fusion_branch"):
                col = f"test/{branch}/macro_f1"
                if col in part:
                    rows.append(
                        {"variant": f"  its {branch.replace('_', ' ')} alone", "test macro-F1": pm(part[col], 1.0, 3)}
                    )
    out = pd.DataFrame(rows)
    diffs = []
    for group in list(VARIANTS)[1:]:
        d = paired_difference(df, "test/macro_f1", "ecsp + prompt", group)
        diffs.append(f"ecsp + prompt − {group}: {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]")
    return out, diffs


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Run (or finish) the variants and print the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--pixels", action="store_true")
    args = p.parse_args(argv)
    grid = cells(args.seeds, args.epochs, args.pixels)
    csv = RESULTS / f"ecsp_prompts{'_pixels' if args.pixels else ''}.csv"
    df = run_grid(grid, csv, workers=args.workers).read()
    df = df[df["key"].isin({c.key for c in grid})]
    t, diffs = table(df)
    print(f"emotion_synthetic, {df['seed'].nunique()} seeds, {args.epochs} epochs, selection on validation macro-F1\n")
    print(t.to_markdown(index=False))
    print("\npaired differences (95% CI over seeds):\n" + "\n".join(f"- {d}" for d in diffs))
    return df


if __name__ == "__main__":
    main()
