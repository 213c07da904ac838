"""The headroom gate: before training an agent on a world, check that some sampler can beat uniform there.

``dus headroom ENV_ID --seeds N`` runs, on the first N gate seeds (``dus_env.seeds``: 40000..., apart from the
evaluation seeds 10000... that score policies), one episode per schedule and scores each by the validation score
of the epoch ``fit`` would keep (``selected_val``: the best over epoch ends by the run's selection metric, on the
whole validation split in the v1 worlds), paired against uniform on the same seed (common initial weights and
data order). The last evaluation's accuracy (``final_val_acc``, the score of the gates before issue 18) is
recorded beside it; ``gate_table(df, "final_val_acc")`` reproduces the old tables.

- equal budget (every schedule uses M * B samples per iteration, as uniform does):
  constant shares favouring each modality by x in ``SHARES`` (modality m gets B (1 + x (M - 1)), the others
  B (1 - x)), up to the action bounds (x = 0.75: the floor of 16 of 64 for the others, 16/112 with two
  modalities); two-phase schedules (favour one modality by 0.5 in the first half, uniform after); the
  equal-budget heuristic with gamma in {1, 2, 4};
- extra compute, reported apart and never counted in the verdict: each modality's quantity doubled.

The verdict, the last line, is ``headroom: yes`` when the 95% interval of some equal-budget schedule's paired
difference lies above 0, else ``headroom: no``. The best equal-budget constant share is the reference a learned
policy must reach (for an instance family, its oracle: ``agents.oracle``). Episodes are appended to a CSV as
they finish; a re-run skips them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.evaluation import paired_difference, run_episode
from agents.heuristic import HeuristicSampler
from dus_env.env import DUSEnv
from dus_env.seeds import gate_seeds
from mml_backbones.errors import ConfigError
from mml_backbones.observation import DiscrepancyObservation
from mml_backbones.run_dir import CsvLog

#: how strongly a constant share favours one modality, up to the action bounds' 0.75 (16/112 with B = 64, M = 2)
SHARES = (0.125, 0.25, 0.5, 0.75)
GAMMAS = (1.0, 2.0, 4.0)
UNIFORM = "uniform"
#: the gate's score: the validation score of the epoch fit keeps; the last evaluation's is LAST_SCORE
SCORE = "selected_val"
LAST_SCORE = "final_val_acc"


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


def share_label(q: dict[str, int], modalities: Sequence[str]) -> str:
    """``"24/104"``: the quantities in modality order."""
    return "/".join(str(q[n]) for n in modalities)


def constant_shares(modalities: Sequence[str], batch_size: int, shares: Sequence[float] = SHARES) -> list[Schedule]:
    """The equal-budget constant shares favouring each modality by each x of ``shares``."""
    out = []
    for m in modalities:
        for x in shares:
            q = _favour(modalities, m, x, batch_size)
            out.append(
                Schedule(f"{m} favoured {share_label(q, modalities)}", "equal budget", lambda o, q=q: q, "constant")
            )
    return out


def uniform_schedule(modalities: Sequence[str], batch_size: int) -> Schedule:
    """Uniform quantities, B each: what every schedule is paired against."""
    mods = tuple(modalities)
    return Schedule(UNIFORM, "equal budget", lambda o: dict.fromkeys(mods, batch_size), "reference")


def schedules(modalities: Sequence[str], batch_size: int) -> list[Schedule]:
    """The gate's probes for a world with these modalities and nominal batch size."""
    b, mods = batch_size, tuple(modalities)
    out = [uniform_schedule(mods, b), *constant_shares(mods, b)]
    for m in mods:
        q = _favour(mods, m, 0.5, b)
        out.append(
            Schedule(f"{m} favoured {share_label(q, mods)} first half", "equal budget", _first_half(q, b), "two-phase")
        )
    for g in GAMMAS:
        out.append(Schedule(f"heuristic gamma {g:g}", "equal budget", HeuristicSampler(g, "equal"), "heuristic"))
    for m in mods:
        q = {n: 2 * b if n == m else b for n in mods}
        out.append(Schedule(f"{m} x2 (more compute)", "extra compute", lambda o, q=q: q, "control"))
    return out


def core_schedules(modalities: Sequence[str], batch_size: int, gamma: float = 2.0) -> list[Schedule]:
    """The probes an oracle needs: uniform, every constant share of the grid, and the heuristic (gamma 2).

    The instance oracles (``agents.oracle``) run these; ``dus headroom --probes core`` runs them on a world
    (about half the episodes of the full gate: no two-phase schedules, one gamma, no extra compute).
    """
    b = batch_size
    heuristic = Schedule(f"heuristic gamma {gamma:g}", "equal budget", HeuristicSampler(gamma, "equal"), "heuristic")
    return [uniform_schedule(modalities, b), *constant_shares(modalities, b), heuristic]


PROBES = {"full": schedules, "core": core_schedules}


