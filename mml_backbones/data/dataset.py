"""The in-memory multimodal dataset and its train/val/test splits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from mml_backbones.errors import DataError

SPLIT_NAMES = ("train", "val", "test")
RESERVED_NAMES = frozenset({"labels", "label", "split"})


@runtime_checkable
class ModalitySource(Protocol):
    """Modality data converted one batch at a time instead of held as one tensor (a tensor is the plain case).

    Loaders use it to keep data compact in memory, e.g. ``ImageStore``: uint8 images shared by several samples,
    returned as normalised float32 per batch. Besides the members below, ``MultimodalDataset.subset`` needs a
    ``subset(index) -> ModalitySource`` method returning the samples ``index`` (in that order).
    """

    def __len__(self) -> int: ...

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor: ...

    @property
    def sample_shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> torch.dtype: ...


ModalityData = torch.Tensor | ModalitySource


def sample_shape(data: ModalityData) -> tuple[int, ...]:
    """Shape of one sample of a modality (everything after the sample axis)."""
    return tuple(data.shape[1:]) if isinstance(data, torch.Tensor) else tuple(data.sample_shape)


def take(data: ModalityData, index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` of a modality as a tensor."""
    return data[index]


@dataclass
class MultimodalDataset:
    """Samples with one tensor per named modality, integer labels and optional per-sample metadata.

    Attributes:
        modalities: modality name -> data with the sample axis first (a tensor or a ModalitySource).
        labels: int64 tensor of shape (N,) with values in [0, len(class_names)).
        class_names: the label vocabulary, index = label.
        name: a short name for messages ("hapt/train").
        meta: per-sample side information (user id, language, file id), each an array of length N.
    """

    modalities: dict[str, ModalityData]
    labels: torch.Tensor
    class_names: tuple[str, ...]
    name: str = ""
    meta: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"dataset {self.name!r}" if self.name else "dataset"
        if not self.modalities:
            raise DataError(f"{where}: no modalities given")
        self.class_names = tuple(str(c) for c in self.class_names)
        if len(self.class_names) < 2:
            raise DataError(f"{where}: need at least 2 classes, got {list(self.class_names)}")
        labels = torch.as_tensor(self.labels)
        if labels.ndim != 1:
            raise DataError(f"{where}: labels must be 1-D, got shape {tuple(labels.shape)}")
        if labels.is_floating_point():
            if not torch.isfinite(labels).all():
                raise DataError(f"{where}: labels contain NaN or inf")
            if not torch.equal(labels, labels.round()):
                raise DataError(f"{where}: labels must be integers, got fractional values")
        self.labels = labels.long()
        n = len(self.labels)
        if n == 0:
            raise DataError(f"{where}: has no samples")
        bad = self.labels[(self.labels < 0) | (self.labels >= len(self.class_names))]
        if len(bad):
            raise DataError(
                f"{where}: labels out of range [0, {len(self.class_names)}): found {sorted(set(bad.tolist()))[:5]}"
            )
        for m, data in self.modalities.items():
            if not isinstance(m, str) or not m or m in RESERVED_NAMES:
                raise DataError(f"{where}: invalid modality name {m!r}")
            if len(data) != n:
                raise DataError(f"{where}: modality {m!r} has {len(data)} samples but there are {n} labels")
            if isinstance(data, torch.Tensor):
                if data.ndim < 2:
                    raise DataError(f"{where}: modality {m!r} needs a feature axis, got shape {tuple(data.shape)}")
                if 0 in data.shape[1:]:
                    raise DataError(f"{where}: modality {m!r} has no features (shape {tuple(data.shape)}); drop it")
                if data.is_floating_point() and not torch.isfinite(data).all():
                    bad_rows = (~torch.isfinite(data.reshape(n, -1))).any(1).nonzero().flatten()[:5].tolist()
                    raise DataError(f"{where}: modality {m!r} contains NaN or inf (first rows: {bad_rows})")
        for key, values in self.meta.items():
            if len(values) != n:
                raise DataError(f"{where}: meta column {key!r} has {len(values)} values, expected {n}")

    @property
    def modality_names(self) -> tuple[str, ...]:
        """The modalities in their fixed order."""
        return tuple(self.modalities)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.labels)

    def input_shape(self, modality: str) -> tuple[int, ...]:
        """Shape of one sample of ``modality``."""
        return sample_shape(self.modalities[self.check_modality(modality)])

    def check_modality(self, modality: str) -> str:
        """Return ``modality`` or raise DataError naming the valid ones."""
        if modality not in self.modalities:
            raise DataError(f"unknown modality {modality!r}; this dataset has {list(self.modalities)}")
        return modality

    def batch(self, index: torch.Tensor, modalities: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Inputs of the samples ``index`` for each requested modality."""
        names = self.modality_names if modalities is None else [self.check_modality(m) for m in modalities]
        return {m: take(self.modalities[m], index) for m in names}

    def subset(self, index: Sequence[int] | np.ndarray | torch.Tensor, name: str | None = None) -> MultimodalDataset:
        """A new dataset holding the samples ``index`` (in that order)."""
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return MultimodalDataset(
            modalities={m: _subset(d, idx) for m, d in self.modalities.items()},
            labels=self.labels[idx],
            class_names=self.class_names,
            name=self.name if name is None else name,
            meta={k: np.asarray(v)[idx.numpy()] for k, v in self.meta.items()},
        )

    def select_modalities(self, modalities: Sequence[str]) -> MultimodalDataset:
        """The same samples with only ``modalities`` (used to train one modality alone)."""
        return MultimodalDataset(
            modalities={m: self.modalities[self.check_modality(m)] for m in modalities},
            labels=self.labels,
            class_names=self.class_names,
            name=self.name,
            meta=self.meta,
        )

    def class_counts(self) -> np.ndarray:
        """Samples per class."""
        return np.bincount(self.labels.numpy(), minlength=self.num_classes)


def _subset(data: ModalityData, idx: torch.Tensor) -> ModalityData:
    if isinstance(data, torch.Tensor):
        return data[idx]
    subset = getattr(data, "subset", None)
    if subset is None:
        raise DataError(f"modality source {type(data).__name__} does not support subset()")
    return subset(idx)


@dataclass
class DatasetSplits:
    """Train, validation and test splits of one dataset, plus any extra named splits and facts about it.

    Attributes:
        train, val, test: the three splits; the test split is only read for the final report.
        info: facts about the data (description, split rule, Bayes-optimal accuracies, user lists).
        extra: further named splits, e.g. a transfer split in a held-out language.
    """

    train: MultimodalDataset
    val: MultimodalDataset
    test: MultimodalDataset
    info: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, MultimodalDataset] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ref = self.train
        for split_name, split in self.items():
            if split.modality_names != ref.modality_names:
                raise DataError(
                    f"split {split_name!r} has modalities {list(split.modality_names)}, "
                    f"train has {list(ref.modality_names)}"
                )
            if split.class_names != ref.class_names:
                raise DataError(f"split {split_name!r} has a different label vocabulary from train")
            for m in ref.modality_names:
                if split.input_shape(m) != ref.input_shape(m):
                    raise DataError(
                        f"split {split_name!r}: modality {m!r} has sample shape {split.input_shape(m)}, "
                        f"train has {ref.input_shape(m)}"
                    )

    def __getitem__(self, split: str) -> MultimodalDataset:
        if split in SPLIT_NAMES:
            return getattr(self, split)
        if split in self.extra:
            return self.extra[split]
        raise DataError(f"unknown split {split!r}; available: {list(SPLIT_NAMES) + list(self.extra)}")

    def items(self) -> list[tuple[str, MultimodalDataset]]:
        """(name, dataset) for train, val, test and the extra splits."""
        return [(s, getattr(self, s)) for s in SPLIT_NAMES] + list(self.extra.items())

    @property
    def modality_names(self) -> tuple[str, ...]:
        """The modalities in their fixed order."""
        return self.train.modality_names

    @property
    def class_names(self) -> tuple[str, ...]:
        """The label vocabulary."""
        return self.train.class_names

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return self.train.num_classes

    def sizes(self) -> dict[str, int]:
        """Samples per split."""
        return {s: len(d) for s, d in self.items()}

    def select_modalities(self, modalities: Sequence[str]) -> DatasetSplits:
        """The same splits restricted to ``modalities``."""
        return DatasetSplits(
            train=self.train.select_modalities(modalities),
            val=self.val.select_modalities(modalities),
            test=self.test.select_modalities(modalities),
            info=dict(self.info),
            extra={k: v.select_modalities(modalities) for k, v in self.extra.items()},
        )
