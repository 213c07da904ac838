"""How the HAPT validation users were chosen (without looking at the test users).

The 21 users outside the standard UCI HAR test list are split into three folds of seven. For each fold a
Concat model (1D-CNN encoders, 5 epochs) is trained on the other 14 users and scored per user on the fold.
Users whose windows the model finds easy (97-99% from the first epoch) make validation accuracy flat, so that
every epoch ties; the hardest users keep it moving. The six users with the lowest mean accuracy over
``--seeds`` seeds are the validation users (``mml_backbones.data.hapt.VAL_USERS``).

    python -m benchmarks.hapt_val_users --seeds 2
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from mml_backbones.data.hapt import TEST_USERS, load_hapt, load_windows
from mml_backbones.trainer import Trainer, TrainerConfig


def per_user_accuracy(fold: list[int], seed: int, epochs: int) -> pd.Series:
    """Fused accuracy of each user of ``fold`` for a model trained on the other non-test users."""
    splits = load_hapt(val_users=fold)
    trainer = Trainer(TrainerConfig(dataset="hapt", method="concat", epochs=epochs, seed=seed), splits=splits)
    trainer.run_iterations(trainer.total_iterations, [64, 64])
    pred, _ = trainer.predict("val")
    correct = trainer.method.fused_scores(pred).argmax(1) == pred.labels
    return pd.Series(correct).groupby(pred.meta["user"]).mean()


def main(argv: list[str] | None = None) -> list[int]:
    """Print per-user accuracies and the chosen validation users."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--n-val", type=int, default=6)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    _, _, users = load_windows()
    pool = sorted(set(users.tolist()) - set(TEST_USERS))
    folds = [pool[i::3] for i in range(3)]
    scores = []
    for seed in range(args.seeds):
        for fold in folds:
            scores.append(per_user_accuracy(fold, seed, args.epochs).rename(f"seed{seed}"))
    table = pd.concat(scores).groupby(level=0).mean().sort_values()
    chosen = sorted(int(u) for u in table.index[: args.n_val])
    print((100 * table).round(1).rename("accuracy %").to_frame().T.to_string())
    print(f"hardest {args.n_val} users (validation): {chosen}")
    hard, easy = table.iloc[: args.n_val].mean(), table.iloc[args.n_val :].mean()
    print(f"their mean accuracy {100 * hard:.1f}%, the other users' {100 * easy:.1f}%")
    return chosen


if __name__ == "__main__":
    main()
