"""Every registered dataset, driven by the registry: a new loader is checked without a new test."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mml_backbones.data import DatasetSplits, list_datasets, load_dataset
from mml_backbones.data.registry import DatasetEntry
from mml_backbones.errors import DataError, DataFileNotFoundError

ENTRIES = list_datasets()
# smaller splits where a loader offers them, so the suite stays fast; the defaults are checked by the loaders' tests
SMALL = {"n_train": 300, "n_val": 100, "n_test": 100}


def entry_id(entry: DatasetEntry) -> str:
    return entry.name


def small_options(entry: DatasetEntry) -> dict[str, int]:
    return {k: v for k, v in SMALL.items() if k in entry.options()}


def path_option(entry: DatasetEntry) -> str:
    for name in ("path", "data_dir"):
        if name in entry.options():
            return name
    raise AssertionError(f"dataset {entry.name!r} needs a path but has no path/data_dir option")


def check_splits(name: str, s: DatasetSplits) -> None:
    assert isinstance(s, DatasetSplits) and s.num_classes >= 2 and s.modality_names
    for split, data in s.items():
        assert len(data) > 0, f"{name}/{split} is empty"
        assert data.modality_names == s.modality_names
        labels = data.labels
        assert labels.dtype == torch.int64 and int(labels.min()) >= 0 and int(labels.max()) < s.num_classes
        batch = data.batch(torch.arange(min(len(data), 256)))
        for m, x in batch.items():
            assert tuple(x.shape[1:]) == data.input_shape(m) == s.train.input_shape(m), f"{name}/{split}/{m}"
            if x.is_floating_point():
                assert torch.isfinite(x).all(), f"{name}/{split}/{m} has NaN or inf"
    assert all(n > 0 for n in s.sizes().values())


def test_the_registry_lists_the_known_datasets() -> None:
    names = {e.name for e in ENTRIES}
    assert {"synthetic", "hapt", "npz", "crema_d", "artelingo", "emotion_synthetic"} <= names


@pytest.mark.parametrize("entry", [e for e in ENTRIES if not e.needs_path], ids=entry_id)
def test_datasets_without_a_path_load_with_consistent_shapes_and_labels(entry: DatasetEntry) -> None:
    missing = entry.missing_requirements()
    if missing:
        pytest.skip(f"{entry.name} needs {missing}: the optional extra, pip install 'dus[{entry.extra}]'")
    check_splits(entry.name, load_dataset(entry.name, **small_options(entry)))


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.needs_path], ids=entry_id)
def test_datasets_that_need_a_path_say_so(entry: DatasetEntry, tmp_path: Path) -> None:
    option = path_option(entry)
    with pytest.raises(DataError, match=rf"dataset '{entry.name}' needs {option}="):
        load_dataset(entry.name)
    missing = tmp_path / "not-there"
    with pytest.raises(DataFileNotFoundError, match="not found") as err:
        load_dataset(entry.name, **{option: str(missing)})
    assert str(missing) in str(err.value)


def test_a_missing_extra_is_detected() -> None:
    entry = DatasetEntry("x", "mod:func", "summary", extra="data", requires=("json", "no_such_module_for_dus"))
    assert entry.missing_requirements() == ["no_such_module_for_dus"]
