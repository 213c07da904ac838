"""Is uniform training still improving when a v1 episode ends? Validation accuracy per epoch of each v1 world.

Trains the uniform control (joint, the world's optimiser and schedule) with ``Trainer.fit`` on a few downstream
seeds per world and records the validation accuracy after every epoch (whole validation split). Appends to
``results/v1_curves.csv`` (a re-run skips finished runs) and draws ``results/v1_curves.png``.

    python -m benchmarks.v1_curves --seeds 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

RESULTS = Path(__file__).parent / "results"
WORLDS = ("dus_env/DUS-v1", "dus_env/DUS-Strong-v1", "dus_env/DUS-ThreeModal-v1", "dus_env/DUS-HAPT-v1")


def curves(worlds: list[str], seeds: int, csv: Path) -> pd.DataFrame:
    """Per (world, seed, epoch): validation accuracy of the uniform control."""
    import torch
    from tqdm.auto import tqdm

    import dus_env
    from agents.seeds import downstream_seeds
    from mml_backbones.config import replace
    from mml_backbones.run_dir import CsvLog
    from mml_backbones.trainer import Trainer

    torch.set_num_threads(1)
    log = CsvLog(csv)
    done = {(r["world"], int(r["seed"])) for r in log.read()}
    todo = [(w, s) for w in worlds for s in downstream_seeds(seeds) if (w, s) not in done]
    for world, seed in tqdm(todo, desc="uniform runs", unit="run"):
        trainer_config = dus_env.make_config(**dus_env.ENV_IDS[world]).trainer
        result = Trainer(replace(trainer_config, seed=seed)).fit(progress=False)
        for row in result.history:
            log.append({"world": world, "seed": seed, "epoch": row["epoch"], "val_acc": row["val/fused_acc"]})
    return pd.DataFrame(log.read()).astype({"seed": int, "epoch": int, "val_acc": float})


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Run (or finish) the curves, print the last epochs' gains and draw the figure."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worlds", default=",".join(WORLDS))
    p.add_argument("--seeds", type=int, default=2)
    args = p.parse_args(argv)
    df = curves(args.worlds.split(","), args.seeds, RESULTS / "v1_curves.csv")
    mean = df.groupby(["world", "epoch"])["val_acc"].mean().unstack("world")
    fig, ax = plt.subplots(figsize=(7, 4))
    for world in mean:
        ax.plot(mean.index, 100 * mean[world], marker="o", label=world.split("/")[-1])
    ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title="uniform control (joint, SGD 1e-3), v1 worlds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "v1_curves.png", dpi=120)
    last = mean.index.max()
    gains = 100 * (mean.loc[last] - mean.loc[last - 2])
    print("validation accuracy (%) per epoch, mean over seeds:")
    print((100 * mean).round(2).to_markdown())
    print(f"gain over the last two epochs (pp): {gains.round(2).to_dict()}")
    return df


if __name__ == "__main__":
    main()
