"""The headroom gate: before training an agent on a world, check that some sampler can beat uniform there.

``dus headroom ENV_ID --seeds N`` runs, on N held-out environment seeds (agents.seeds.eval_seeds), one episode
per schedule and scores each by its final fused validation accuracy (the whole validation split in the v1
worlds), paired against uniform on the same seed (common initial weights and data order):

- equal budget (every schedule uses M * B samples per iteration, as uniform does):
  constant shares favouring each modality by x in {0.375, 0.5, 0.625} (modality m gets B (1 + x (M - 1)), the
  others B (1 - x)); two-phase schedules (favour one modality by 0.5 in the first half, uniform after); the
  equal-budget heuristic with gamma in {1, 2, 4};
- extra compute, reported apart and never counted in the verdict: each modality's quantity doubled.

The verdict, the last line, is ``headroom: yes`` when the 95% interval of some equal-budget schedule's paired
difference lies above 0, else ``headroom: no``. The best equal-budget constant share is the reference a learned
policy must reach. Episodes are appended to a CSV as they finish; a re-run skips them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agents.evaluation import paired_difference, run_episode
from agents.heuristic import HeuristicSampler
from agents.seeds import eval_seeds
from mml_backbones.observation import DiscrepancyObservation
from mml_backbones.run_dir import CsvLog

SHARES = (0.375, 0.5, 0.625)
GAMMAS = (1.0, 2.0, 4.0)
UNIFORM = "uniform"


@dataclass(frozen=True)
class Schedule:
    """One probe of the gate.

    Attributes:
        name: row label.
        block: "equal budget" or "extra compute".
        sampler: maps the observation to quantities.
        kind: "constant", "two-phase", "heuristic" or "control".
    """

    name: str
    block: str
    sampler: Callable[[DiscrepancyObservation], dict[str, int]]
    kind: str


def _favour(modalities: Sequence[str], m: str, x: float, b: int) -> dict[str, int]:
    k = len(modalities)
    return {n: round(b * (1 + x * (k - 1))) if n == m else round(b * (1 - x)) for n in modalities}


def _first_half(q: dict[str, int], b: int) -> Callable[[DiscrepancyObservation], dict[str, int]]:
    """``q`` for the first half of the schedule, uniform after."""
    return lambda o: q if o.progress < 0.5 else dict.fromkeys(q, b)


def schedules(modalities: Sequence[str], batch_size: int) -> list[Schedule]:
    """The gate's probes for a world with these modalities and nominal batch size."""
    b, mods = batch_size, tuple(modalities)
    out = [Schedule(UNIFORM, "equal budget", lambda o: dict.fromkeys(mods, b), "reference")]
    for m in mods:
        for x in SHARES:
            q = _favour(mods, m, x, b)
            label = "/".join(str(q[n]) for n in mods)
            out.append(Schedule(f"{m} favoured {label}", "equal budget", lambda o, q=q: q, "constant"))
    for m in mods:
        q = _favour(mods, m, 0.5, b)
        label = "/".join(str(q[n]) for n in mods)
        out.append(Schedule(f"{m} favoured {label} first half", "equal budget", _first_half(q, b), "two-phase"))
    for g in GAMMAS:
        out.append(Schedule(f"heuristic gamma {g:g}", "equal budget", HeuristicSampler(g, "equal"), "heuristic"))
    for m in mods:
        q = {n: 2 * b if n == m else b for n in mods}
        out.append(Schedule(f"{m} x2 (more compute)", "extra compute", lambda o, q=q: q, "control"))
    return out


