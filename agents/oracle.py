"""The oracle of an instance: the headroom gate's best equal-budget constant share, found on the gate seeds.

For every instance of a set (``dus_env.family``) the core probes of the gate (``agents.headroom.core_schedules``:
uniform, the constant shares favouring each modality by x in ``SHARES`` up to the action bounds, and the
equal-budget heuristic with gamma 2) play one episode per gate seed (``dus_env.seeds``: 40000..., apart from the
train, selection, evaluation and downstream seeds), each scored by the validation score of the epoch ``fit``
would keep, and paired against uniform on the same seed.

- The oracle share is the constant share with the largest mean paired difference; it *has headroom* when its
  95% interval lies above 0. It is the reference a policy is normalised by: (policy - uniform) / (oracle -
  uniform), where the oracle has headroom.
- Its direction: ``"none"`` without headroom; else ``"weak"`` when it favours the modality with the lower
  cumulative score S under uniform (the modality DUS's heuristic favours), ``"strong"`` when it favours the other.

The oracles of a set are cached beside it (``dus_env/instances/<set>.oracle.json``: the grid, the seeds, every
share's paired mean and interval, the chosen share, its headroom, the heuristic's difference on the same seeds);
``python -m benchmarks.family_oracle`` computes them and ``load_oracles`` reads them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.evaluation import paired_difference
from agents.headroom import SCORE, SHARES, UNIFORM, core_schedules, run_schedules
from dus_env.family import INSTANCES_DIR, DUSFamilyEnv, InstanceSet, load_instance_set
from mml_backbones.errors import ConfigError, DataFileNotFoundError

HEURISTIC = "heuristic gamma 2"
DIRECTIONS = ("weak", "none", "strong")


@dataclass(frozen=True)
class Oracle:
    """One instance's oracle.

    Attributes:
        instance: its name; split: its split.
        modalities: its modalities, in order.
        weak: the modality with the lower mean final S under uniform (what the heuristic favours).
        share: the chosen share's label (e.g. "weak favoured 16/112"); quantities: its n_m.
        favoured: the modality it favours; strength: x, how strongly (B (1 + x) against B (1 - x)).
        gain, low, high: its paired difference to uniform (points) with the 95% interval.
        headroom: ``low > 0``.
        direction: "weak", "none" or "strong" (see the module docstring).
        heuristic: the heuristic's (gamma 2) paired difference and interval, (mean, low, high).
        uniform: uniform's mean kept validation accuracy (%).
        shares: every share's label -> (mean, low, high).
        seeds: the gate seeds scored.
    """

    instance: str
    split: str
    modalities: tuple[str, ...]
    weak: str
    share: str
    quantities: dict[str, int]
    favoured: str
    strength: float
    gain: float
    low: float
    high: float
    headroom: bool
    direction: str
    heuristic: tuple[float, float, float]
    uniform: float
    shares: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()

    @property
    def sampler_spec(self) -> str:
        """The oracle share as a sampler spec (``constant:a=16,b=112``)."""
        return "constant:" + ",".join(f"{m}={n}" for m, n in self.quantities.items())


def oracle_env(instance_set: str | Path | InstanceSet, name: str, **env_kwargs: Any):  # -> DUSEnv
    """The environment that plays instance ``name`` for its oracle (no reference run: uniform is a probe)."""
    family = DUSFamilyEnv(instance_set, instance=name, **{"reference": False, "reward": "delta_val_acc", **env_kwargs})
    return family.instance_env(name)


def run_instance(
    instance_set: str | Path | InstanceSet,
    name: str,
    seeds: Sequence[int],
    done: set[tuple[str, int]] | None = None,
    **env_kwargs: Any,
) -> list[dict[str, Any]]:
    """The oracle probes' episodes of instance ``name`` on ``seeds`` (those not in ``done``), one row each."""
    s = load_instance_set(instance_set)
    env = oracle_env(s, name, **env_kwargs)
    probes = core_schedules(env.modalities, env.config.trainer.batch_size)
    key = {"instance_set": s.name, "instance": name, "split": s.get(name).split}
    return run_schedules(env, probes, seeds, key, done=done)


def _played(df: pd.DataFrame, label: str, modalities: Sequence[str]) -> dict[str, int]:
    """The quantities schedule ``label`` gave each modality, read from its episodes by name.

    The label's numbers follow the instance's modality order, which the episode table's columns need not (an
    instance may put the weak modality first), so they are not parsed positionally.
    """
    played = df[df["schedule"] == label]
    return {m: round(float(played[f"mean_n/{m}"].mean())) for m in modalities}


