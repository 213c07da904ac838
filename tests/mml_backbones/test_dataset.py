import numpy as np
import pytest
import torch

from mml_backbones.data import DatasetSplits, MultimodalDataset, load_dataset, standardize
from mml_backbones.data.images import ImageStore
from mml_backbones.data.splits import group_split, stratified_split
from mml_backbones.data.standardize import fit_standardization
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


def test_group_split_holds_out_whole_groups():
    groups = np.repeat(np.array(["p3", "p1", "p2", "p4", "p5"]), 3)
    held = group_split(groups, 0.4, seed=1)
    assert len(held) == 2 and list(held) == sorted(held) and set(held) <= set(groups)
    assert list(group_split(groups, 0.4, seed=1)) == list(held)  # deterministic
    assert len(group_split(groups, 0.01)) == 1 and len(group_split(groups, 0.99)) == 4  # at least one each side
    with pytest.raises(DataError, match="at least 2 actors"):
        group_split(np.array([7, 7]), 0.5, what="actors")


def test_standardisation_uses_the_given_rows_and_merges_chunks_exactly(monkeypatch):
    rng = np.random.default_rng(0)
    x = (5 + 3 * rng.standard_normal((200, 4, 6))).astype(np.float32)
    x[:, 3] = 2.0  # constant channel: std 1, so it becomes 0 and never NaN
    rows = np.arange(0, 200, 2)
    whole = fit_standardization(x, rows, axes=(0, 2))
    ref = x[rows].astype(np.float64)
    assert np.allclose(whole.mean.ravel(), ref.mean(axis=(0, 2)), rtol=1e-6)
    assert np.allclose(whole.std.ravel()[:3], ref.std(axis=(0, 2))[:3], rtol=1e-5) and whole.std.ravel()[3] == 1
    monkeypatch.setattr(standardize, "CHUNK_BYTES", 7 * x[0].nbytes)  # 7 rows per chunk: many merges
    chunked = fit_standardization(x, rows, axes=(0, 2))
    assert np.allclose(chunked.mean, whole.mean, rtol=1e-6) and np.allclose(chunked.std, whole.std, rtol=1e-5)
    z = whole.apply(x[rows])
    assert np.allclose(z.mean(axis=(0, 2)), 0, atol=1e-5) and np.isfinite(z).all() and (z[:, 3] == 0).all()
    scalar = fit_standardization(x, axes=None, dtype=np.float64)
    assert scalar.mean.shape == (1, 1, 1) and scalar.mean.dtype == np.float32
    assert scalar.mean.item() == pytest.approx(x.astype(np.float64).mean(), rel=1e-6)
    with pytest.raises(DataError, match="floating-point"):
        fit_standardization(np.arange(10)[:, None])


def test_standardisation_info_is_json_ready_and_summarised_when_large():
    small = fit_standardization(np.random.default_rng(0).standard_normal((20, 2, 3)))
    info = small.to_info()
    assert info["shape"] == [2, 3] and np.asarray(info["mean"]).shape == (2, 3) and info["axes"] == [0]
    large = fit_standardization(np.random.default_rng(0).standard_normal((3, 5000))).to_info()
    assert "mean" not in large and len(large["mean_range"]) == 2 and large["shape"] == [5000]


def test_image_store_normalises_uint8_rows_and_shares_the_table():
    table = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    store = ImageStore(table, [2, 2, 0])  # two samples share row 2
    x = store[torch.tensor([0, 2])]
    mean = torch.tensor(store.mean).view(3, 1, 1)
    std = torch.tensor(store.std).view(3, 1, 1)
    assert torch.allclose(x, (table[[2, 0]].float() / 255 - mean) / std)
    sub = store.subset([2])
    assert sub.table is table and torch.equal(sub.stored(torch.tensor([0])), table[[0]])
    features = ImageStore(torch.randn(3, 8), [1, 1])
    assert features.sample_shape == (8,) and torch.equal(features[torch.tensor([0])], features.table[[1]])
    with pytest.raises(DataError, match=r"\(N, \.\.\., 3, H, W\)"):
        ImageStore(torch.zeros(2, 4, 5, 5, dtype=torch.uint8))
    with pytest.raises(DataError, match="1-D index"):
        ImageStore(table, [9])