def run_schedules(
    env: DUSEnv,
    probes: Sequence[Schedule],
    seeds: Sequence[int],
    key: dict[str, Any],
    log: CsvLog | None = None,
    done: set[tuple[str, int]] | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One episode per (probe, seed) not in ``done``; a row each (``key``'s columns first), appended to ``log``.

    ``progress``: a progress bar over the episodes to run.
    """
    from tqdm.auto import tqdm

    todo = [(s, seed) for s in probes for seed in seeds if done is None or (s.name, seed) not in done]
    bar = tqdm(todo, desc=f"headroom {key.get('env_id', '')}".strip(), unit="ep", disable=not progress, leave=False)
    rows = []
    for s, seed in bar:
        bar.set_postfix_str(s.name, refresh=False)
        wall, cpu = time.perf_counter(), time.process_time()
        ep = run_episode(env, s.sampler, seed)
        row = {**key, "schedule": s.name, "block": s.block, "kind": s.kind, "seed": seed}
        row["seconds"], row["cpu_seconds"] = time.perf_counter() - wall, time.process_time() - cpu
        row[SCORE], row["selected_epoch"], row[LAST_SCORE] = ep.selected_val, ep.selected_epoch, ep.final_val_acc
        row["samples_per_iteration"] = float(np.mean([sum(q.values()) for q in ep.quantities]))
        row.update({f"mean_n/{m}": float(np.mean([q[m] for q in ep.quantities])) for m in env.modalities})
        row.update({f"S/{m}": ep.cumulative[-1][m] for m in env.modalities})  # the final S_t(m)
        rows.append(row)
        if log is not None:
            log.append(row)
    return rows


def run_gate(
    env_id: str,
    seeds: int = 8,
    csv: str | Path | None = None,
    probes: str = "full",
    progress: bool = False,
    **env_kwargs: Any,
) -> pd.DataFrame:
    """Run (or finish) the gate's episodes on ``env_id`` on the first ``seeds`` gate seeds; one row per episode.

    ``probes``: "full" (``schedules``) or "core" (``core_schedules``: uniform, constant shares, heuristic gamma 2).
    ``progress``: a progress bar.
    """
    if probes not in PROBES:
        raise ConfigError(f"unknown probe set {probes!r}; valid: {list(PROBES)}")
    import gymnasium as gym

    import dus_env  # noqa: F401 - registers the ids

    # the gate scores the runs themselves, not rewards: no paired reference run needed (uniform is a probe)
    env = gym.make(env_id, **{"reference": False, "reward": "delta_val_acc", **env_kwargs}).unwrapped
    log = CsvLog(Path(csv)) if csv is not None else None
    rows = [r for r in log.read() if r.get("env_id") == env_id] if log is not None else []
    done = {(r["schedule"], int(r["seed"])) for r in rows}
    chosen = PROBES[probes](env.modalities, env.config.trainer.batch_size)
    rows += run_schedules(env, chosen, gate_seeds(seeds), {"env_id": env_id}, log, done, progress)
    names = {s.name for s in chosen}
    rows = [r for r in rows if r["schedule"] in names]
    return numeric_rows(rows, gate_seeds(seeds))


def numeric_rows(rows: Sequence[dict[str, Any]], seeds: Sequence[int]) -> pd.DataFrame:
    """Episode rows (from a CSV, strings) as a DataFrame with numeric scores, restricted to ``seeds``."""
    df = pd.DataFrame(list(rows))
    df["seed"] = df["seed"].astype(int)
    for c in df.columns:
        if c in (SCORE, LAST_SCORE, "selected_epoch", "seconds", "cpu_seconds") or c.startswith(
            ("mean_n/", "samples_per", "S/")
        ):
            df[c] = pd.to_numeric(df[c], errors="coerce")  # a CSV shared by worlds leaves others' columns empty
    return df[df["seed"].isin(list(seeds))]


def gate_table(df: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Per schedule: block, mean score, paired difference to uniform with its 95% CI.

    ``metric``: ``SCORE`` (the kept epoch's validation score; the default when the rows have it) or
    ``LAST_SCORE`` (the last evaluation's, the only score of gate CSVs written before it).
    """
    metric = metric or (SCORE if SCORE in df else LAST_SCORE)
    rows = []
    for name, part in df.groupby("schedule", sort=False):
        d = paired_difference(df, metric, name, UNIFORM, by="schedule")
        rows.append(
            {
                "schedule": name,
                "block": part["block"].iloc[0],
                "kind": part["kind"].iloc[0],
                "samples/iter": part["samples_per_iteration"].mean(),
                "val acc (%)": 100 * part[metric].mean(),
                "diff (pp)": 100 * d["mean"] if name != UNIFORM else 0.0,
                "ci95 low": 100 * d["low"] if name != UNIFORM else np.nan,
                "ci95 high": 100 * d["high"] if name != UNIFORM else np.nan,
                "seeds": len(part),
            }
        )
    out = pd.DataFrame(rows).set_index("schedule")
    out.attrs["metric"] = metric
    return out


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
    score = "last evaluation's" if table.attrs.get("metric") == LAST_SCORE else "kept epoch's"
    lines = [f"headroom gate on {env_id} ({score} validation accuracy, paired against uniform)", shown.to_string()]
    if best is not None:
        lines.append(f"best equal-budget constant share: {best} ({table.loc[best, 'diff (pp)']:+.2f} pp)")
    lines.append(f"headroom: {'yes' if verdict(table) else 'no'}")
    return "\n".join(lines)
