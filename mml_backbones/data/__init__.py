"""Datasets: every loader returns train/val/test splits of a MultimodalDataset (names imported on first use)."""

from __future__ import annotations

from mml_backbones.lazy import lazy_getattr

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
__getattr__ = lazy_getattr(__name__, _EXPORTS)
