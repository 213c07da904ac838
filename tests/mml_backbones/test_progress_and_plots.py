"""Progress and pictures: the training bar, dus plot, dus train --tensorboard."""

import builtins
import sys

import numpy as np
import pytest

from mml_backbones.cli import main
from mml_backbones.fit import _progress_fields
from mml_backbones.trainer import Trainer

TINY = ["--preset", "mild", "--dataset-option", "n_train=256", "--dataset-option", "n_val=128"]
TINY += ["--dataset-option", "n_test=128", "--batch-size", "32", "--no-progress"]


def test_the_training_bar_shows_the_loss_and_the_last_validation_accuracy(tiny_config, capsys):
    trainer = Trainer(tiny_config)
    trainer.fit(progress=True)
    err = capsys.readouterr().err
    assert "loss=" in err and "val_acc=" in err and "epoch=" in err
    fields = _progress_fields(trainer, [{"val/fused_acc": 0.5}])
    assert fields["val_acc"] == "50.0%" and fields["epoch"] == 2
    # an epoch's end moves the running loss into the history row: the bar, drawn then, shows that one
    trainer.pop_train_losses()
    assert _progress_fields(trainer, [{"train/fused": 1.5, "val/fused_acc": 0.5}])["loss"] == "1.500"


def test_plot_draws_a_training_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--sampler", "heuristic", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["plot", str(run)]) == 0
    png = run / "plots" / "run.png"
    assert capsys.readouterr().out.strip() == str(png)
    import matplotlib.image

    image = matplotlib.image.imread(png)
    assert image.shape[1] > 1000 and image.std() > 0.05  # four panels with curves, not a blank canvas
    assert main(["plot", str(run), "--out", str(tmp_path / "x.png")]) == 0 and (tmp_path / "x.png").is_file()
    assert main(["plot", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_plot_draws_a_policy_runs_selection_curve(tmp_path):
    run = tmp_path / "policy"
    (run / "eval").mkdir(parents=True)
    (run / "train_config.json").write_text("{}")
    np.savez(
        run / "eval" / "evaluations.npz", timesteps=np.array([8, 16, 24]), results=np.array([[1.0, 2], [3, 2], [0, 1]])
    )
    (run / "logs" / "segment_0").mkdir(parents=True)
    (run / "logs" / "segment_0" / "progress.csv").write_text(
        "time/total_timesteps,rollout/ep_rew_mean\n8,1.0\n16,2.0\n"
    )
    assert main(["plot", str(run)]) == 0
    assert (run / "plots" / "policy.png").stat().st_size > 10_000


def test_tensorboard_events_hold_every_epoch_and_one_run_across_a_resume(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(run), "--tensorboard"]) == 0
    assert main(["train", "--resume", "--out", str(run), "--epochs", "2", "--tensorboard", "--no-progress"]) == 0
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert "val/fused_acc" in events.Tags()["scalars"] and "train/fused" in events.Tags()["scalars"]
    assert [e.step for e in events.Scalars("val/fused_acc")] == [1, 2]


def test_tensorboard_missing_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard") or name.startswith("tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    assert main(["train", *TINY, "--epochs", "1", "--out", str(tmp_path / "r"), "--tensorboard"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'dus[tensorboard]'" in err
    assert main(["train", *TINY, "--epochs", "1", "--tensorboard"]) == 2
    assert "--tensorboard needs --out" in capsys.readouterr().err


@pytest.mark.parametrize("listing", [["datasets"]])
def test_datasets_lists_sizes_without_generating_the_presets(listing, capsys, monkeypatch):
    from mml_backbones.data import synthetic

    monkeypatch.setattr(synthetic, "generate", lambda *a, **k: pytest.fail("dus datasets generated a preset"))
    assert main(listing) == 0
    out = capsys.readouterr().out
    assert "synthetic --preset mild" in out and "6000/2000/10000" in out and "weak[208]" in out
