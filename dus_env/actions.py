"""Mapping agent actions to per-modality quantities n_m, shared by the environment and the policy sampler.

Quantities are relative to the nominal batch size B (``QuantityBounds``: ``low * B`` to ``high * B``), so a
policy trained with one B runs unchanged in a run with another.

Every action type is first read as a position u in [0, 1] per modality:
    box: Box([-1, 1]^M), u = (a + 1) / 2; out-of-range values are clipped to [-1, 1].
    multidiscrete: MultiDiscrete([bins]^M), u = k / (bins - 1); values outside [0, bins) are an error.
    discrete: Discrete(bins^M), the same levels for every combination of modalities (for DQN).

Then the budget decides what u means:
    equal (v1 default): the action reallocates a fixed total ``sum_m n_m = M * B``. Modality m's weight is
        ``exp(temperature * (2u - 1))`` and ``mml_backbones.quantities.allocate`` shares M * B in proportion,
        with the floor ``low * B``; the zero action (u = 1/2 everywhere) is uniform, B each.
    free (v0): each modality's factor f = n_m / B lies in [low, high] on a log scale (``scale="log"``: doubling
        and halving are symmetric) or a linear one; n_m = round(f * B), so the total varies with the action.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from gymnasium import spaces

from mml_backbones.config import from_dict
from mml_backbones.errors import ConfigError
from mml_backbones.quantities import QuantityBounds, allocate

ActionType = Literal["box", "multidiscrete", "discrete"]
ActionScale = Literal["linear", "log"]
ActionBudget = Literal["equal", "free"]


@dataclass(frozen=True)
class ActionMapper:
    """Turns actions into quantities for M modalities (its fields are the policy metadata's "action" entry).

    Attributes:
        num_modalities: M.
        bounds: the range of n_m relative to B (the floor ``low`` also holds under the equal budget).
        action_type: "box", "multidiscrete" or "discrete".
        budget: "equal" (shares of M * B) or "free" (a quantity per modality).
        scale: "log" or "linear" spacing of the free budget's factors.
        bins: levels per modality for the discrete types.
        temperature: sharpness of the equal budget's weights exp(temperature * a).
    """

    num_modalities: int
    bounds: QuantityBounds = field(default_factory=QuantityBounds)
    action_type: ActionType = "box"
    budget: ActionBudget = "equal"
    scale: ActionScale = "log"
    bins: int = 5
    temperature: float = 2.0

    def __post_init__(self) -> None:
        if self.num_modalities < 1:
            raise ConfigError("num_modalities must be >= 1")
        if self.action_type not in ("box", "multidiscrete", "discrete"):
            raise ConfigError(f"unknown action_type {self.action_type!r}; valid: box, multidiscrete, discrete")
        if self.budget not in ("equal", "free"):
            raise ConfigError(f"unknown action budget {self.budget!r}; valid: equal, free")
        if self.scale not in ("linear", "log"):
            raise ConfigError(f"unknown action scale {self.scale!r}; valid: linear, log")
        if self.bins < 2:
            raise ConfigError(f"bins must be >= 2, got {self.bins}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")

    @classmethod
    def from_metadata(cls, action: dict[str, Any], num_modalities: int) -> ActionMapper:
        """The mapper a policy file's metadata describes (also the v0 format: n_min/n_max at a batch size)."""
        if "n_min" in action:  # v0 policies: absolute bounds at a batch size, free budget
            b = action["batch_size"]
            bounds = QuantityBounds(action["n_min"] / b, action["n_max"] / b)
            return cls(num_modalities, bounds, action["type"], "free", action["scale"], action["bins"])
        return from_dict(cls, {**action, "num_modalities": num_modalities})

    @property
    def space(self) -> spaces.Space:
        """The Gymnasium action space."""
        m = self.num_modalities
        if self.action_type == "box":
            return spaces.Box(-1.0, 1.0, shape=(m,), dtype=np.float32)
        if self.action_type == "multidiscrete":
            return spaces.MultiDiscrete([self.bins] * m)
        return spaces.Discrete(self.bins**m)

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
        if a.shape == ():
            raise ValueError(f"action must have shape ({m},), got a scalar {action!r}")
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

    def action_to_quantities(self, action: Any, batch_size: int) -> np.ndarray:
        """Quantities n_m (ints >= 1) that ``action`` gives in a run with nominal batch size ``batch_size``."""
        u = self.to_unit(action)
        n_min, n_max = self.bounds.at(batch_size)
        if self.budget == "equal":
            weights = np.exp(self.temperature * (2.0 * u - 1.0))
            return allocate(weights, self.num_modalities * batch_size, n_min)
        lo, hi = self.bounds.low, self.bounds.high
        log = self.scale == "log"
        f = np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo))) if log else lo + u * (hi - lo)
        return np.clip(np.rint(f * batch_size), n_min, n_max).astype(int)

    def action_for(self, quantities: np.ndarray, batch_size: int) -> np.ndarray:
        """A box action that gives ``quantities`` (for tests, benchmarks and warm-starting policies)."""
        if self.action_type != "box":
            raise ConfigError("action_for is defined for box actions only")
        n = np.asarray(quantities, dtype=float)
        if self.budget == "equal":  # weights exp(temperature * a) are proportional to n where the floor does not bind
            a = np.log(n / n.mean()) / self.temperature
            return np.clip(a - a.mean(), -1, 1).astype(np.float32)
        lo, hi = self.bounds.low, self.bounds.high
        f = n / batch_size
        u = (np.log(f) - np.log(lo)) / (np.log(hi) - np.log(lo)) if self.scale == "log" else (f - lo) / (hi - lo)
        return (2 * np.clip(u, 0, 1) - 1).astype(np.float32)
