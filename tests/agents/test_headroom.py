"""The headroom gate: its probes keep the budget, and its verdict logic on stub tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from agents.headroom import UNIFORM, best_constant, format_gate, gate_table, run_gate, schedules, verdict
from dus_env.seeds import gate_seeds
from mml_backbones.observation import DiscrepancyObservation


def obs(progress: float) -> DiscrepancyObservation:
    z = np.zeros(2)
    return DiscrepancyObservation(("strong", "weak"), z, z, z.astype(int), progress, 0, 64)


def test_equal_budget_probes_use_m_times_b_and_controls_use_more():
    for s in schedules(("strong", "weak"), 64):
        for p in (0.1, 0.9):
            total = sum(s.sampler(obs(p)).values())
            assert total == 128 if s.block == "equal budget" else total > 128
    names = [s.name for s in schedules(("a", "b", "c"), 64)]
    assert "a favoured 160/16/16" in names and "c x2 (more compute)" in names
    # the grid reaches the action bounds in both directions (the floor of 16 of 64)
    two = [s.name for s in schedules(("strong", "weak"), 64)]
    assert {"strong favoured 112/16", "weak favoured 16/112", "weak favoured 56/72"} <= set(two)


def stub(diffs: dict[str, tuple[str, str, list[float]]]) -> pd.DataFrame:
    rows = []
    for seed in range(8):
        rows.append({"schedule": UNIFORM, "block": "equal budget", "kind": "reference", "seed": seed,
                     "selected_val": 0.8 + 0.01 * seed, "samples_per_iteration": 128.0})  # fmt: skip
        for name, (block, kind, d) in diffs.items():
            rows.append({"schedule": name, "block": block, "kind": kind, "seed": seed,
                         "selected_val": 0.8 + 0.01 * seed + d[seed], "samples_per_iteration": 128.0})  # fmt: skip
    return pd.DataFrame(rows)


def test_the_verdict_counts_equal_budget_schedules_only():
    noise = [0.001, -0.001] * 4
    up = [0.03 + e for e in noise]
    yes = gate_table(stub({"weak favoured": ("equal budget", "constant", up)}))
    assert verdict(yes) and best_constant(yes) == "weak favoured"
    assert format_gate(yes, "stub").splitlines()[-1] == "headroom: yes"
    more = gate_table(stub({"weak x2": ("extra compute", "control", up), "flat": ("equal budget", "constant", noise)}))
    assert not verdict(more)  # a gain bought with extra compute is not headroom
    assert format_gate(more, "stub").splitlines()[-1] == "headroom: no"


def test_the_gate_runs_on_gate_seeds_and_resumes_from_its_csv(tmp_path, capsys):
    csv = tmp_path / "gate.csv"
    first = run_gate("dus_env/DUS-Tiny-v1", 2, csv, progress=True)
    err = capsys.readouterr().err  # the progress bar counts the episodes and names the schedule being played
    assert "headroom dus_env/DUS-Tiny-v1" in err and f"/{len(first)}" in err and "heuristic gamma" in err
    again = run_gate("dus_env/DUS-Tiny-v1", 2, csv)  # every episode is found: nothing runs twice
    assert len(first) == len(again) == 2 * len(schedules(("strong", "weak"), 32))
    assert sorted(set(first["seed"])) == gate_seeds(2) == [40000, 40001]
    for col in ("selected_val", "final_val_acc"):
        assert np.allclose(first[col].to_numpy(), again[col].to_numpy())
    assert (first["selected_val"] >= first["final_val_acc"]).all()  # one epoch here: the kept one is the last
    assert gate_table(first).attrs["metric"] == "selected_val"
    assert gate_table(first.drop(columns="selected_val")).attrs["metric"] == "final_val_acc"  # old CSVs
