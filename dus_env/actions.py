"""Mapping agent actions to per-modality quantities n_m, shared by the environment and the policy sampler.

Quantities are expressed relative to the nominal batch size B (``n_min / B`` to ``n_max / B``), so a policy
trained with one B runs unchanged in a run with another.

Action types:
    box: Box([-1, 1]^M). a -> factor f = lo + (a + 1) / 2 * (hi - lo) (``scale="linear"``) or
        log f = log lo + (a + 1) / 2 * (log hi - log lo) (``scale="log"``, the default: doubling and halving
        are symmetric); n_m = round(f * B). Out-of-range values are clipped to [-1, 1].
    multidiscrete: MultiDiscrete([bins]^M); bin k of modality m -> the k-th of ``bins`` levels spaced like
        the box mapping from n_min to n_max. Values outside [0, bins) are an error.
    discrete: Discrete(bins^M), the same levels for every combination of modalities (for DQN).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from gymnasium import spaces

from mml_backbones.errors import ConfigError

ActionType = Literal["box", "multidiscrete", "discrete"]
ActionScale = Literal["linear", "log"]


@dataclass(frozen=True)
class ActionMapper:
    """Turns actions into quantities for M modalities.

    Attributes:
        num_modalities: M.
        batch_size: nominal batch size B that the relative bounds are taken of.
        n_min: smallest quantity (at batch_size B).
        n_max: largest quantity (at batch_size B).
        action_type: "box", "multidiscrete" or "discrete".
        scale: "log" or "linear" spacing between n_min and n_max.
        bins: levels per modality for the discrete types.
    """

    num_modalities: int
    batch_size: int
    n_min: int
    n_max: int
    action_type: ActionType = "box"
    scale: ActionScale = "log"
    bins: int = 5

    def __post_init__(self) -> None:
        if self.num_modalities < 1:
            raise ConfigError("num_modalities must be >= 1")
        if not 1 <= self.n_min <= self.n_max:
            raise ConfigError(f"need 1 <= n_min <= n_max, got n_min={self.n_min}, n_max={self.n_max}")
        if self.action_type not in ("box", "multidiscrete", "discrete"):
            raise ConfigError(f"unknown action_type {self.action_type!r}; valid: box, multidiscrete, discrete")
        if self.scale not in ("linear", "log"):
            raise ConfigError(f"unknown action scale {self.scale!r}; valid: linear, log")
        if self.bins < 2:
            raise ConfigError(f"bins must be >= 2, got {self.bins}")

    @property
    def space(self) -> spaces.Space:
        """The Gymnasium action space."""
        m = self.num_modalities
        if self.action_type == "box":
            return spaces.Box(-1.0, 1.0, shape=(m,), dtype=np.float32)
        if self.action_type == "multidiscrete":
            return spaces.MultiDiscrete([self.bins] * m)
        return spaces.Discrete(self.bins**m)

    def _factor(self, u: np.ndarray) -> np.ndarray:
        """u in [0, 1] -> quantity factor relative to B."""
        lo, hi = self.n_min / self.batch_size, self.n_max / self.batch_size
        if self.scale == "log":
            return np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
        return lo + u * (hi - lo)

    def levels(self) -> np.ndarray:
        """The quantity factors of the discrete bins."""
        return self._factor(np.linspace(0.0, 1.0, self.bins))

    def to_unit(self, action: Any) -> np.ndarray:
        """Validate an action and return its position in [0, 1] per modality."""
        m = self.num_modalities
        a = np.asarray(action)
        if self.action_type == "discrete":
            if a.size != 1 or not np.isfinite(a.astype(float)).all() or a.astype(float).item() % 1:
                raise ValueError(f"discrete action must be one integer, got {action!r}")
            k = int(a.item())
            if not 0 <= k < self.bins**m:
                raise ValueError(f"discrete action {k} is outside [0, {self.bins**m})")
            combo = next(itertools.islice(itertools.product(range(self.bins), repeat=m), k, None))
            return np.asarray(combo, dtype=float) / (self.bins - 1)
        a = a.astype(float).reshape(-1) if a.dtype != object else a
        if a.shape != (m,):
            raise ValueError(f"action must have shape ({m},) (one entry per modality), got {np.shape(action)}")
        if not np.isfinite(a).all():
            raise ValueError(f"action contains NaN or inf: {a.tolist()}")
        if self.action_type == "box":
            return (np.clip(a, -1.0, 1.0) + 1.0) / 2.0  # out-of-range values are clipped, as documented
        if (a % 1).any() or (a < 0).any() or (a >= self.bins).any():
            raise ValueError(f"multidiscrete action must hold integers in [0, {self.bins}), got {a.tolist()}")
        return a / (self.bins - 1)

    def quantities(self, action: Any, batch_size: int | None = None) -> np.ndarray:
        """Quantities n_m (ints >= 1) for ``action`` in a run with nominal batch size ``batch_size``."""
        b = batch_size or self.batch_size
        return np.maximum(1, np.rint(self._factor(self.to_unit(action)) * b)).astype(int)

    def action_for(self, quantities: np.ndarray) -> np.ndarray:
        """The box action that gives ``quantities`` (for tests and for warm-starting policies)."""
        if self.action_type != "box":
            raise ConfigError("action_for is defined for box actions only")
        f = np.asarray(quantities, dtype=float) / self.batch_size
        lo, hi = self.n_min / self.batch_size, self.n_max / self.batch_size
        u = (np.log(f) - np.log(lo)) / (np.log(hi) - np.log(lo)) if self.scale == "log" else (f - lo) / (hi - lo)
        return (2 * np.clip(u, 0, 1) - 1).astype(np.float32)
