"""One run of a batch: its data, model, method, data order, statistics and random state.

A ``Run`` is everything of a training run that is its own: its resolved config (seed, optimiser
hyper-parameters and method options), its dataset splits, the model its seed initialises, the method object,
the ``DUSController`` with its statistics, the shuffled index stream, its torch random state and the training
losses it logged. The training core (``core.TrainingCore``) advances K runs in lockstep; one run alone is the core
with K = 1.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from mml_backbones.controller import DUSController
from mml_backbones.data.dataset import DatasetSplits
from mml_backbones.data.stream import IndexStream
from mml_backbones.errors import DataError
from mml_backbones.methods import MethodContext, build_method
from mml_backbones.methods.base import IterationBatch
from mml_backbones.models.model import build_model
from mml_backbones.trainer_config import TrainerConfig


def select_splits(config: TrainerConfig, splits: DatasetSplits) -> DatasetSplits:
    """``splits`` restricted to ``config.modalities`` (all when None); an unknown name is a DataError."""
    if config.modalities is None:
        return splits
    unknown = [m for m in config.modalities if m not in splits.modality_names]
    if unknown:
        raise DataError(f"unknown modality {unknown}; {config.dataset} has {list(splits.modality_names)}")
    return splits.select_modalities(config.modalities)


class Run:
    """One training run's own state (see the module docstring); built with its own seed.

    Args:
        config: the run's resolved TrainerConfig.
        splits: its dataset splits (already restricted to its modalities).
        device: torch device of the model.
    """

    def __init__(self, config: TrainerConfig, splits: DatasetSplits, device: torch.device) -> None:
        self.config = config
        self.splits = splits
        self.train_data = splits.train
        self.modalities = splits.modality_names
        self.device = device
        n_train = len(self.train_data)
        self.iterations_per_epoch = config.iterations_per_epoch or math.ceil(n_train / config.batch_size)
        self.total_iterations = config.epochs * self.iterations_per_epoch
        self._torch_rng = torch.Generator().manual_seed(config.seed).get_state()
        self._rng_active = False
        with self.rng():
            defaults = splits.info.get("encoder_defaults")
            self.model = build_model(config.model, self.train_data, defaults).to(device)
        context = MethodContext(
            modalities=self.modalities,
            num_classes=splits.num_classes,
            nominal_batch_size=config.batch_size,
            epochs=config.epochs,
            iterations_per_epoch=self.iterations_per_epoch,
            train_data=self.train_data,
            device=device,
            seed=config.seed,
            dus_losses=config.dus_losses,
        )
        self.method = build_method(config.method, config.method_options, self.model, context)
        # the same controller a user's own loop uses: S_t(m), the quantities in force, the decision countdown
        self.controller = DUSController(
            self.modalities,
            batch_size=config.batch_size,
            decision_interval=config.decision_interval,
            total_iterations=self.total_iterations,
            statistics=config.statistics,
            max_quantity=config.max_quantity,
        )
        self.stream = IndexStream(n_train, np.random.default_rng([config.seed, 1]))
        self.loss_sums: dict[str, float] = {}
        self.loss_count = 0
        self._val_subset: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------------------------------------ random
    @contextlib.contextmanager
    def rng(self) -> Iterator[None]:
        """Run a block with this run's torch RNG state swapped in (and saved back afterwards)."""
        if self._rng_active:  # already swapped in
            yield
            return
        outer = torch.get_rng_state()
        torch.set_rng_state(self._torch_rng)
        self._rng_active = True
        try:
            yield
        finally:
            self._rng_active = False
            self._torch_rng = torch.get_rng_state()
            torch.set_rng_state(outer)

    def rng_state(self) -> torch.Tensor:
        """The run's torch RNG state now."""
        return torch.get_rng_state() if self._rng_active else self._torch_rng.clone()

    def set_rng_state(self, state: torch.Tensor) -> None:
        """Restore the run's torch RNG state."""
        if self._rng_active:
            torch.set_rng_state(state)
        else:
            self._torch_rng = state.clone()

    # ------------------------------------------------------------------------------------------------- data
    def batch(self, q: Mapping[str, int], epoch: int, iteration: int) -> IterationBatch:
        """The next iteration's nested prefixes: the next max_m n_m indices of the stream, modality m the first n_m."""
        idx = torch.from_numpy(self.stream.take(max(q.values())))
        inputs = {m: self.train_data.modalities[m][idx[: q[m]]].to(self.device) for m in self.modalities}
        return IterationBatch(
            inputs=inputs,
            labels=self.train_data.labels[idx].to(self.device),
            quantities=dict(q),
            n_paired=min(q.values()),
            nominal_batch_size=self.config.batch_size,
            epoch=epoch,
            iteration=iteration,
        )

    def rows(self, split: str, max_samples: int | None) -> np.ndarray:
        """The rows of ``split`` an evaluation reads: all, or a fixed subset of ``max_samples`` seeded by the run."""
        data = self.splits[split]
        if max_samples is None or max_samples >= len(data):
            return np.arange(len(data))
        key = f"{split}:{max_samples}"
        if key not in self._val_subset:  # a fixed subset, the same at every evaluation
            rng = np.random.default_rng([self.config.seed, 2])
            self._val_subset[key] = np.sort(rng.choice(len(data), max_samples, replace=False))
        return self._val_subset[key]

    # ---------------------------------------------------------------------------------------------- logging
    def log_losses(self, values: Mapping[str, float]) -> None:
        """Add one iteration's logged terms."""
        for k, v in values.items():
            self.loss_sums[k] = self.loss_sums.get(k, 0.0) + v
        self.loss_count += 1

    def running_losses(self) -> dict[str, float]:
        """Mean of each logged term since the last ``pop_losses``."""
        return {k: v / max(1, self.loss_count) for k, v in self.loss_sums.items()}

    def pop_losses(self) -> dict[str, float]:
        """Mean of each logged term since the last call, then reset."""
        out = self.running_losses()
        self.loss_sums, self.loss_count = {}, 0
        return out

    # ------------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The run's own state (its model and optimiser state live in the core's stack)."""
        return {
            "method": self.method.state_dict(),
            "controller": self.controller.state_dict(),
            "stream": self.stream.state_dict(),
            "torch_rng": self.rng_state(),
            "loss_sums": dict(self.loss_sums),
            "loss_count": self.loss_count,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()``."""
        self.method.load_state_dict(state["method"])
        self.controller.load_state_dict(state["controller"])
        self.stream.load_state_dict(state["stream"])
        self.set_rng_state(state["torch_rng"])
        self.loss_sums = {k: float(v) for k, v in state["loss_sums"].items()}
        self.loss_count = int(state["loss_count"])
