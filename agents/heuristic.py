"""The heuristic DUS sampler: the modality with the lower cumulative score gets more samples.

n_m = clip(round(B * (S(m) / mean_k S(k)) ** -gamma), n_min, n_max)   (DESIGN.md)

With the paper's running-mean statistic S_t(m) changes slowly late in training, so the quantities do too;
run the trainer with ``StatisticsConfig(kind="ema")`` or ``"window"`` (CLI: ``--statistic ema``) for a
statistic that follows the current state, and raise ``gamma`` for stronger rebalancing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mml_backbones.config import parse_options
from mml_backbones.errors import ConfigError
from mml_backbones.observation import DiscrepancyObservation


@dataclass(frozen=True)
class HeuristicSampler:
    """Quantities inversely proportional to each modality's relative cumulative score.

    Attributes:
        gamma: rebalancing strength (0 gives uniform sampling).
        n_min: smallest quantity, relative to B = 64 (scaled with the run's B).
        n_max: largest quantity, relative to B = 64.
        reference_batch_size: the B that n_min and n_max are given for.
    """

    gamma: float = 1.0
    n_min: int = 16
    n_max: int = 256
    reference_batch_size: int = 64

    def __post_init__(self) -> None:
        if self.gamma < 0:
            raise ConfigError(f"heuristic: gamma must be >= 0, got {self.gamma}")
        if not 1 <= self.n_min <= self.n_max:
            raise ConfigError(f"heuristic: need 1 <= n_min <= n_max, got {self.n_min}, {self.n_max}")

    def __call__(self, observation: DiscrepancyObservation) -> dict[str, int]:
        b = observation.nominal_batch_size
        scale = b / self.reference_batch_size
        ratio = np.maximum(observation.ratio, 1e-6)
        n = np.rint(b * ratio ** (-self.gamma))
        n = np.clip(n, max(1, round(self.n_min * scale)), max(1, round(self.n_max * scale)))
        return dict(zip(observation.modalities, (int(x) for x in n)))

    @classmethod
    def from_spec(cls, arg: str | None = None, **context: Any) -> HeuristicSampler:
        """``heuristic`` or ``heuristic:gamma=2,n_min=8``."""
        options = parse_options(arg.split(",")) if arg else {}
        try:
            return cls(**options)
        except TypeError as e:
            raise ConfigError(f"heuristic sampler: {e}; options are gamma, n_min, n_max") from None