def run_gate(
    env_id: str, seeds: int = 8, csv: str | Path | None = None, progress: bool = False, **env_kwargs
) -> pd.DataFrame:
    """Run (or finish) the gate's episodes on ``env_id``; one row per (schedule, seed); ``progress``: a bar."""
    import gymnasium as gym
    from tqdm.auto import tqdm

    import dus_env  # noqa: F401 - registers the ids

    # the gate scores final validation accuracy, not rewards: no paired reference run needed
    env = gym.make(env_id, **{"reference": False, "reward": "delta_val_acc", **env_kwargs}).unwrapped
    t = env.config.trainer
    log = CsvLog(Path(csv)) if csv is not None else None
    rows = [r for r in log.read() if r.get("env_id") == env_id] if log is not None else []
    done = {(r["schedule"], int(r["seed"])) for r in rows}
    todo = [(s, seed) for s in schedules(env.modalities, t.batch_size) for seed in eval_seeds(seeds)]
    todo = [(s, seed) for s, seed in todo if (s.name, seed) not in done]
    bar = tqdm(todo, desc=f"headroom {env_id}", unit="ep", disable=not progress, leave=False)
    for s, seed in bar:
        bar.set_postfix_str(s.name, refresh=False)
        ep = run_episode(env, s.sampler, seed)
        row = {"env_id": env_id, "schedule": s.name, "block": s.block, "kind": s.kind, "seed": seed}
        row["final_val_acc"] = ep.final_val_acc
        row["samples_per_iteration"] = float(np.mean([sum(q.values()) for q in ep.quantities]))
        row.update({f"mean_n/{m}": float(np.mean([q[m] for q in ep.quantities])) for m in env.modalities})
        rows.append(row)
        if log is not None:
            log.append(row)
    df = pd.DataFrame(rows)
    df["seed"] = df["seed"].astype(int)
    for c in df.columns:
        if c == "final_val_acc" or c.startswith(("mean_n/", "samples_per")):
            df[c] = pd.to_numeric(df[c], errors="coerce")  # a CSV shared by worlds leaves others' columns empty
    return df[df["seed"].isin(eval_seeds(seeds))]


def gate_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per schedule: block, mean final validation accuracy, paired difference to uniform with its 95% CI."""
    rows = []
    for name, part in df.groupby("schedule", sort=False):
        d = paired_difference(df, "final_val_acc", name, UNIFORM, by="schedule")
        rows.append(
            {
                "schedule": name,
                "block": part["block"].iloc[0],
                "kind": part["kind"].iloc[0],
                "samples/iter": part["samples_per_iteration"].mean(),
                "val acc (%)": 100 * part["final_val_acc"].mean(),
                "diff (pp)": 100 * d["mean"] if name != UNIFORM else 0.0,
                "ci95 low": 100 * d["low"] if name != UNIFORM else np.nan,
                "ci95 high": 100 * d["high"] if name != UNIFORM else np.nan,
                "seeds": len(part),
            }
        )
    return pd.DataFrame(rows).set_index("schedule")


def verdict(table: pd.DataFrame) -> bool:
    """True when some equal-budget schedule's paired 95% interval lies above 0 (extra compute never counts)."""
    equal = table[(table["block"] == "equal budget") & (table.index != UNIFORM)]
    return bool((equal["ci95 low"] > 0).any())


def best_constant(table: pd.DataFrame) -> str | None:
    """The equal-budget constant share with the largest mean difference: the learned policy's reference."""
    const = table[table["kind"] == "constant"]
    return None if const.empty else str(const["diff (pp)"].idxmax())


def format_gate(table: pd.DataFrame, env_id: str) -> str:
    """The gate's printed report: the table, the reference and the verdict line."""
    shown = table.copy()
    shown["diff vs uniform (pp, 95% CI)"] = [
        "" if name == UNIFORM else f"{r['diff (pp)']:+.2f} [{r['ci95 low']:+.2f}, {r['ci95 high']:+.2f}]"
        for name, r in shown.iterrows()
    ]
    cols = ["block", "samples/iter", "val acc (%)", "diff vs uniform (pp, 95% CI)", "seeds"]
    shown = shown[cols].round({"samples/iter": 1, "val acc (%)": 2})
    best = best_constant(table)
    lines = [f"headroom gate on {env_id} (final validation accuracy, paired against uniform)", shown.to_string()]
    if best is not None:
        lines.append(f"best equal-budget constant share: {best} ({table.loc[best, 'diff (pp)']:+.2f} pp)")
    lines.append(f"headroom: {'yes' if verdict(table) else 'no'}")
    return "\n".join(lines)
