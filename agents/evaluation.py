"""Scoring samplers: in the environment (validation return on held-out seeds) and downstream (test accuracy).

Every sampler, learned or not, is scored through the same path: the environment's observation goes to the
sampler, its quantities go to ``DUSEnv.step_quantities`` (in the environment) or to ``Trainer.fit``
(downstream). Summaries give mean +- std over seeds and the paired difference against a reference sampler
with a 95% t-interval over seeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from dus_env.env import DUSEnv
from mml_backbones.errors import ConfigError
from mml_backbones.samplers import Sampler
from mml_backbones.trainer import Trainer, TrainerConfig


@dataclass
class Episode:
    """One scored episode.

    Attributes:
        seed: the training-run seed.
        ret: sum of rewards.
        final_val_acc: fused validation accuracy at the end.
        quantities: per step, the quantities used (list of dicts).
        cumulative: per step, S_t(m) after the step (list of dicts).
        final_reference_val_acc: the uniform reference run's final validation accuracy (None without it).
        selected_val: the validation score of the epoch ``fit`` would keep (the episode's score since issue 18).
        selected_epoch: that epoch.
    """

    seed: int
    ret: float
    final_val_acc: float
    quantities: list[dict[str, int]]
    cumulative: list[dict[str, float]]
    final_reference_val_acc: float | None = None
    selected_val: float = float("nan")
    selected_epoch: int = 0


def run_episode(env: DUSEnv, sampler: Sampler, seed: int) -> Episode:
    """Run one episode of ``env`` with ``sampler`` choosing the quantities."""
    wanted = getattr(sampler, "validation_context", None)  # a learned policy's; rules read no validation
    if wanted is not None and wanted != env.config.trainer.validation_context:
        raise ConfigError(
            f"{sampler!r} reads the validation context at every {wanted}, this environment refreshes it at every "
            f"{env.config.trainer.validation_context}: make it with validation_context={wanted!r} (DUS-Family-v2 "
            "for 'decision')"
        )
    env.reset(seed=seed)
    ret, quantities, cumulative = 0.0, [], []
    while True:
        _, r, terminated, truncated, info = env.step_quantities(sampler(env.observation()))
        ret += r
        quantities.append(info["quantities"])
        cumulative.append(info["cumulative"])
        if terminated or truncated:
            ref = info.get("reference/val/fused_acc")
            selected, epoch = info["val/selected"], int(info["val/selected_epoch"])
            return Episode(seed, ret, info["val/fused_acc"], quantities, cumulative, ref, selected, epoch)


def evaluate_in_env(
    env: DUSEnv, samplers: Mapping[str, Sampler], seeds: Sequence[int], progress: bool = False
) -> pd.DataFrame:
    """One row per (sampler, seed): return, final validation accuracy (and the reference's) and mean quantities.

    ``progress`` shows a bar over the episodes (on stderr, with the sampler being played).
    """
    rows = []
    bar = tqdm(total=len(samplers) * len(seeds), desc="episodes", unit="ep", disable=not progress, leave=False)
    for name, sampler in samplers.items():
        bar.set_postfix(sampler=name)
        for seed in seeds:
            ep = run_episode(env, sampler, seed)
            bar.update()
            row: dict[str, Any] = {"sampler": name, "seed": seed, "return": ep.ret, "final_val_acc": ep.final_val_acc}
            if ep.final_reference_val_acc is not None:
                row["final_reference_val_acc"] = ep.final_reference_val_acc
            for m in env.modalities:
                row[f"mean_n/{m}"] = float(np.mean([q[m] for q in ep.quantities]))
            rows.append(row)
    bar.close()
    return pd.DataFrame(rows)


def evaluate_downstream(
    config: TrainerConfig,
    samplers: Mapping[str, Sampler],
    seeds: Sequence[int],
    run_root: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Train a fresh run per (sampler, seed) with ``Trainer.fit``; one row of test (and val) metrics each.

    ``progress`` shows a bar over the runs (on stderr).
    """
    rows = []
    bar = tqdm(total=len(samplers) * len(seeds), desc="downstream runs", unit="run", disable=not progress, leave=False)
    for name, sampler in samplers.items():
        bar.set_postfix(sampler=name)
        for seed in seeds:
            cfg = TrainerConfig.from_dict({**_shallow(config), "seed": seed})
            trainer = Trainer(cfg)
            run_dir = f"{run_root}/{name}/seed_{seed}" if run_root else None
            result = trainer.fit(sampler, run_dir=run_dir, progress=False)
            row: dict[str, Any] = {"sampler": name, "seed": seed, "best_epoch": result.best_epoch}
            row.update({f"test/{k}": v for k, v in result.test.items()})
            row.update({f"val/{k}": v for k, v in result.val.items()})
            for m, n in zip(trainer.modalities, trainer.statistics.samples):
                row[f"samples/{m}"] = int(n)
            row["seconds"] = result.seconds
            rows.append(row)
            bar.update()
    bar.close()
    return pd.DataFrame(rows)


def _shallow(config: TrainerConfig) -> dict[str, Any]:
    return {f: getattr(config, f) for f in config.__dataclass_fields__}


def paired_difference(df: pd.DataFrame, metric: str, group: str, reference: str, by: str = "group") -> dict:
    """Mean difference of ``metric`` between ``group`` and ``reference`` over shared seeds, with a 95% t-interval."""
    a = df[df[by] == group].set_index("seed")[metric]
    b = df[df[by] == reference].set_index("seed")[metric]
    common = a.index.intersection(b.index)
    d = (a.loc[common] - b.loc[common]).to_numpy(dtype=float)
    if len(d) == 0:
        return {"mean": np.nan, "low": np.nan, "high": np.nan, "n": 0}
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.nan
    return {"mean": d.mean(), "low": d.mean() - half, "high": d.mean() + half, "n": len(d)}


def summarise(df: pd.DataFrame, metric: str, reference: str = "uniform", by: str = "sampler") -> pd.DataFrame:
    """Mean, std and n of ``metric`` per ``by``, and the paired difference to ``reference`` with a 95% CI."""
    rows = []
    for name, group in df.groupby(by, sort=False):
        values = group[metric].to_numpy(dtype=float)
        row: dict[str, Any] = {by: name, "mean": values.mean(), "std": values.std(ddof=1) if len(values) > 1 else 0.0}
        row["n"] = len(values)
        if name != reference and reference in set(df[by]):
            d = paired_difference(df, metric, name, reference, by=by)
            row["diff_vs_" + reference], row["ci95_low"], row["ci95_high"] = d["mean"], d["low"], d["high"]
        rows.append(row)
    return pd.DataFrame(rows).set_index(by)


def format_mean_std(summary: pd.DataFrame, scale: float = 100.0, digits: int = 2) -> pd.Series:
    """``mean +- std`` strings of a summary, scaled (100: percent)."""
    return summary.apply(lambda r: f"{scale * r['mean']:.{digits}f} ± {scale * r['std']:.{digits}f}", axis=1)
