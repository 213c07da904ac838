"""``dus bench``: the sampler rows of the v1 downstream grid, from the committed CSV or, with --quick, afresh."""

import argparse

import pytest

from benchmarks import samplers, v1_downstream
from mml_backbones.cli import build_parser
from mml_backbones.errors import ConfigError


def bench_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["bench", *argv])


def refuse(cell):
    raise AssertionError(f"ran {cell.group} seed {cell.seed}: it should have been read from the committed CSV")


def test_dus_bench_is_registered_and_prints_the_committed_sampler_rows_without_training(capsys):
    tables = samplers.run(bench_args(), runner=refuse)
    assert set(tables) == {"mild", "strong"}
    mild = tables["mild"]
    assert mild.loc["joint|heuristic", "vs uniform control"] == "+2.73 [+1.94, +3.52]"  # RESULTS.md, section 0.4
    assert mild.loc["joint|DUS-v1 PPO", "vs DUS heuristic"] == "+0.68 [+0.14, +1.21]"
    assert "### strong" in capsys.readouterr().out


def test_quick_is_one_world_the_dus_v1_policies_three_seeds_and_its_own_csv(tmp_path, monkeypatch):
    ran = []

    def fake(cell):
        ran.append(cell)
        return {"key": cell.key, "group": cell.group, "seed": cell.seed, "test/fused_acc": 0.8, "seconds_per_epoch": 1}

    assert samplers.QUICK["csv"] != str(v1_downstream.RESULTS / "v1_downstream.csv")  # never the committed CSV
    monkeypatch.setitem(samplers.QUICK, "csv", str(tmp_path / "quick.csv"))
    samplers.run(bench_args("--quick"), runner=fake)
    groups = {c.group for c in ran}
    assert groups == {
        "mild|joint|uniform",
        "mild|joint|heuristic",
        "mild|joint|best share",
        "mild|joint|DUS-v1 PPO",
        "mild|joint|DUS-v1 REINFORCE",
        "mild|joint|DUS-v1 SAC",
    }
    assert len(ran) == 18 and {c.seed for c in ran} == {20000, 20001, 20002}
    # the same cells as the committed grid's, so a quick run measures what section 0.4 reports
    committed = {c.key for c in v1_downstream.cells(["mild"], ["joint", "learned"], 3)}
    assert {c.key for c in ran} <= committed


def test_an_unknown_world_is_refused_with_the_valid_ones():
    with pytest.raises(ConfigError, match="valid: mild, strong, three_modal, hapt"):
        samplers.run(bench_args("--worlds", "mlid"), runner=refuse)
