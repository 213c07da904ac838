"""Shared fixtures: tiny synthetic runs that finish in a second or two on one CPU thread."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mml_backbones.trainer import TrainerConfig

TINY = {"preset": "mild", "n_train": 512, "n_val": 256, "n_test": 256}


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    torch.set_num_threads(1)


class _Forbidden:
    """Stands in for a split that must never be read: any access fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the environment read the test split ({name})")

    def __len__(self):
        raise AssertionError("the environment read the test split")


@pytest.fixture
def forbid_test_split():
    """A function that makes an environment's test split fail the test when anything reads it."""

    def forbid(env) -> None:
        env.splits.test = _Forbidden()

    return forbid


@pytest.fixture
def tiny_config() -> TrainerConfig:
    """Two epochs of 16 iterations on a small synthetic preset."""
    return TrainerConfig(dataset="synthetic", dataset_options=dict(TINY), epochs=2, batch_size=32, decision_interval=4)


@pytest.fixture
def tiny_set_data(tmp_path) -> dict:
    """A tiny instance set: three synthetic train instances (one with the weak modality first, one under Adam)
    and a test instance on a user's own .npz (``mine.npz`` beside the set file, three classes)."""
    rng = np.random.default_rng(0)
    n = 120
    np.savez(
        tmp_path / "mine.npz",
        labels=np.arange(n) % 3,
        a=rng.normal(size=(n, 5)).astype(np.float32),
        b=rng.normal(size=(n, 7)).astype(np.float32),
    )
    options = {"preset": "mild", "n_train": 128, "n_val": 64, "n_test": 64, "bayes_samples": 1000}
    return {
        "name": "tiny",
        "defaults": {
            "dataset": "synthetic",
            "dataset_options": options,
            "batch_size": 32,
            "epochs": 2,
            "decision_interval": 2,
        },
        "train": [
            {"name": "s0", "dataset_options": {"structure_seed": 0}},
            {"name": "s1-weak-first", "dataset_options": {"structure_seed": 1}, "modalities": ["weak", "strong"]},
            {"name": "s2-adam", "dataset_options": {"structure_seed": 2}, "optim": {"name": "adam", "lr": 1e-3}},
        ],
        "test": [{"name": "mine", "dataset": "npz", "dataset_options": {"path": "mine.npz"}, "batch_size": 16}],
    }


@pytest.fixture
def write_set(tmp_path):
    """Writes an instance set's dict to ``tmp_path/<name>.json`` and returns the path."""

    def write(data: dict) -> str:
        path = tmp_path / f"{data['name']}.json"
        path.write_text(json.dumps(data))
        return str(path)

    return write
