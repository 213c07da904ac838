"""Every input that used to end in a traceback gets one line naming the problem and the fix (issue 19)."""

import numpy as np
import pytest

from mml_backbones.cli import main
from mml_backbones.data.registry import load_dataset
from mml_backbones.errors import ConfigError
from mml_backbones.model_config import ModelConfig
from mml_backbones.models.model import build_model

RNG = np.random.default_rng(0)
Y = RNG.integers(0, 3, 120)


def run(path, capsys, *extra) -> str:
    """``dus train`` on an npz file; the error line it prints (asserting it is one line, exit 2)."""
    assert main(["train", "--dataset", "npz", "--path", str(path), "--epochs", "1", "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dus: error:") and err.count("\n") == 1, err
    return err


def test_a_short_2d_modality_is_refused_when_the_model_is_built_naming_encoder_mlp(tmp_path, capsys):
    p = tmp_path / "d.npz"
    np.savez(p, labels=Y, a=RNG.normal(size=(120, 4, 5)).astype("float32"), b=RNG.normal(size=(120, 6)))
    err = run(p, capsys)
    assert "modality 'a'" in err and "(4, 5)" in err and "cnn1d" in err and "--encoder mlp" in err
    assert (
        main(["train", "--dataset", "npz", "--path", str(p), "--epochs", "1", "--no-progress", "--encoder", "mlp"]) == 0
    )
    splits = load_dataset("npz", path=str(p))
    with pytest.raises(ConfigError, match="--encoders a=mlp"):  # at build time, before any batch
        build_model(ModelConfig(), splits.train)


def test_an_empty_modality(tmp_path, capsys):
    p = tmp_path / "d.npz"
    np.savez(p, labels=Y, a=np.zeros((120, 0), "float32"), b=RNG.normal(size=(120, 6)))
    err = run(p, capsys)
    assert "modality 'a' is empty" in err and "--modalities" in err


def test_a_file_with_zero_samples(tmp_path, capsys):
    p = tmp_path / "d.npz"
    np.savez(p, labels=np.zeros(0, int), a=np.zeros((0, 3), "float32"))
    assert "has no samples" in run(p, capsys)


def test_a_npy_given_as_path(tmp_path, capsys):
    p = tmp_path / "d.npy"
    np.save(p, RNG.normal(size=(10, 3)))
    err = run(p, capsys)
    assert ".npy file" in err and "np.savez" in err


def test_a_text_file_named_npz_gets_no_advice_to_load_it_unsafely(tmp_path, capsys):
    p = tmp_path / "d.npz"
    p.write_text("labels,a\n0,1.0\n")
    err = run(p, capsys)
    assert "not an .npz archive" in err and "allow_pickle" not in err


def test_nan_rows_are_reported_as_rows_of_the_file(tmp_path, capsys):
    p = tmp_path / "d.npz"
    a = RNG.normal(size=(120, 6)).astype("float32")
    a[[3, 17, 100]] = np.nan
    np.savez(p, labels=Y, a=a, b=RNG.normal(size=(120, 6)))
    err = run(p, capsys)
    assert "3 row(s) of the file (0-based: 3, 17, 100)" in err