def oracle_of(df: pd.DataFrame, modalities: Sequence[str]) -> Oracle:
    """The oracle of one instance from its probe episodes (rows of ``run_instance``, scores numeric)."""
    first = df.iloc[0]
    seeds = sorted(int(x) for x in df["seed"].unique())
    uni = df[df["schedule"] == UNIFORM]
    if uni.empty:
        raise ConfigError(f"instance {first['instance']!r}: no uniform episodes to pair with")
    s_mean = {m: float(uni[f"S/{m}"].mean()) for m in modalities}
    weak = min(modalities, key=lambda m: s_mean[m])
    shares = {}
    for label in df.loc[df["kind"] == "constant", "schedule"].unique():
        d = paired_difference(df, SCORE, label, UNIFORM, by="schedule")
        shares[str(label)] = (100 * d["mean"], 100 * d["low"], 100 * d["high"])
    best = max(shares, key=lambda k: shares[k][0])
    gain, low, high = shares[best]
    favoured = best.split(" favoured ")[0]
    q = _played(df, best, modalities)
    b = float(np.mean(list(q.values())))
    strength = round(abs(q[favoured] - b) / b / max(1, len(modalities) - 1), 4)
    headroom = bool(low > 0)
    direction = "none" if not headroom else "weak" if favoured == weak else "strong"
    h = paired_difference(df, SCORE, HEURISTIC, UNIFORM, by="schedule")
    return Oracle(
        instance=str(first["instance"]),
        split=str(first["split"]),
        modalities=tuple(modalities),
        weak=weak,
        share=best,
        quantities=q,
        favoured=favoured,
        strength=strength,
        gain=gain,
        low=low,
        high=high,
        headroom=headroom,
        direction=direction,
        heuristic=(100 * h["mean"], 100 * h["low"], 100 * h["high"]),
        uniform=100 * float(uni[SCORE].mean()),
        shares=shares,
        seeds=tuple(seeds),
    )


def oracles_of(df: pd.DataFrame, instance_set: str | Path | InstanceSet) -> dict[str, Oracle]:
    """Every instance's oracle from the episodes of a set (instances without episodes are left out)."""
    s = load_instance_set(instance_set)
    out = {}
    for inst in s.instances:
        part = df[df["instance"] == inst.name]
        if part.empty:
            continue
        mods = [c[2:] for c in part.columns if c.startswith("S/") and part[c].notna().any()]
        order = inst.trainer.get("modalities")  # the instance's own order (the table's columns have another)
        out[inst.name] = oracle_of(part, [m for m in order if m in mods] if order else mods)
    return out


def oracle_table(oracles: dict[str, Oracle]) -> pd.DataFrame:
    """One row per instance: the oracle share, its gain with interval, headroom, direction, the heuristic's gain."""
    rows = []
    for o in oracles.values():
        h = o.heuristic
        rows.append(
            {
                "instance": o.instance,
                "split": o.split,
                "weak (lower S)": o.weak,
                "oracle share": o.share,
                "oracle vs uniform (pp)": f"{o.gain:+.2f} [{o.low:+.2f}, {o.high:+.2f}]",
                "headroom": "yes" if o.headroom else "no",
                "direction": o.direction,
                "heuristic vs uniform (pp)": f"{h[0]:+.2f} [{h[1]:+.2f}, {h[2]:+.2f}]",
                "heuristic regret (pp)": round(o.gain - h[0], 2),
                "uniform val acc (%)": round(o.uniform, 2),
                "seeds": len(o.seeds),
            }
        )
    return pd.DataFrame(rows).set_index("instance")


def cache_path(instance_set: str | Path | InstanceSet) -> Path:
    """Where a set's oracles are cached: beside its file (``<set>.oracle.json``)."""
    s = load_instance_set(instance_set)
    folder = s.path.parent if s.path is not None else INSTANCES_DIR
    return folder / f"{s.name}.oracle.json"


def write_oracles(oracles: dict[str, Oracle], instance_set: str | Path | InstanceSet, path: Path | None = None) -> Path:
    """Write a set's oracle cache (the grid, the seeds and every instance's oracle)."""
    s = load_instance_set(instance_set)
    path = path or cache_path(s)
    seeds = sorted({x for o in oracles.values() for x in o.seeds})
    doc = {
        "instance_set": s.name,
        "score": "validation score of the epoch fit keeps (selected_val), paired against uniform, in points",
        "grid": {"shares": list(SHARES), "both_directions": True, "heuristic": HEURISTIC},
        "seeds": seeds,
        "oracles": {k: asdict(o) for k, o in oracles.items()},
    }
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def load_oracles(instance_set: str | Path | InstanceSet, path: Path | None = None) -> dict[str, Oracle]:
    """A set's cached oracles (``python -m benchmarks.family_oracle`` writes them)."""
    path = path or cache_path(instance_set)
    if not path.is_file():
        raise DataFileNotFoundError(f"no oracle cache {path}: compute it with python -m benchmarks.family_oracle")
    doc = json.loads(path.read_text())
    out = {}
    for name, o in doc["oracles"].items():
        o = {**o, "modalities": tuple(o["modalities"]), "heuristic": tuple(o["heuristic"]), "seeds": tuple(o["seeds"])}
        o["shares"] = {k: tuple(v) for k, v in o["shares"].items()}
        out[name] = Oracle(**o)
    return out
