"""Aggregate scores over the instances of a set: interquartile mean, stratified bootstrap intervals, P(improvement).

The estimators are those of Agarwal et al. (2021, "Deep RL at the edge of the statistical precipice"), the
``rliable`` library's, written here with numpy because ``rliable`` 1.2 pins ``arch<8``, whose 7.x releases do
not import under pandas 3 (the version this package runs on):

- a *run* is one episode score on one instance: a sampler's kept-epoch validation score minus uniform's on the
  same seed, in points (for a policy trained with several agent seeds: one run per agent seed and evaluation
  seed);
- the **interquartile mean** (IQM) is the mean of the middle 50% of all runs of all instances (``trim_mean``);
- **stratified bootstrap** intervals resample runs with replacement within each instance, 2000 times, and take
  the 2.5 and 97.5 percentiles;
- the **probability of improvement** P(X > Y) is, per instance, the chance that a run of X beats a run of Y
  (ties count half: the Mann-Whitney statistic over n m), averaged over instances, with a stratified bootstrap
  interval over both samplers' runs.

Normalised scores divide each run's gain by its instance's oracle gain on the same evaluation seeds, on the
instances where the oracle has headroom (elsewhere the normalisation is undefined and "no harm" is scored).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from scipy import stats
from scipy.stats import trim_mean

from agents.family_eval import ORACLE, UNIFORM
from agents.oracle import Oracle

REPS = 2000

#: a metric of one sampler's runs: instance -> that instance's run scores
Runs = dict[str, np.ndarray]


def group_name(sampler: str) -> str:
    """A sampler's group: a policy's run name without its agent seed (``two_modal_sac_seed1`` -> ``two_modal_sac``)."""
    return re.sub(r"_seed\d+$", "", sampler)


def paired_runs(df: pd.DataFrame, metric: str = "selected_val") -> pd.DataFrame:
    """Per episode row: ``gain``, the sampler's score minus uniform's on the same instance and seed (points)."""
    uni = df[df["sampler"] == UNIFORM].set_index(["instance", "seed"])[metric]
    out = df[df["sampler"] != UNIFORM].copy()
    base = uni.reindex(pd.MultiIndex.from_frame(out[["instance", "seed"]])).to_numpy()
    out["gain"] = 100 * (out[metric].to_numpy() - base)
    out["group"] = out["sampler"].map(group_name)
    return out


def runs_of(paired: pd.DataFrame, group: str, normalise: Mapping[str, float] | None = None) -> Runs:
    """Instance -> the group's run gains (divided by ``normalise[instance]``, on those instances only)."""
    part = paired[paired["group"] == group]
    out = {}
    for inst, g in part.groupby("instance", sort=False):
        if normalise is None:
            out[str(inst)] = g["gain"].to_numpy(float)
        elif str(inst) in normalise:
            out[str(inst)] = g["gain"].to_numpy(float) / normalise[str(inst)]
    return out


def oracle_gains(paired: pd.DataFrame, oracles: Mapping[str, Oracle]) -> dict[str, float]:
    """Instance -> the oracle's mean gain on the evaluation seeds, where its gate interval shows headroom."""
    part = paired[paired["sampler"] == ORACLE]
    gains = part.groupby("instance")["gain"].mean()
    return {str(i): float(g) for i, g in gains.items() if i in oracles and oracles[str(i)].headroom and g > 0}


def iqm(runs: Runs) -> float:
    """Interquartile mean over all runs of all instances."""
    return float(trim_mean(np.concatenate(list(runs.values())), 0.25))


def mean(runs: Runs) -> float:
    """Mean over instances of each instance's mean run."""
    return float(np.mean([r.mean() for r in runs.values()]))


def _resample(runs: Runs, rng: np.random.Generator) -> Runs:
    return {k: r[rng.integers(0, len(r), len(r))] for k, r in runs.items()}


