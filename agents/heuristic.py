"""The heuristic DUS sampler: the modality with the lower cumulative score gets more samples.

With r_m = S(m) / mean_k S(k) (DESIGN.md):

    free:  n_m = clip(round(B * r_m ** -gamma), low * B, high * B)
    equal: the budget M * B shared in proportion to r_m ** -gamma, each n_m >= low * B (``allocate``)

The default, and what the spec ``heuristic`` means, is v1's named heuristic: gamma 2 on the equal budget
(``V1_HEURISTIC``), the one ``dus demo``, ``dus eval-policy`` and the headroom gate compare with. The first
release's heuristic (gamma 1, free budget: more compute) stays reachable by explicit options, ``V0_HEURISTIC``.

The bounds are the same ``QuantityBounds`` the action mapping and the Trainer use. With the paper's running-mean
statistic S_t(m) changes slowly late in training, so the quantities do too; run the trainer with
``StatisticsConfig(kind="ema")`` or ``"window"`` (CLI: ``--statistic ema``) for a statistic that follows the
current state, and raise ``gamma`` for stronger rebalancing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mml_backbones.config import parse_options
from mml_backbones.errors import ConfigError
from mml_backbones.observation import DiscrepancyObservation
from mml_backbones.quantities import QuantityBounds, allocate

#: v1's named heuristic, written out (the spec ``heuristic`` and ``HeuristicSampler()`` mean the same)
V1_HEURISTIC = "heuristic:gamma=2,budget=equal"
#: the first release's heuristic, kept for the v0 benchmarks: gamma 1 on the free budget (adds compute)
V0_HEURISTIC = "heuristic:gamma=1,budget=free"


@dataclass(frozen=True)
class HeuristicSampler:
    """Quantities inversely proportional to each modality's relative cumulative score.

    Attributes:
        gamma: rebalancing strength (0 gives uniform sampling); v1's heuristic uses 2.
        budget: "equal" (shares of M * B, the compute of uniform; v1) or "free" (each n_m from its own ratio;
            the total varies: more compute, v0's).
        bounds: the range of n_m relative to B.
    """

    gamma: float = 2.0
    budget: Literal["free", "equal"] = "equal"
    bounds: QuantityBounds = field(default_factory=QuantityBounds)

    def __post_init__(self) -> None:
        if self.gamma < 0:
            raise ConfigError(f"heuristic: gamma must be >= 0, got {self.gamma}")
        if self.budget not in ("free", "equal"):
            raise ConfigError(f"heuristic: budget must be free or equal, got {self.budget!r}")

    def __call__(self, observation: DiscrepancyObservation) -> dict[str, int]:
        b = observation.nominal_batch_size
        n_min, n_max = self.bounds.at(b)
        weights = np.maximum(observation.ratio, 1e-6) ** (-self.gamma)
        if self.budget == "equal":
            n = allocate(weights, len(weights) * b, n_min)
        else:
            n = np.clip(np.rint(b * weights), n_min, n_max)
        return dict(zip(observation.modalities, (int(x) for x in n)))

    @classmethod
    def from_spec(cls, arg: str | None = None, **context: Any) -> HeuristicSampler:
        """``heuristic`` (v1's: gamma 2, equal budget) or with options: ``heuristic:gamma=1,budget=free,low=0.25``."""
        options = parse_options(arg.split(",")) if arg else {}
        bounds = {k: options.pop(k) for k in ("low", "high") if k in options}
        try:
            return cls(**options, bounds=QuantityBounds(**bounds))
        except TypeError as e:
            raise ConfigError(f"heuristic sampler: {e}; options are gamma, budget, low, high") from None
