"""``dus plot RUN_DIR``: a run directory's curves as one PNG (matplotlib, Agg backend: files only, no display).

A training run (``dus train --out``: metrics.csv, decisions.csv) gives ``plots/run.png``: each modality's quantity
n_m at every decision, its cumulative score S_t(m) (the discrepancy DUS reads), the validation accuracy per epoch
(fused and each modality's head) and the training losses per epoch.

A policy run (``dus train-policy --out``: train_config.json, eval/evaluations.npz, logs/segment_*/progress.csv)
gives ``plots/policy.png``: the selection curve (mean return on the selection seeds at each evaluation, with its
spread, the curve that picks best/best_model.zip) and the training return (SB3's ``rollout/ep_rew_mean``). The
files are read as data; nothing of SB3 is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mml_backbones.errors import DataError


def plot_run_dir(run_dir: Path, out: Path | None = None) -> list[Path]:
    """Draw the curves of ``run_dir`` (a training or a policy run) to PNG; returns the files written."""
    if not run_dir.is_dir():
        raise DataError(f"run directory not found: {run_dir}")
    if (run_dir / "metrics.csv").is_file():
        return [plot_training_run(run_dir, out or run_dir / "plots" / "run.png")]
    if (run_dir / "train_config.json").is_file() or (run_dir / "eval" / "evaluations.npz").is_file():
        return [plot_policy_run(run_dir, out or run_dir / "plots" / "policy.png")]
    raise DataError(
        f"{run_dir} is not a run directory: it has neither metrics.csv (written by dus train --out) nor "
        "train_config.json (dus train-policy --out)"
    )


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _read_csv(path: Path) -> Any:
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (pd.errors.EmptyDataError, FileNotFoundError):
        return pd.DataFrame()


def plot_training_run(run_dir: Path, out: Path) -> Path:
    """Quantities, discrepancy S, validation accuracy and training losses of a ``dus train`` run."""
    metrics = _read_csv(run_dir / "metrics.csv")
    decisions = _read_csv(run_dir / "decisions.csv")
    if metrics.empty and decisions.empty:
        raise DataError(f"{run_dir}: metrics.csv and decisions.csv are empty; the run has not finished an epoch yet")
    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.6))
    n_cols = [c for c in decisions if c.startswith("n/")]
    s_cols = [c for c in decisions if c.startswith("S/")]
    for col in n_cols:
        axes[0].step(decisions["iteration"], decisions[col], where="post", label=col[2:])
    axes[0].set(title="quantities", xlabel="iteration", ylabel="samples per iteration $n_m$")
    for col in s_cols:
        axes[1].plot(decisions["iteration"], decisions[col], label=col[2:])
    axes[1].set(title="discrepancy: cumulative score", xlabel="iteration", ylabel="$S_t(m)$")
    if not metrics.empty:
        acc = [c for c in metrics if c == "val/fused_acc" or c.startswith("val/acc/")]
        for col in acc:
            label = "fused" if col == "val/fused_acc" else f"head {col.split('/')[-1]}"
            axes[2].plot(metrics["epoch"], 100 * metrics[col], marker="o", label=label)
        for col in [c for c in metrics if c.startswith("train/") and not c.startswith("train/monitor/")]:
            axes[3].plot(metrics["epoch"], metrics[col], marker=".", label=col[len("train/") :])
    axes[2].set(title="validation accuracy", xlabel="epoch", ylabel="%")
    axes[3].set(title="training losses", xlabel="epoch", ylabel="mean per iteration")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(str(run_dir), fontsize=9)
    return _save(fig, plt, out)


def plot_policy_run(run_dir: Path, out: Path) -> Path:
    """The selection curve and the training return of a ``dus train-policy`` run."""
    import numpy as np
    import pandas as pd

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    evaluations = run_dir / "eval" / "evaluations.npz"
    drawn = False
    if evaluations.is_file():
        with np.load(evaluations) as ev:
            steps, results = ev["timesteps"], ev["results"]
        if len(steps):
            mean, std = results.mean(axis=1), results.std(axis=1)
            axes[0].plot(steps, mean, marker="o", label="mean over the selection seeds")
            axes[0].fill_between(steps, mean - std, mean + std, alpha=0.2, label="± std")
            best = int(np.argmax(mean))
            axes[0].scatter([steps[best]], [mean[best]], color="red", zorder=3, label="kept (best_model.zip)")
            drawn = True
    axes[0].set(title="selection curve", xlabel="environment steps", ylabel="return")
    logs = sorted((run_dir / "logs").glob("segment_*/progress.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    frames = [f for f in (_read_csv(p) for p in logs) if "rollout/ep_rew_mean" in f]
    if frames:
        progress = pd.concat(frames).dropna(subset=["rollout/ep_rew_mean"])
        axes[1].plot(progress["time/total_timesteps"], progress["rollout/ep_rew_mean"], marker=".")
        drawn = drawn or not progress.empty
    axes[1].set(title="training return (rollout/ep_rew_mean)", xlabel="environment steps", ylabel="return")
    if not drawn:
        plt.close(fig)
        raise DataError(
            f"{run_dir}: no evaluations (eval/evaluations.npz) and no training returns (logs/*/progress.csv) yet"
        )
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    fig.suptitle(str(run_dir), fontsize=9)
    return _save(fig, plt, out)


def _save(fig: Any, plt: Any, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
