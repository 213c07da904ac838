"""Scoring samplers on the instances of a set: per instance, paired against uniform, beside the oracle.

Every sampler (a learned policy, the heuristic, a constant share, the instance's oracle share) plays each
instance of a split on the same seeds (evaluation seeds by default, never the gate seeds its oracle was chosen
on), scored by the validation score of the epoch ``fit`` keeps. Per instance and sampler:

- the paired difference to uniform in points with its 95% interval over seeds;
- the regret to the oracle: (oracle share - sampler) in points, on the same seeds;
- the normalised score (sampler - uniform) / (oracle share - uniform), where the oracle has headroom (its cached
  gate-seed interval lies above 0); elsewhere "no harm" is what counts: the difference to uniform.

``dus eval-policy --policy P.zip --instances test`` prints this table for a policy beside uniform and the
heuristic; ``evaluate_instances`` and ``instance_scores`` are the functions behind it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from agents.evaluation import paired_difference, run_episode
from agents.oracle import Oracle, oracle_env
from dus_env.family import InstanceSet, load_instance_set
from mml_backbones.samplers import ConstantSampler, Sampler, make_sampler

UNIFORM = "uniform"
ORACLE = "oracle"


@dataclass(frozen=True)
class PerInstance:
    """Builds a sampler for each instance from its modalities and nominal batch size."""

    build: Callable[[tuple[str, ...], int], Sampler]


#: a sampler, a sampler spec ("heuristic:gamma=2,budget=equal"), or one built per instance
SamplerSource = Sampler | str | PerInstance


def _sampler(source: SamplerSource, modalities: tuple[str, ...], batch_size: int) -> Sampler:
    if isinstance(source, str):
        return make_sampler(source, modalities=modalities, batch_size=batch_size)
    if isinstance(source, PerInstance):
        return source.build(modalities, batch_size)
    return source


def evaluate_instances(
    samplers: Mapping[str, SamplerSource],
    instance_set: str | Path | InstanceSet,
    split: str,
    seeds: Sequence[int],
    oracles: Mapping[str, Oracle] | None = None,
    names: Sequence[str] | None = None,
    progress: bool = False,
    uniform: bool = True,
    **env_kwargs: Any,
) -> pd.DataFrame:
    """One row per (instance, sampler, seed): the kept and last validation scores and the mean quantities.

    ``samplers``: name -> a sampler, a sampler spec, or ``PerInstance(build)``. "uniform" is
    played (the pairing) unless ``uniform=False`` (its rows are on record already); with ``oracles``, each
    instance's oracle share is played as ``"oracle"``.
    ``names``: only these instances of the split. ``progress``: a bar over the episodes (on stderr).
    """
    s = load_instance_set(instance_set)
    instances = [i for i in s.split(split) if names is None or i.name in names]
    per_instance = len(samplers) + uniform + (oracles is not None)  # the samplers, uniform, the oracle (if cached)
    bar = tqdm(total=len(instances) * per_instance * len(seeds), unit="ep", disable=not progress, leave=False)
    rows = []
    for inst in instances:
        envs = {"epoch": oracle_env(s, inst.name, **env_kwargs)}
        mods, b = tuple(envs["epoch"].modalities), envs["epoch"].config.trainer.batch_size
        chosen: dict[str, SamplerSource] = {UNIFORM: UNIFORM, **samplers} if uniform else dict(samplers)
        if oracles is not None and inst.name in oracles:
            chosen[ORACLE] = oracles[inst.name].sampler_spec
        for name, source in chosen.items():
            sampler = _sampler(source, mods, b)
            # a DUS-Family-v2 policy reads the validation context at every decision; the score is the same either way
            context = getattr(sampler, "validation_context", None) or "epoch"
            if context not in envs:
                envs[context] = oracle_env(s, inst.name, **{**env_kwargs, "validation_context": context})
            env = envs[context]
            bar.set_postfix(instance=inst.name, sampler=name)
            for seed in seeds:
                ep = run_episode(env, sampler, seed)
                bar.update()
                row: dict[str, Any] = {"instance": inst.name, "split": inst.split, "sampler": name, "seed": seed}
                row["selected_val"], row["final_val_acc"] = ep.selected_val, ep.final_val_acc
                for i, m in enumerate(mods):  # by position: instances name their modalities differently
                    row[f"mean_n/{i}"] = float(np.mean([q[m] for q in ep.quantities]))
                rows.append(row)
    bar.close()
    return pd.DataFrame(rows)


def instance_scores(
    df: pd.DataFrame, oracles: Mapping[str, Oracle] | None = None, metric: str = "selected_val"
) -> pd.DataFrame:
    """Per (instance, sampler): difference to uniform [95% CI], regret to the oracle, normalised score (points)."""
    rows = []
    for inst, part in df.groupby("instance", sort=False):
        oracle = None if oracles is None else oracles.get(str(inst))
        o = paired_difference(part, metric, ORACLE, UNIFORM, by="sampler") if ORACLE in set(part["sampler"]) else None
        for name in part["sampler"].unique():
            if name == UNIFORM:
                continue
            d = paired_difference(part, metric, name, UNIFORM, by="sampler")
            row: dict[str, Any] = {"instance": inst, "sampler": name}
            row["vs uniform (pp)"] = 100 * d["mean"]
            row["ci95"] = f"[{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]"
            row["significantly below uniform"] = bool(d["high"] < 0)
            if o is not None:
                row["regret (pp)"] = 100 * (o["mean"] - d["mean"])
                headroom = oracle is not None and oracle.headroom
                row["normalised"] = d["mean"] / o["mean"] if headroom and o["mean"] > 0 else np.nan
            if oracle is not None:
                row["oracle direction"] = oracle.direction
            rows.append(row)
    return pd.DataFrame(rows)


def summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Per sampler over instances: mean difference to uniform, mean regret, mean normalised score, instances below."""
    agg: dict[str, Any] = {"vs uniform (pp)": "mean", "significantly below uniform": "sum"}
    if "regret (pp)" in scores:
        agg.update({"regret (pp)": "mean", "normalised": "mean"})
    out = scores.groupby("sampler", sort=False).agg(agg)
    out["instances"] = scores.groupby("sampler", sort=False).size()
    return out


