"""The first release's benchmarks, archived: still runnable, and their grids are the committed rows."""

import pandas as pd
import pytest

from benchmarks.archive_v0 import baselines, samplers


def committed_keys(name: str) -> set[str]:
    return set(pd.read_csv(baselines.RESULTS / name)["key"])


def test_the_baselines_grid_is_the_committed_rows_and_names_each_methods_fusion():
    grid = baselines.cells(["synthetic", "hapt"], 3, 15, ["alone", "concat", "joint", "ogm_ge", "mie", "mie+heuristic"])
    assert {c.key for c in grid} == committed_keys("baselines.csv")  # a re-run trains nothing again
    fusion = {c.method: c.trainer.get("model", {}).get("fusion", "concat") for c in grid}
    assert fusion == {"joint": "concat", "concat": "concat", "ogm_ge": "concat", "mie": "late"}


def test_the_sampler_grids_uniform_and_heuristic_cells_are_the_committed_rows():
    plan = samplers.Plan(
        datasets=("mild",), methods=samplers.METHODS, samplers=("uniform", "heuristic"), seeds=5, env_seeds=10,
        timesteps=8192, n_envs=2,
    )  # fmt: skip
    grid = samplers.downstream_cells(plan, policies={})
    assert len(grid) == 35 and {c.key for c in grid} <= committed_keys("samplers.csv")
    assert {c.trainer["model"]["fusion"] for c in grid if c.method == "mie"} == {"late"}


@pytest.mark.parametrize("module", [baselines, samplers])
def test_the_archived_scripts_answer_help(module, capsys):
    with pytest.raises(SystemExit) as done:
        module.main(["--help"])
    assert done.value.code == 0 and "--workers" in capsys.readouterr().out


def test_the_committed_v0_tables_regenerate_from_their_csv():
    df = pd.read_csv(baselines.RESULTS / "baselines.csv")
    grid = baselines.cells(["synthetic"], 3, 15, ["concat", "joint"])
    part = df[df["key"].isin({c.key for c in grid})]
    means = part.groupby("group")["test/fused_acc"].mean()
    assert round(100 * means["joint"], 2) == 85.40 and round(100 * means["concat"], 2) == 84.35  # RESULTS_v0.md
