"""The Trainer: the training core (one run, or K runs in lockstep) with ``fit``, the run layer, on top.

``core.py`` holds the loop (``TrainingCore``: schedule, sampling, statistics, the run axis); ``fit.py`` the run layer
(a whole schedule with validation selection, the run directory, resume). The Trainer joins them, so the core never
imports the run layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mml_backbones.core import CHECKPOINT_FORMAT, TrainingCore
from mml_backbones.fit import FitResult, fit, run_config
from mml_backbones.optim import OptimConfig
from mml_backbones.samplers import Sampler
from mml_backbones.trainer_config import TrainerConfig

__all__ = ["CHECKPOINT_FORMAT", "FitResult", "OptimConfig", "Trainer", "TrainerConfig"]


class Trainer(TrainingCore):
    """Owns the models, optimisers, data streams and running statistics of one run (or K runs in lockstep).

    Step-wise API: ``observation()``, ``run_decision(quantities)``, ``run_iterations(n, quantities)``,
    ``evaluate(splits)``, ``state_dict()``/``load_state_dict()``; ``fit(sampler)`` runs one run's whole schedule.
    K runs: ``Trainer([config_1, ..., config_K])``, then ``decide_each``, ``observations``, ``evaluate(run=k)``
    (see ``core.TrainingCore``).
    """

    def run_config(self, sampler: Sampler | None = None) -> dict[str, Any]:
        """The resolved configuration written to config.json (see ``fit.run_config``)."""
        return run_config(self, sampler)

    def fit(
        self,
        sampler: Sampler | None = None,
        run_dir: str | Path | None = None,
        resume: bool = False,
        progress: bool = True,
        validation_only: bool = False,
        trust_file: bool = False,
        **options: Any,
    ) -> FitResult:
        """Train the whole schedule with ``sampler``, select on validation, report test (see ``fit.fit``).

        ``options``: ``fit.fit``'s loggers, run_info and log.
        """
        return fit(
            self,
            sampler,
            run_dir=run_dir,
            resume=resume,
            progress=progress,
            validation_only=validation_only,
            trust_file=trust_file,
            **options,
        )