def allocation_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Per (instance, sampler): the mean quantity of each modality position, as "n0/n1" (samples per iteration)."""
    cols = [c for c in df.columns if c.startswith("mean_n/")]
    means = df.groupby(["instance", "sampler"], sort=False)[cols].mean()
    return pd.DataFrame({"mean share": means.apply(lambda r: "/".join(f"{v:.0f}" for v in r), axis=1)})


def best_train_constant(oracles: Mapping[str, Oracle]) -> tuple[tuple[int, ...], float]:
    """The constant share (quantities by modality position) with the best mean gain over the train instances.

    The baseline a single allocation reaches without reading the run: the same quantities for the first and the
    second modality of every instance, chosen on the train instances' oracle episodes (gate seeds).
    """
    gains: dict[tuple[int, ...], list[float]] = {}
    for o in oracles.values():
        if o.split != "train":
            continue
        for label, (mean, _, _) in o.shares.items():
            q = tuple(int(n) for n in label.split(" favoured ")[1].split()[0].split("/"))
            gains.setdefault(q, []).append(mean)
    if not gains:
        raise ValueError("no train instances among the oracles")
    best = max(gains, key=lambda q: float(np.mean(gains[q])))
    return best, float(np.mean(gains[best]))


def positional_constant(quantities: Sequence[int]) -> PerInstance:
    """The same quantities by modality position in every instance (whatever the modalities are called)."""
    return PerInstance(lambda mods, b: ConstantSampler(dict(zip(mods, (int(n) for n in quantities)))))
