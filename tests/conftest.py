"""Shared fixtures: tiny synthetic runs that finish in a second or two on one CPU thread."""

from __future__ import annotations

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
