import numpy as np
import pytest

from mml_backbones.data import load_dataset
from mml_backbones.errors import DataError, DataFileNotFoundError


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
        ({"x": np.zeros((5, 2))}, "no 'labels' array"),
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
    with pytest.raises(DataError, match="cannot read"):
        load_dataset("npz", path=str(bad))
    with pytest.raises(DataError, match="needs path"):
        load_dataset("npz")
    p = write(tmp_path / "d.npz", x=np.zeros((6, 2)), labels=np.arange(6) % 2)
    with pytest.raises(DataError, match="unknown modality"):
        load_dataset("npz", path=p, modalities=["z"])
