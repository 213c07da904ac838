"""Instance oracles (cached beside the set), a generalist trained on a family, and its per-instance scores."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from agents.family_eval import evaluate_instances, instance_scores, summary
from agents.headroom import UNIFORM, numeric_rows
from agents.oracle import cache_path, load_oracles, oracle_of, oracle_table, oracles_of, run_instance, write_oracles
from dus_env.family import load_instance_set
from dus_env.seeds import gate_seeds
from mml_backbones.cli import main
from mml_backbones.errors import DataFileNotFoundError

SEEDS = gate_seeds(2)


@pytest.fixture
def tiny_oracles(tiny_set_data, write_set):
    """The tiny set's path and its oracle episodes (two gate seeds) for one train and the test instance."""
    path = write_set(tiny_set_data)
    rows = run_instance(path, "s0", SEEDS) + run_instance(path, "mine", SEEDS)
    return path, numeric_rows(rows, SEEDS)


def test_oracles_are_found_on_gate_seeds_cached_beside_the_set_and_read_back(tiny_oracles):
    path, df = tiny_oracles
    assert set(df["seed"]) == set(SEEDS) and set(df["instance"]) == {"s0", "mine"}
    # uniform, four shares each way, the heuristic: per instance and seed
    assert len(df[df["instance"] == "s0"]) == 2 * 10
    oracles = oracles_of(df, path)
    o = oracles["s0"]
    assert o.share in o.shares and o.gain == max(v[0] for v in o.shares.values())
    assert o.headroom == (o.low > 0) and (o.direction == "none") == (not o.headroom)
    assert sum(o.quantities.values()) == 64 and o.seeds == tuple(SEEDS) and o.split == "train"
    assert o.sampler_spec.startswith("constant:strong=")
    assert oracles["mine"].modalities == ("a", "b") and oracles["mine"].split == "test"
    written = write_oracles(oracles, path)
    assert written == cache_path(path) and written.name == "tiny.oracle.json"
    assert load_oracles(path) == oracles
    table = oracle_table(oracles)
    assert list(table.index) == ["s0", "mine"] and "heuristic vs uniform (pp)" in table


def test_the_direction_names_the_modality_with_the_lower_score():
    rows = []
    for seed in range(6):
        jitter = 0.001 * (seed % 2)
        for name, kind, acc, s_a, s_b, n_a in [
            (UNIFORM, "reference", 0.80, 0.6, 0.3, 64),
            ("b favoured 16/112", "constant", 0.83 + jitter, 0.5, 0.4, 16),  # favours b, the lower S: "weak"
            ("a favoured 112/16", "constant", 0.78 - jitter, 0.7, 0.2, 112),
            ("heuristic gamma 2", "heuristic", 0.82, 0.5, 0.4, 40),
        ]:
            rows.append({"instance": "x", "split": "train", "schedule": name, "kind": kind, "seed": seed,
                         "selected_val": acc, "S/a": s_a, "S/b": s_b,
                         "mean_n/b": 128 - n_a, "mean_n/a": n_a})  # fmt: skip
    o = oracle_of(pd.DataFrame(rows), ("a", "b"))
    assert o.weak == "b" and o.share == "b favoured 16/112" and o.direction == "weak" and o.strength == 0.75
    # the share's quantities are read by name, whatever order the table's columns or the modalities come in
    assert o.quantities == {"a": 16, "b": 112} == oracle_of(pd.DataFrame(rows), ("b", "a")).quantities
    assert o.gain == pytest.approx(3.05, abs=0.01) and o.heuristic[0] == pytest.approx(2.0)
    flipped = pd.DataFrame(rows).assign(**{"S/a": lambda d: 1 - d["S/a"], "S/b": lambda d: 1 - d["S/b"]})
    assert oracle_of(flipped, ("a", "b")).direction == "strong"


def test_a_generalist_trains_on_the_train_instances_and_is_scored_per_test_instance(tiny_oracles, tmp_path, capsys):
    path, df = tiny_oracles
    write_oracles(oracles_of(df, path), path)
    out = tmp_path / "sac"
    args = ["train-policy", "--env", "dus_env/DUS-Family-v1", "--algo", "sac", "--timesteps", "24", "--no-progress"]
    args += ["--env-option", f"instance_set={path}", "--eval-env-option", "sampling=round_robin"]
    assert main([*args, "--eval-episodes", "3", "--eval-freq", "12", "--out", str(out)]) == 0
    assert "selection seeds" in capsys.readouterr().out
    # the selection environment's own options are part of the run's config: saved, and kept by a resume
    assert json.loads((out / "train_config.json").read_text())["eval_env_kwargs"] == {"sampling": "round_robin"}
    resume = ["train-policy", "--out", str(out), "--resume", "--no-progress"]
    assert main([*resume, "--eval-env-option", "sampling=random"]) == 2
    assert "eval_env_kwargs" in capsys.readouterr().err
    csv = tmp_path / "scores.csv"
    cmd = ["eval-policy", "--policy", str(out / "policy.zip"), "--instances", "test", "--instance-set", path]
    plot = tmp_path / "scores.png"
    assert main([*cmd, "--seeds", "10000:2", "--csv", str(csv), "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    assert "mine" in printed and "regret" in printed and "heuristic" in printed
    assert "P(better than heuristic)" in printed and plot.stat().st_size > 0
    rows = pd.read_csv(csv)
    assert set(rows["sampler"]) == {"uniform", "heuristic", "sac", "oracle"} and set(rows["instance"]) == {"mine"}


def test_scores_pair_each_sampler_with_uniform_and_the_oracle(tiny_oracles):
    path, df = tiny_oracles
    oracles = oracles_of(df, path)
    rows = evaluate_instances({"weak first": "constant:strong=16,weak=112"}, path, "train", [10000, 10001], oracles)
    rows = rows[rows["instance"] == "s0"]
    scores = instance_scores(rows, oracles)
    assert set(scores["sampler"]) == {"weak first", "oracle"}
    oracle_row = scores[scores["sampler"] == "oracle"].iloc[0]
    assert oracle_row["regret (pp)"] == pytest.approx(0.0)
    s = summary(scores)
    assert list(s.index) == ["weak first", "oracle"] and (s["instances"] == 1).all()


def test_scoring_without_a_cache_says_how_to_make_one(tiny_set_data, write_set):
    with pytest.raises(DataFileNotFoundError, match="benchmarks.family_oracle"):
        load_oracles(write_set(tiny_set_data))
    assert load_instance_set(write_set(tiny_set_data)).names("test") == ["mine"]