def interval(
    runs: Runs, metric: Callable[[Runs], float], reps: int = REPS, seed: int = 0
) -> tuple[float, float, float]:
    """``metric`` and its stratified bootstrap 95% interval (runs resampled within each instance)."""
    rng = np.random.default_rng(seed)
    boot = [metric(_resample(runs, rng)) for _ in range(reps)]
    return metric(runs), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def _poi(x: Runs, y: Runs) -> float:
    probs = []
    for k in x.keys() & y.keys():
        a, b = x[k][:, None], y[k][None, :]
        probs.append(float(np.mean((a > b) + 0.5 * (a == b))))
    return float(np.mean(probs))


def probability_of_improvement(x: Runs, y: Runs, reps: int = REPS, seed: int = 0) -> tuple[float, float, float]:
    """P(a run of X beats a run of Y), averaged over instances, with its stratified bootstrap 95% interval."""
    rng = np.random.default_rng(seed)
    boot = [_poi(_resample(x, rng), _resample(y, rng)) for _ in range(reps)]
    return _poi(x, y), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def _fmt(t: tuple[float, float, float]) -> str:
    return f"{t[0]:+.2f} [{t[1]:+.2f}, {t[2]:+.2f}]"


def aggregate(
    df: pd.DataFrame, oracles: Mapping[str, Oracle], against: str = "heuristic", reps: int = REPS
) -> pd.DataFrame:
    """Per sampler group over the instances of ``df``: the aggregates the issue-18 targets are stated in.

    Columns: normalised IQM and mean (headroom instances), mean gain and mean regret in points (all instances),
    the probability of improvement over ``against`` (all instances), and on the instances without headroom the
    mean gain and the number significantly below uniform by more than 0.5 points.
    """
    paired = paired_runs(df)
    norm = oracle_gains(paired, oracles)
    oracle_mean = {k: float(np.mean(v)) for k, v in runs_of(paired, ORACLE).items()}
    none = {k for k, o in oracles.items() if not o.headroom}
    rows = []
    for group in paired["group"].unique():
        runs = runs_of(paired, group)
        row = {"sampler": group, "runs per instance": int(np.median([len(r) for r in runs.values()]))}
        normed = runs_of(paired, group, norm)
        if normed:
            row["normalised IQM"] = _fmt(interval(normed, iqm, reps))
            row["normalised mean"] = _fmt(interval(normed, mean, reps))
        row["gain (pp)"] = _fmt(interval(runs, mean, reps))
        regret = {k: oracle_mean[k] - r for k, r in runs.items() if k in oracle_mean}
        row["regret (pp)"] = _fmt(interval(regret, mean, reps)) if regret else ""
        if group != against and against in set(paired["group"]):
            row[f"P(better than {against})"] = _fmt(probability_of_improvement(runs, runs_of(paired, against), reps))
        flat = {k: r for k, r in runs.items() if k in none}
        if flat:
            row["gain where no headroom (pp)"] = _fmt(interval(flat, mean, reps))
            row["no-headroom instances below by > 0.5"] = sum(_below(r, 0.5) for r in flat.values())
        rows.append(row)
    return pd.DataFrame(rows)


def t_interval(d: np.ndarray) -> tuple[float, float]:
    """The 95% t-interval of the mean of ``d``."""
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def _below(r: np.ndarray, margin: float) -> bool:
    """Significantly below uniform (t interval's upper end below 0) and by more than ``margin`` points on average."""
    _, high = t_interval(r)
    return bool(high < 0 and r.mean() < -margin)


def versus(df: pd.DataFrame, group: str, against: str = "heuristic") -> pd.DataFrame:
    """Per instance: ``group`` minus ``against`` on the same seeds (agent seeds averaged), mean and 95% interval."""
    paired = paired_runs(df)
    rows = []
    for inst, part in paired.groupby("instance", sort=False):
        a = part[part["group"] == group].groupby("seed")["gain"].mean()
        b = part[part["group"] == against].groupby("seed")["gain"].mean()
        d = (a - b).dropna().to_numpy(float)
        if len(d) < 2:
            continue
        low, high = t_interval(d)
        rows.append(
            {"instance": inst, f"{group} - {against} (pp)": float(d.mean()), "ci95": f"[{low:+.2f}, {high:+.2f}]"}
        )
    return pd.DataFrame(rows)
