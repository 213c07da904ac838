"""Datasets: every loader returns train/val/test splits of a MultimodalDataset (names imported on first use)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DATASETS": "mml_backbones.data.registry",
    "list_datasets": "mml_backbones.data.registry",
    "load_dataset": "mml_backbones.data.registry",
    "register_dataset": "mml_backbones.data.registry",
    "DatasetSplits": "mml_backbones.data.dataset",
    "ModalitySource": "mml_backbones.data.dataset",
    "MultimodalDataset": "mml_backbones.data.dataset",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mml_backbones.data' has no attribute {name!r}")
