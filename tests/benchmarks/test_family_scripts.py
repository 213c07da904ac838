"""The identifiability check's classifier and columns, and the oracle script's timing table, on stub data."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
