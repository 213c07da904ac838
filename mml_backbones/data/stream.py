"""The training data order: one shuffled stream of indices per run, reshuffled whenever a pass ends."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class IndexStream:
    """Shuffled training indices, reshuffled whenever a pass ends; draws cross pass boundaries."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.n = n
        self.rng = rng
        self.order = rng.permutation(n)
        self.pos = 0
        self.passes = 0

    def take(self, k: int) -> np.ndarray:
        """The next ``k`` indices (a draw may cross a pass boundary)."""
        parts, need = [], k
        while need > 0:
            if self.pos == self.n:
                self.order = self.rng.permutation(self.n)
                self.pos = 0
                self.passes += 1
            chunk = self.order[self.pos : self.pos + need]
            self.pos += len(chunk)
            need -= len(chunk)
            parts.append(chunk)
        return np.concatenate(parts)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the stream exactly, as plain data (the generator's state is ints)."""
        return {
            "rng": self.rng.bit_generator.state,
            "order": self.order.tolist(),
            "pos": self.pos,
            "passes": self.passes,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()``."""
        self.rng.bit_generator.state = state["rng"]
        self.order = np.asarray(state["order"], dtype=np.int64)
        self.pos = int(state["pos"])
        self.passes = int(state["passes"])
