"""Aggregates over instances: IQM, stratified bootstrap intervals, probability of improvement, the random baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents.family_stats import aggregate, group_name, interval, iqm, mean, probability_of_improvement, versus
from agents.oracle import Oracle
from agents.random_sampler import RandomSampler
from mml_backbones.errors import ConfigError


def test_iqm_drops_the_outer_quartiles_and_the_bootstrap_brackets_it():
    runs = {"a": np.array([0.0, 1, 2, 3, 100]), "b": np.array([-100.0, 1, 2, 3, 4])}
    assert iqm(runs) == pytest.approx(np.mean([1, 2, 2, 3, 3, 3]), abs=0.5)  # the extremes never count
    assert mean(runs) == pytest.approx(np.mean([21.2, -18.0]))
    m, lo, hi = interval(runs, iqm, reps=300)
    assert lo <= m <= hi


def test_probability_of_improvement_is_one_half_for_equals_and_one_for_a_clear_win():
    x = {"a": np.arange(10.0), "b": np.arange(10.0)}
    assert probability_of_improvement(x, x, reps=200)[0] == pytest.approx(0.5)
    better = {k: v + 100 for k, v in x.items()}
    p, lo, hi = probability_of_improvement(better, x, reps=200)
    assert p == lo == hi == 1.0


def _oracle(name: str, headroom: bool) -> Oracle:
    return Oracle(name, "test", ("a", "b"), "a", "", {"a": 96, "b": 32}, "a", 0.5, 1.0, 0.5, 1.5, headroom,
                  "weak" if headroom else "none", (0.0, -1.0, 1.0), 80.0)  # fmt: skip


def test_aggregate_scores_the_oracle_one_and_counts_harm_where_nothing_beats_uniform():
    rows = []
    for inst, head in (("up", True), ("flat", False)):
        for seed in range(8):
            base = 0.8 + 0.01 * seed
            for sampler, gain in (
                ("uniform", 0),
                ("oracle", 0.02 if head else 0.0),
                ("heuristic", 0.0),
                ("pol_seed0", 0.02 if head else -0.01),
                ("pol_seed1", 0.02 if head else -0.01),
            ):
                jitter = 0.001 * ((seed * 7 + len(sampler)) % 3) if sampler != "uniform" else 0
                rows.append({"instance": inst, "split": "test", "sampler": sampler, "seed": seed,
                             "selected_val": base + gain + jitter})  # fmt: skip
    df = pd.DataFrame(rows)
    oracles = {"up": _oracle("up", True), "flat": _oracle("flat", False)}
    agg = aggregate(df, oracles, reps=200).set_index("sampler")
    assert list(agg.index) == ["oracle", "heuristic", "pol"]  # agent seeds grouped
    assert agg.loc["pol", "runs per instance"] == 16
    assert float(agg.loc["pol", "normalised IQM"].split()[0]) == pytest.approx(1.0, abs=0.05)
    assert agg.loc["pol", "no-headroom instances below by > 0.5"] == 1
    assert agg.loc["heuristic", "no-headroom instances below by > 0.5"] == 0
    # wins every pair on one instance and loses every pair on the other
    assert float(agg.loc["pol", "P(better than heuristic)"].split()[0]) == pytest.approx(0.5, abs=0.05)
    vs = versus(df, "pol").set_index("instance")
    assert vs.loc["up", "pol - heuristic (pp)"] == pytest.approx(2.0, abs=0.2)
    assert group_name("two_modal_sac_seed12") == "two_modal_sac" and group_name("heuristic") == "heuristic"


def test_the_random_sampler_keeps_the_budget_follows_its_seed_and_checks_its_spec():
    a, b = RandomSampler(3), RandomSampler(3)
    fake = type("Obs", (), {"modalities": ("a", "b"), "nominal_batch_size": 64})()
    qa = [a(fake) for _ in range(5)]
    assert qa == [b(fake) for _ in range(5)] and all(sum(q.values()) == 128 for q in qa)
    assert len({tuple(q.values()) for q in qa}) > 1
    with pytest.raises(ConfigError, match="seed"):
        RandomSampler.from_spec("x")


def test_policy_generalist_names_the_committed_generalist():
    from mml_backbones.samplers import make_sampler

    sampler = make_sampler("policy:generalist", modalities=("a", "b"))
    assert sampler.metadata["trained_by"] == "imitation" and sampler.path.name == "policy.zip"
    with pytest.raises(ConfigError, match="trained for 2 modalities"):
        make_sampler("policy:generalist", modalities=("a", "b", "c"))
