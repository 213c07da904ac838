"""The identifiability check's classifier and columns, and the oracle script's timing table, on stub data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.family_identifiability import FEATURE_SETS, accuracy_table, columns
from benchmarks.family_oracle import timing_table
from mml_backbones.observation import CONTEXT_FEATURES, feature_bounds


def test_columns_follow_the_context_observation_layout():
    assert len(columns(CONTEXT_FEATURES)) == len(feature_bounds(CONTEXT_FEATURES, 2)[0])
    assert columns(("cumulative",)) == ["x0", "x1"] and columns(("progress",)) == ["x10"]
    assert columns(("val_acc", "val_drop")) == ["x11", "x12", "x16"]
    assert set(FEATURE_SETS["context"]) == set(CONTEXT_FEATURES)


def test_the_classifier_is_scored_on_instances_it_never_saw():
    rng = np.random.default_rng(0)
    labels = {f"i{j}": ("weak", "none", "strong")[j % 3] for j in range(9)}
    code = {"weak": -1.0, "none": 0.0, "strong": 1.0}
    rows = []
    for inst, label in labels.items():
        for seed in range(3):
            for policy in ("uniform", "random"):
                row = {"instance": inst, "seed": seed, "policy": policy, "k": 1}
                row.update({f"x{i}": rng.normal() for i in range(17)})
                row["x0"] = 5 * code[label] + 0.01 * rng.normal()  # cumulative of the first modality gives it away
                rows.append(row)
    table = accuracy_table(pd.DataFrame(rows), labels)
    assert list(table["actions"]) == ["uniform", "random"]
    assert (table["discrepancy"] > 0.85).all() and (table["context"] > table["validation"]).all()
    assert (table["validation"] < 0.6).all()  # noise only: near chance
    assert (table["majority class"] == 1 / 3).all()  # three balanced classes


def test_timing_is_per_instance():
    df = pd.DataFrame({"instance": ["a", "a", "b"], "seconds": [1.0, 3.0, 2.0], "cpu_seconds": [0.5, 1.5, 1.0]})
    t = timing_table(df)
    assert t.loc["a", "wall s / run"] == 2.0 and t.loc["b", "CPU s / run"] == 1.0


def test_the_lower_score_modality_is_put_first_pair_by_pair():
    from benchmarks.family_identifiability import lower_score_first

    row = {f"x{i}": float(i) for i in range(17)}
    df = pd.DataFrame([{**row, "x0": 0.5, "x1": 0.2}, {**row, "x0": 0.1, "x1": 0.4}])
    out = lower_score_first(df)
    assert out.loc[0, ["x0", "x1", "x2", "x3", "x11", "x12"]].tolist() == [0.2, 0.5, 3.0, 2.0, 12.0, 11.0]
    assert out.loc[1].tolist() == df.loc[1].tolist()  # already first: unchanged
    assert out.loc[0, "x10"] == 10.0 and out.loc[0, "x16"] == 16.0  # progress and val_drop are not per modality


@pytest.fixture
def tiny_with_oracles(tiny_set_data, write_set):
    """The tiny set with an oracle cache for one train instance and the test instance (two gate seeds)."""
    from agents.headroom import numeric_rows
    from agents.oracle import oracles_of, run_instance, write_oracles
    from dus_env.seeds import gate_seeds

    path = write_set(tiny_set_data)
    seeds = gate_seeds(2)
    rows = run_instance(path, "s0", seeds) + run_instance(path, "mine", seeds)
    write_oracles(oracles_of(numeric_rows(rows, seeds), path), path)
    return path


def test_the_family_benchmark_scores_references_aggregates_and_resumes(tiny_with_oracles, tmp_path, monkeypatch):
    import benchmarks.family as family
    from agents import family_eval
    from mml_backbones.errors import ConfigError

    path = tiny_with_oracles
    files = {"--csv": tmp_path / "s.csv", "--md": tmp_path / "s.md", "--plot": tmp_path / "s.png"}
    args = ["--set", path, "--split", "test", "--seeds", "10000:3"] + [x for k, v in files.items() for x in (k, str(v))]
    family.main(args)
    rows = pd.read_csv(files["--csv"])
    assert set(rows["sampler"]) == {"uniform", "heuristic", "best train constant", "random", "oracle"}
    assert len(rows) == 5 * 3 and set(rows["instance"]) == {"mine"}
    md = files["--md"].read_text()
    assert "Aggregates" in md and "P(better than heuristic)" in md and files["--plot"].stat().st_size > 0

    def refuse(*a, **k):
        raise AssertionError("scored again")

    monkeypatch.setattr(family_eval, "evaluate_instances", refuse)
    family.main(args)  # every row is on disk
    assert len(pd.read_csv(files["--csv"])) == 15
    monkeypatch.undo()
    few = ["--set", path, "--seeds", "10000:1", "--baselines", "", "--workers", "2", "--csv", str(tmp_path / "f.csv")]
    family.main([*few, "--md", str(tmp_path / "f.md"), "--plot", str(tmp_path / "f.png")])
    assert set(pd.read_csv(tmp_path / "f.csv")["sampler"]) == {"uniform", "oracle"}  # what a regret needs
    with pytest.raises(ConfigError, match="unknown baseline"):
        family.main([*few, "--baselines", "heuristic,grid"])


def test_downstream_runs_each_test_instance_as_its_set_defines_it(tiny_with_oracles, tmp_path):
    import benchmarks.family_downstream as down
    from dus_env.family import load_instance_set
    from mml_backbones.config import to_dict

    csv, md = tmp_path / "d.csv", tmp_path / "d.md"
    result = down.main(
        ["--set", tiny_with_oracles, "--seeds", "2", "--csv", str(csv), "--md", str(md), "--no-progress"]
    )
    assert list(result["sampler"]) == ["uniform", "heuristic", "oracle"] and set(result["instance"]) == {"mine"}
    assert result["vs uniform (pp)"].iloc[1].startswith(("+", "-")) and (result["seeds"] == 2).all()
    cell = down.instance_cells(tiny_with_oracles, "test", {}, 1, {})[0]
    expected = to_dict(load_instance_set(tiny_with_oracles).get("mine").trainer_config())
    from benchmarks.grid import cell_config

    got = to_dict(cell_config(cell))
    for k in ("dataset", "dataset_options", "batch_size", "optim", "epochs", "decision_interval", "modalities"):
        assert got[k] == expected[k], k
    assert "test acc (%)" in md.read_text()


def test_identifiability_observations_are_logged_and_resumed(tiny_set_data, write_set, tmp_path, monkeypatch):
    import benchmarks.family_identifiability as ident

    path, csv = write_set(tiny_set_data), tmp_path / "obs.csv"
    df = ident.collect(path, [5], csv, workers=1, ks=(1, 2))
    assert len(df) == 3 * 2 * 2 and set(df["policy"]) == {"uniform", "random"} and df["x0"].dtype.kind == "f"

    def refuse(*a, **k):
        raise AssertionError("played again")

    monkeypatch.setattr(ident, "_episode", refuse)
    assert len(ident.collect(path, [5], csv, workers=1, ks=(1, 2))) == 12
    # every epoch is 4 iterations, a decision every 2: after one decision only DUS-Family-v2 has validated
    monkeypatch.undo()
    v1 = df[df["k"] == 1]
    v2 = ident.collect(path, [5], tmp_path / "v2.csv", workers=1, ks=(1,), validation_context="decision")
    assert (v1[["x11", "x12", "x15"]] == 0).all().all() and (v2[["x11", "x12", "x15"]] > 0).all().all()


def test_read_first_plays_uniform_for_k_decisions_then_the_share():
    from benchmarks.read_first import ReadFirst
    from mml_backbones.observation import DiscrepancyObservation

    def obs(iteration: int) -> DiscrepancyObservation:
        z = np.zeros(2)
        return DiscrepancyObservation(("a", "b"), z, z, z, iteration / 8, iteration, 64)

    s = ReadFirst({"a": 16, "b": 112}, 64, k=2)
    first = [s(obs(i))["a"] for i in range(0, 8, 2)]
    again = [s(obs(i))["a"] for i in range(0, 8, 2)]  # iteration 0 starts a new episode
    assert first == again == [64, 64, 16, 16]


def test_read_first_bound_copies_references_plays_the_rest_and_resumes(tiny_with_oracles, tmp_path, monkeypatch):
    import benchmarks.read_first as rf
    from mml_backbones.errors import ConfigError

    ref = tmp_path / "ref.csv"
    row = {"instance": "mine", "split": "test", "sampler": "uniform", "seed": 10000, "selected_val": 0.5}
    pd.DataFrame([row, {**row, "sampler": "heuristic"}]).to_csv(ref, index=False)
    csv, md = tmp_path / "r.csv", tmp_path / "r.md"
    args = ["--set", tiny_with_oracles, "--seeds", "10000:2", "--delays", "1", "--references", str(ref)]
    args += ["--csv", str(csv), "--md", str(md)]
    rf.main(args)
    rows = pd.read_csv(csv)
    assert sorted(rows.groupby("sampler").size().items()) == [("oracle", 2), ("oracle after 1", 2), ("uniform", 2)]
    assert rows.loc[rows["sampler"] == "uniform", "selected_val"].iloc[0] == 0.5  # copied, not replayed
    assert "oracle after 1" in md.read_text() and "regret" in md.read_text()

    def refuse(*a, **k):
        raise AssertionError("played again")

    monkeypatch.setattr("agents.episode_log.play_logged", lambda log, rows, play, jobs, workers: jobs and refuse())
    rf.main(args)  # every row is on disk
    assert len(pd.read_csv(csv)) == 6
    with pytest.raises(ConfigError, match="--delays"):
        rf.main([*args[:5], "0", *args[6:]])
