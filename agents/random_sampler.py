"""The random sampler: a uniformly random box action at every decision, mapped as the environment maps it.

The "random policy" baseline of dynamic algorithm configuration benchmarks (DACBench): what a sampler scores
when it moves the shares without reading the run. Its actions keep the v1 equal budget (``ActionMapper``
defaults), so it spends exactly uniform's samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dus_env.actions import ActionMapper
from mml_backbones.errors import ConfigError
from mml_backbones.observation import DiscrepancyObservation


class RandomSampler:
    """Draws each decision's action uniformly from the box [-1, 1]^M, from its own seeded generator."""

    def __init__(self, seed: int = 0, mapper: ActionMapper | None = None) -> None:
        self.seed = seed
        self.mapper = mapper
        self.rng = np.random.default_rng(seed)

    def __call__(self, observation: DiscrepancyObservation) -> dict[str, int]:
        m = len(observation.modalities)
        mapper = self.mapper if self.mapper is not None else ActionMapper(m)
        action = self.rng.uniform(-1.0, 1.0, m).astype(np.float32)
        q = mapper.action_to_quantities(action, observation.nominal_batch_size)
        return dict(zip(observation.modalities, (int(n) for n in q)))

    @classmethod
    def from_spec(cls, arg: str | None = None, **context: Any) -> RandomSampler:
        """``random`` or ``random:SEED``."""
        try:
            return cls(int(arg) if arg else 0)
        except ValueError:
            raise ConfigError(f"random sampler: the argument is a seed (random:SEED), got {arg!r}") from None

    def __repr__(self) -> str:
        return f"RandomSampler(seed={self.seed})"
