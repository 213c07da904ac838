"""The running DUS statistics: per-iteration scores s_t(m), the cumulative score S_t(m), samples consumed.

s_t(m) is the batch mean of modality m's unimodal-head softmax probability of the true class (DUS paper).
S_t(m) is by default the running mean S_t = ((t-1)/t) S_{t-1} + s_t / t (the paper's statistic, completed).
For long runs the running mean barely moves late in training, so an exponential moving average
(bias-corrected) and a sliding-window mean are offered as options.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mml_backbones.errors import ConfigError

StatisticKind = Literal["running_mean", "ema", "window"]


@dataclass(frozen=True)
class StatisticsConfig:
    """How S_t(m) accumulates s_t(m).

    Attributes:
        kind: "running_mean" (paper), "ema" (exponential, bias-corrected) or "window" (mean of the last
            ``window`` iterations).
        ema_decay: decay of the exponential average (weight of the past).
        window: length of the sliding window.
    """

    kind: StatisticKind = "running_mean"
    ema_decay: float = 0.98
    window: int = 50

    def __post_init__(self) -> None:
        if self.kind not in ("running_mean", "ema", "window"):
            raise ConfigError(f"unknown statistic kind {self.kind!r}; valid: running_mean, ema, window")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.window < 1:
            raise ConfigError(f"window must be >= 1, got {self.window}")


class ModalityStatistics:
    """Accumulates s_t(m) into S_t(m) for every modality and counts the samples each one consumed."""

    def __init__(self, modalities: Sequence[str], config: StatisticsConfig | None = None) -> None:
        self.modalities = tuple(modalities)
        self.config = config or StatisticsConfig()
        m = len(self.modalities)
        self.t = 0
        self.last = np.zeros(m)
        self.cumulative = np.zeros(m)
        self.samples = np.zeros(m, dtype=np.int64)
        self._ema_raw = np.zeros(m)
        self._window: deque[np.ndarray] = deque(maxlen=self.config.window)

    def update(self, scores: Mapping[str, float], quantities: Mapping[str, int]) -> None:
        """Add one iteration's scores s_t(m) and the quantities n_m it used."""
        s = np.array([float(scores[m]) for m in self.modalities])
        self.t += 1
        self.last = s
        self.samples += np.array([int(quantities[m]) for m in self.modalities], dtype=np.int64)
        kind = self.config.kind
        if kind == "running_mean":
            self.cumulative = ((self.t - 1) * self.cumulative + s) / self.t
        elif kind == "ema":
            d = self.config.ema_decay
            self._ema_raw = d * self._ema_raw + (1 - d) * s
            self.cumulative = self._ema_raw / (1 - d**self.t)
        else:
            self._window.append(s)
            self.cumulative = np.mean(self._window, axis=0)

    def ratio(self) -> np.ndarray:
        """S_t(m) divided by the mean over modalities (1 everywhere before the first update)."""
        mean = self.cumulative.mean()
        return self.cumulative / mean if mean > 0 else np.ones(len(self.modalities))

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume."""
        return {
            "t": self.t,
            "last": self.last.copy(),
            "cumulative": self.cumulative.copy(),
            "samples": self.samples.copy(),
            "ema_raw": self._ema_raw.copy(),
            "window": [w.copy() for w in self._window],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from ``state_dict()``."""
        self.t = int(state["t"])
        self.last = np.asarray(state["last"], dtype=float)
        self.cumulative = np.asarray(state["cumulative"], dtype=float)
        self.samples = np.asarray(state["samples"], dtype=np.int64)
        self._ema_raw = np.asarray(state["ema_raw"], dtype=float)
        self._window = deque((np.asarray(w) for w in state["window"]), maxlen=self.config.window)
