"""Safe run directories: refuse to overwrite, resume from config.json, name conflicts, extend a finished run."""

import json

import pandas as pd
import pytest

from mml_backbones.cli import main
from mml_backbones.errors import ConfigError
from mml_backbones.run_dir import check_run_dir

TINY = ["--preset", "mild", "--dataset-option", "n_train=256", "--dataset-option", "n_val=128"]
TINY += ["--dataset-option", "n_test=128", "--batch-size", "32", "--no-progress"]


def one_line(err: str) -> str:
    assert err.startswith("dus: error:") and "Traceback" not in err
    return err


def test_a_non_empty_out_is_refused_without_resume_or_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(run)]) == 0
    first = (run / "final.json").read_text()
    capsys.readouterr()
    assert main(["train", *TINY, "--epochs", "1", "--seed", "3", "--out", str(run)]) == 2
    err = one_line(capsys.readouterr().err)
    assert "is not empty" in err and "--resume" in err and "--overwrite" in err
    assert (run / "final.json").read_text() == first  # untouched
    (run / "notes.txt").write_text("mine")
    assert main(["train", *TINY, "--epochs", "1", "--seed", "3", "--out", str(run), "--overwrite"]) == 0
    assert json.loads((run / "config.json").read_text())["trainer"]["seed"] == 3
    assert (run / "notes.txt").read_text() == "mine"  # --overwrite removes the run's own files only


def test_resume_needs_out_and_a_run_there(tmp_path, capsys):
    assert main(["train", *TINY, "--resume"]) == 2
    assert "--resume needs --out" in one_line(capsys.readouterr().err)
    assert main(["train", *TINY, "--resume", "--out", str(tmp_path / "none")]) == 2
    assert "nothing to resume" in one_line(capsys.readouterr().err)
    with pytest.raises(ConfigError, match="not both"):
        check_run_dir(tmp_path, resume=True, overwrite=True)


def test_resume_reads_the_saved_config_names_conflicts_and_extends_with_more_epochs(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--sampler", "heuristic", "--lr", "0.01", "--out", str(run)]) == 0
    capsys.readouterr()
    # flags that change the saved run are refused, each shown as old -> new
    assert main(["train", "--resume", "--out", str(run), "--lr", "0.1", "--seed", "2", "--sampler", "uniform"]) == 2
    err = capsys.readouterr().err
    assert "optim.lr: 0.01 -> 0.1" in err and "seed: 0 -> 2" in err and 'sampler: "heuristic" -> "uniform"' in err
    # a finished run without more epochs: nothing to do, said so
    assert main(["train", "--resume", "--out", str(run)]) == 2
    assert "finished run" in capsys.readouterr().err
    # no flags needed: the saved config (data, sampler, optimiser) is used; --epochs grows the run
    assert main(["train", "--resume", "--out", str(run), "--epochs", "2", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "resuming" in captured.err and "from epoch 1 of 2" in captured.err
    saved = json.loads((run / "config.json").read_text())
    assert saved["trainer"]["epochs"] == 2 and saved["trainer"]["optim"]["lr"] == 0.01
    assert saved["sampler_spec"] == "heuristic" and saved["trainer"]["dataset_options"]["n_train"] == 256
    assert list(pd.read_csv(run / "metrics.csv")["epoch"]) == [1, 2]


def test_an_extended_run_equals_a_run_of_that_length(tmp_path):
    short, full = tmp_path / "short", tmp_path / "full"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(short)]) == 0
    assert main(["train", "--resume", "--out", str(short), "--epochs", "2", "--no-progress"]) == 0
    assert main(["train", *TINY, "--epochs", "2", "--out", str(full)]) == 0
    a, b = pd.read_csv(short / "metrics.csv"), pd.read_csv(full / "metrics.csv")
    assert list(a["val/fused_acc"]) == list(b["val/fused_acc"])
    assert (
        json.loads((short / "final.json").read_text())["test"] == json.loads((full / "final.json").read_text())["test"]
    )


def test_a_cosine_schedule_cannot_be_extended(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--lr-schedule", "cosine", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--epochs", "2"]) == 2
    assert "cosine" in one_line(capsys.readouterr().err)
