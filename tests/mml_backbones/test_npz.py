import json

import numpy as np
import pytest
import torch

from mml_backbones.cli import main
from mml_backbones.data import load_dataset
from mml_backbones.errors import ConfigError, DataError, DataFileNotFoundError


def write(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_npz_with_split_array(tmp_path):
    n = 60
    p = write(
        tmp_path / "d.npz",
        audio=np.random.randn(n, 2, 8).astype(np.float32),
        video=np.random.randn(n, 5),
        labels=np.arange(n) % 3,
        split=np.repeat([0, 1, 2], 20),
        class_names=np.array(["a", "b", "c"]),
    )
    s = load_dataset("npz", path=p)
    assert s.sizes() == {"train": 20, "val": 20, "test": 20}
    assert s.modality_names == ("audio", "video")
    assert s.train.input_shape("audio") == (2, 8)
    assert s.class_names == ("a", "b", "c")


def test_npz_without_split_is_stratified_70_15_15(tmp_path):
    n = 200
    p = write(tmp_path / "d.npz", x=np.random.randn(n, 4), y=np.random.randn(n, 3), labels=np.arange(n) % 4)
    s = load_dataset("npz", path=p, seed=1)
    sizes = s.sizes()
    assert sizes["train"] == 140 and abs(sizes["val"] - 30) <= 4 and sizes["val"] + sizes["test"] == 60
    assert (s.val.class_counts() >= 7).all()
    assert load_dataset("npz", path=p, modalities=["y"]).modality_names == ("y",)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((5, 2)), "y": np.zeros(5)}, r"d\.npz: no 'labels' array .*arrays in the file: \['x', 'y'\]"),
        ({"x": np.zeros((5, 2)), "labels": np.zeros(4, int)}, "has 5 samples but 'labels' has 4"),
        ({"x": np.full((6, 2), np.nan), "labels": np.arange(6) % 2, "split": np.repeat([0, 1, 2], 2)}, "NaN"),
        ({"x": np.zeros((6, 2)), "labels": np.arange(6) % 2, "split": np.full(6, 5)}, "'split' must hold"),
        ({"x": np.zeros((6, 2)), "labels": np.arange(6) % 2, "split": np.zeros(6, int)}, r"\['val', 'test'\]"),
        ({"x": np.zeros((6, 2)), "labels": -np.ones(6, int)}, "negative"),
    ],
)
def test_npz_errors_name_the_problem(tmp_path, arrays, message):
    p = write(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset("npz", path=p)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataFileNotFoundError, match="not found"):
        load_dataset("npz", path=str(tmp_path / "none.npz"))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip")
    with pytest.raises(DataError, match="not an .npz archive"):
        load_dataset("npz", path=str(bad))
    with pytest.raises(DataError, match="needs path"):
        load_dataset("npz")
    p = write(tmp_path / "d.npz", x=np.zeros((6, 2)), labels=np.arange(6) % 2)
    with pytest.raises(DataError, match="unknown modality"):
        load_dataset("npz", path=p, modalities=["z"])


def raw_scale(tmp_path, n=90):
    """Two float modalities on very different scales, a constant feature and an integer (token id) modality."""
    rng = np.random.default_rng(0)
    big = np.stack([1000 + 50 * rng.standard_normal(n), np.full(n, 7.0)], axis=1)  # column 1 is constant
    return write(
        tmp_path / "raw.npz",
        big=big,
        small=(1e-3 * rng.standard_normal((n, 2, 3))).astype(np.float32),
        tokens=rng.integers(0, 50, (n, 4)),
        labels=np.arange(n) % 3,
        split=np.repeat([0, 1, 2], n // 3),
    )


def test_float_modalities_are_standardised_per_feature_with_train_statistics(tmp_path):
    p = raw_scale(tmp_path)
    s = load_dataset("npz", path=p)
    raw = np.load(p)
    for m in ("big", "small"):
        x = s.train.modalities[m]
        assert x.dtype == torch.float32
        assert torch.allclose(x.mean(0), torch.zeros(x.shape[1:]), atol=1e-5)
    assert torch.allclose(s.train.modalities["small"].std(0, unbiased=False), torch.ones(2, 3), atol=1e-4)
    # the constant feature becomes 0, not NaN
    assert torch.equal(s.test.modalities["big"][:, 1], torch.zeros(30))
    # val and test use the train statistics
    train_raw, test_raw = raw["big"][:30, 0], raw["big"][60:, 0]
    expected = (test_raw - train_raw.mean()) / train_raw.std()
    assert np.allclose(s.test.modalities["big"][:, 0].numpy(), expected, atol=1e-5)
    # integer arrays (token ids) are left alone
    assert s.train.modalities["tokens"].dtype == torch.int64
    assert torch.equal(s.train.modalities["tokens"], torch.from_numpy(raw["tokens"][:30]))
    info = s.info
    assert info["standardized"] == ["big", "small"]
    assert info["standardization"]["big"]["mean"][0] == pytest.approx(train_raw.mean())
    assert info["standardization"]["big"]["std"] == [pytest.approx(train_raw.std()), 1.0]
    assert np.asarray(info["standardization"]["small"]["mean"]).shape == (2, 3)
    json.dumps(info)  # saved with the run's config.json


def test_standardize_false_keeps_the_raw_values(tmp_path):
    p = raw_scale(tmp_path)
    s = load_dataset("npz", path=p, standardize=False)
    assert s.info["standardized"] == [] and s.info["standardization"] == {}
    assert torch.allclose(s.train.modalities["big"], torch.from_numpy(np.load(p)["big"][:30]).float())
    with pytest.raises(ConfigError, match="standardize must be true or false"):
        load_dataset("npz", path=p, standardize="no")


def train_args(p, tmp_path, *extra):
    return ["train", "--dataset", "npz", "--path", p, "--epochs", "1", "--batch-size", "16", "--no-progress", *extra]


def test_cli_summary_says_what_was_standardised_and_config_keeps_the_statistics(tmp_path, capsys):
    p = raw_scale(tmp_path)
    out = tmp_path / "run"
    assert main(train_args(p, tmp_path, "--modalities", "big,tokens", "--out", str(out))) == 0
    assert "(big, tokens; standardized: big)" in capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"]["standardized"] == ["big", "small"]
    assert config["dataset"]["standardization"]["big"]["std"][1] == 1.0
    assert main(train_args(p, tmp_path, "--modalities", "big,tokens", "--dataset-option", "standardize=false")) == 0
    assert "standardized: none" in capsys.readouterr().err


def test_cli_names_a_modality_the_file_lacks(tmp_path, capsys):
    p = raw_scale(tmp_path)
    assert main(train_args(p, tmp_path, "--modalities", "x")) == 2
    err = capsys.readouterr().err
    assert "unknown modality ['x']" in err and "'big', 'small', 'tokens'" in err


def test_cli_suggests_the_sampler_meant(tmp_path, capsys):
    p = raw_scale(tmp_path)
    assert main(train_args(p, tmp_path, "--modalities", "big", "--sampler", "heuristc")) == 2
    assert "unknown sampler 'heuristc'; did you mean 'heuristic'?" in capsys.readouterr().err
