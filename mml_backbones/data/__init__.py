"""Datasets: every loader returns train/val/test splits of a MultimodalDataset."""

from mml_backbones.data.dataset import DatasetSplits, ModalitySource, MultimodalDataset
from mml_backbones.data.registry import DATASETS, list_datasets, load_dataset, register_dataset

__all__ = [
    "DATASETS",
    "DatasetSplits",
    "ModalitySource",
    "MultimodalDataset",
    "list_datasets",
    "load_dataset",
    "register_dataset",
]
