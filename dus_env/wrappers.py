"""Wrappers for the DUS environment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np


class FixedSeedCycle(gym.Wrapper):
    """Resets without a seed take the next seed of a fixed list, so repeated evaluations replay the same runs.

    Used for the held-out evaluation episodes: every evaluation scores the policy on the same training runs,
    which makes successive evaluations comparable and keeps them apart from the training seeds.
    """

    def __init__(self, env: gym.Env, seeds: Sequence[int]) -> None:
        super().__init__(env)
        if not seeds:
            raise ValueError("FixedSeedCycle needs at least one seed")
        self.seeds = [int(s) for s in seeds]
        self._next = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Reset with ``seed`` if given, else with the next seed of the cycle."""
        if seed is None:
            seed = self.seeds[self._next % len(self.seeds)]
            self._next += 1
        return self.env.reset(seed=seed, options=options)
