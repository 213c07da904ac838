import shutil

import numpy as np
import pandas as pd
import pytest

from benchmarks import rl_scores
from benchmarks.rl_curves import curves, parse_run

SEEDS = (10000, 3)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("DUS-v1_ppo", ("DUS-v1", "ppo", "", 0)),
        ("DUS-Strong-v1_reinforce_seed2", ("DUS-Strong-v1", "reinforce", "", 2)),
        ("DUS-v1_ppo-discrepancy_seed1", ("DUS-v1", "ppo", "discrepancy", 1)),
        ("DUS-HAPT-v1_sac-1step", ("DUS-HAPT-v1", "sac", "1step", 0)),
    ],
)
def test_run_names_give_world_algorithm_variant_and_seed(name, expected):
    parsed = parse_run(name)
    assert (parsed["world"], parsed["algo"], parsed["variant"], parsed["seed"]) == expected


def test_other_names_are_not_runs():
    assert parse_run("references_DUS-v1_10000_10.csv") is None
    assert parse_run("notes") is None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two agent seeds of a tiny PPO run (the second a copy of the first) and an ablation variant."""
    from agents.training import train_policy

    root = tmp_path_factory.mktemp("policies")
    hyper = {"n_steps": 8, "batch_size": 8, "n_epochs": 1}
    train_policy("dus_env/DUS-Tiny-v1", "ppo", 16, root / "DUS-Tiny-v1_ppo", hyperparams=hyper, eval_freq=8)
    shutil.copytree(root / "DUS-Tiny-v1_ppo", root / "DUS-Tiny-v1_ppo_seed1")
    features = {"observation_features": ["cumulative", "ratio", "progress"]}
    out = root / "DUS-Tiny-v1_ppo-discrepancy"
    train_policy("dus_env/DUS-Tiny-v1", "ppo", 16, out, env_kwargs=features, hyperparams=hyper, eval_freq=8)
    return root


def test_every_run_is_scored_against_the_heuristic_on_the_evaluation_seeds(runs):
    df = rl_scores.score_runs(runs, SEEDS)
    assert sorted(zip(df["variant"], df["seed"])) == [("", 0), ("", 1), ("discrepancy", 0)]
    for _, row in df.iterrows():
        scores = pd.read_csv(runs / row["run"] / "eval_policy_best_10000_3.csv")
        assert list(scores["seed"]) == [10000, 10001, 10002]
        assert row["vs_uniform"] == pytest.approx(scores["return"].mean() / 100)  # the paired return
        assert row["steps"] == 16 and row["wall_s"] > 0
    refs = pd.read_csv(runs / "references_DUS-Tiny-v1_10000_3.csv")
    assert set(refs["sampler"]) == {"heuristic"}  # no gate has run on the tiny world: no best share
    table = rl_scores.over_seeds(df)
    assert table.loc[("DUS-Tiny-v1", "ppo", ""), "agent seeds"] == 2
    assert table.loc[("DUS-Tiny-v1", "ppo", ""), "vs_heuristic (pp)"].endswith("± 0.00")  # identical copies


def test_scores_are_computed_once_then_read(runs, monkeypatch):
    first = rl_scores.score_runs(runs, SEEDS)

    def no_episodes(*args, **kwargs):
        raise AssertionError("a scored run was played again")

    monkeypatch.setattr("agents.evaluation.evaluate_in_env", no_episodes)
    again = rl_scores.score_runs(runs, SEEDS)
    pd.testing.assert_frame_equal(first, again)


def test_the_curves_read_every_run_with_its_variant(runs):
    df = curves(runs)
    assert set(df["variant"]) == {"", "discrepancy"}
    assert sorted(df.groupby(["variant", "seed"])["steps"].max()) == [16, 16, 16]


def test_the_downstream_policy_is_the_agent_seed_best_on_the_selection_seeds(runs, tmp_path):
    from benchmarks.rl_curves import kept_run

    root = tmp_path / "policies"
    shutil.copytree(runs, root)
    ev = root / "DUS-Tiny-v1_ppo_seed1" / "eval" / "evaluations.npz"
    with np.load(ev) as data:
        fields = dict(data)
    fields["results"] = fields["results"] + 5.0  # seed 1 now did better on the selection seeds
    np.savez(ev, **fields)
    assert kept_run("DUS-Tiny-v1", "ppo", root=root).name == "DUS-Tiny-v1_ppo_seed1"
    assert kept_run("DUS-Tiny-v1", "ppo", "discrepancy", root=root).name == "DUS-Tiny-v1_ppo-discrepancy"
    assert kept_run("DUS-Tiny-v1", "sac", root=root) is None
