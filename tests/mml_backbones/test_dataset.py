import numpy as np
import pytest
import torch

from mml_backbones.data import DatasetSplits, MultimodalDataset, load_dataset
from mml_backbones.data.splits import stratified_split
from mml_backbones.errors import ConfigError, DataError


def make(n=10, **kw):
    mods = kw.pop("modalities", {"a": torch.randn(n, 3), "b": torch.randn(n, 2, 4)})
    return MultimodalDataset(mods, kw.pop("labels", torch.arange(n) % 3), ("x", "y", "z"), **kw)


def test_valid_dataset_exposes_names_shapes_and_batches():
    d = make()
    assert d.modality_names == ("a", "b")
    assert d.input_shape("b") == (2, 4)
    batch = d.batch(torch.tensor([0, 2]))
    assert batch["a"].shape == (2, 3) and batch["b"].shape == (2, 2, 4)
    sub = d.subset([1, 2, 3])
    assert len(sub) == 3 and torch.equal(sub.labels, d.labels[1:4])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"modalities": {"a": torch.randn(9, 3)}}, "has 9 samples but there are 10 labels"),
        ({"modalities": {"a": torch.full((10, 3), float("nan"))}}, "contains NaN or inf"),
        ({"modalities": {"a": torch.tensor([[float("inf")]] * 10)}}, "contains NaN or inf"),
        ({"labels": torch.arange(10)}, "labels out of range"),
        ({"labels": -torch.ones(10, dtype=torch.long)}, "labels out of range"),
        ({"labels": torch.full((10,), 0.5)}, "must be integers"),
        ({"modalities": {}}, "no modalities"),
        ({"modalities": {"labels": torch.randn(10, 2)}}, "invalid modality name"),
        ({"meta": {"user": np.zeros(3)}}, "meta column 'user'"),
    ],
)
def test_bad_datasets_are_rejected_with_a_clear_message(kwargs, message):
    with pytest.raises(DataError, match=message):
        make(**kwargs)


def test_unknown_modality_is_named():
    with pytest.raises(DataError, match="unknown modality 'c'.*'a', 'b'"):
        make().batch(torch.tensor([0]), ["c"])


def test_splits_must_agree_on_modalities_and_shapes():
    a = make()
    b = make(modalities={"a": torch.randn(10, 3), "b": torch.randn(10, 2, 5)})
    with pytest.raises(DataError, match="sample shape"):
        DatasetSplits(a, b, a)


def test_unknown_dataset_and_option_are_named():
    with pytest.raises(ConfigError, match="unknown dataset 'nope'.*synthetic"):
        load_dataset("nope")
    with pytest.raises(ConfigError, match="no option"):
        load_dataset("synthetic", colour="red")


def test_stratified_split_keeps_class_proportions_and_partitions():
    labels = np.repeat(np.arange(4), 100)
    parts = stratified_split(labels, (0.7, 0.15, 0.15), seed=3)
    assert sorted(np.concatenate(parts).tolist()) == list(range(400))
    for p, frac in zip(parts, (0.7, 0.15, 0.15)):
        assert np.allclose(np.bincount(labels[p]), 100 * frac, atol=1)
