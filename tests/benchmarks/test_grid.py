import pandas as pd
import pytest

from benchmarks.grid import Cell, ResultsCsv, run_cell, run_grid
from benchmarks.report import mean_std_table, paired_difference


def cells(n):
    return [Cell(group=f"g{i % 2}", dataset="synthetic", method="joint", seed=i, epochs=1) for i in range(n)]


class FakeRunner:
    def __init__(self, fail_at=None):
        self.calls, self.fail_at = [], fail_at

    def __call__(self, cell):
        if len(self.calls) == self.fail_at:
            raise KeyboardInterrupt
        self.calls.append(cell.key)
        return {"key": cell.key, "group": cell.group, "seed": cell.seed, "test/fused_acc": 0.5 + cell.seed / 100}


def test_finished_cells_are_kept_when_the_grid_is_interrupted_and_skipped_on_rerun(tmp_path):
    csv = tmp_path / "r.csv"
    with pytest.raises(KeyboardInterrupt):
        run_grid(cells(4), csv, runner=FakeRunner(fail_at=2), progress=False)
    assert len(ResultsCsv(csv).read()) == 2  # written as they finished
    again = FakeRunner()
    df = run_grid(cells(4), csv, runner=again, progress=False).read()
    assert len(again.calls) == 2 and len(df) == 4 and df["key"].is_unique


def test_cell_keys_are_stable_and_ignore_where_runs_are_kept():
    a = Cell(group="x", dataset="synthetic", method="joint", seed=0, epochs=1)
    b = Cell(group="x", dataset="synthetic", method="joint", seed=0, epochs=1, run_root="/elsewhere")
    c = Cell(group="x", dataset="synthetic", method="joint", seed=1, epochs=1)
    assert a.key == b.key != c.key
    # a key must not change between versions: finished results are found by it
    assert a.key == "9b896babea292059"


def test_a_real_cell_runs_end_to_end(tmp_path):
    cell = Cell(
        group="concat",
        dataset="synthetic",
        method="concat",
        seed=0,
        epochs=1,
        dataset_options={"preset": "mild", "n_train": 256, "n_val": 128, "n_test": 128},
        trainer={"batch_size": 32, "model": {"feature_dim": 16}},
        run_root=str(tmp_path),
    )
    row = run_cell(cell)
    assert 0 <= row["test/fused_acc"] <= 1 and row["bayes/all"] > 0.8
    assert (tmp_path / cell.key / "metrics.csv").is_file()


def test_new_columns_widen_the_csv(tmp_path):
    out = ResultsCsv(tmp_path / "r.csv")
    out.append({"key": "a", "x": 1})
    out.append({"key": "b", "x": 2, "y": 3})
    df = out.read()
    assert list(df.columns) == ["key", "x", "y"] and pd.isna(df.loc[0, "y"]) and df.loc[1, "y"] == 3


def test_summary_tables():
    df = pd.DataFrame(
        {
            "group": ["a", "a", "a", "b", "b", "b"],
            "seed": [0, 1, 2, 0, 1, 2],
            "test/fused_acc": [0.80, 0.82, 0.84, 0.81, 0.84, 0.86],
            "test/probe/weak": [0.4, 0.4, 0.4, 0.5, 0.5, 0.5],
            "seconds_per_epoch": [1.0] * 6,
        }
    )
    t = mean_std_table(df)
    assert t.loc["a", "test acc (%)"] == "82.00 ± 2.00" and t.loc["b", "seeds"] == 3
    d = paired_difference(df, "test/fused_acc", "b", "a")
    assert d["mean"] == pytest.approx(0.0166667, abs=1e-6) and d["low"] < d["mean"] < d["high"] and d["n"] == 3


def ray_cells():
    return [
        Cell(
            group="concat",
            dataset="synthetic",
            method="concat",
            seed=s,
            epochs=1,
            dataset_options={"preset": "mild", "n_train": 256, "n_val": 128, "n_test": 128},
            trainer={"batch_size": 32},
        )
        for s in range(2)
    ]


def test_ray_backend_runs_cells_as_tasks(tmp_path, ray_session):
    df = run_grid(ray_cells(), tmp_path / "r.csv", backend="ray", progress=False).read()
    assert sorted(df["seed"]) == [0, 1] and df["test/fused_acc"].between(0, 1).all()


def test_ray_and_local_backends_give_the_same_rows(tmp_path, ray_session):
    grid = ray_cells()
    ray_rows = run_grid(grid, tmp_path / "ray.csv", backend="ray", progress=False).read()
    local_rows = run_grid(grid, tmp_path / "local.csv", backend="local", progress=False).read()
    timing = ["seconds", "seconds_per_epoch"]
    ray_rows = ray_rows.drop(columns=timing).sort_values("key").reset_index(drop=True)
    local_rows = local_rows.drop(columns=timing).sort_values("key").reset_index(drop=True)
    assert list(ray_rows.columns) == list(local_rows.columns) and len(ray_rows) == 2
    # same seeds, same one-thread runs: every metric is identical, not merely close
    pd.testing.assert_frame_equal(ray_rows, local_rows, check_exact=True)
