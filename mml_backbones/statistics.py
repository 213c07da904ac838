"""The running DUS statistics: per-iteration scores s_t(m), the cumulative score S_t(m), samples consumed.

s_t(m) is the batch mean of modality m's unimodal-head softmax probability of the true class (DUS paper).
S_t(m) is by default the running mean S_t = ((t-1)/t) S_{t-1} + s_t / t (the paper's statistic, completed),
where t counts the iterations in which modality m was scored (methods that train one modality per iteration,
such as MIE, score only that one; the others keep their statistic).
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
        self.counts = np.zeros(m, dtype=np.int64)
        self.last = np.zeros(m)
        self.cumulative = np.zeros(m)
        self.samples = np.zeros(m, dtype=np.int64)
        self._ema_raw = np.zeros(m)
        self._window: deque[np.ndarray] = deque(maxlen=self.config.window)

    def update(self, scores: Mapping[str, float], quantities: Mapping[str, int]) -> None:
        """Add one iteration's scores s_t(m) (for the modalities scored) and the quantities n_m it used."""
        self.t += 1
        self.samples += np.array([int(quantities.get(m, 0)) for m in self.modalities], dtype=np.int64)
        scored = np.array([m in scores for m in self.modalities])
        if not scored.any():
            return
        s = np.array([float(scores[m]) if m in scores else 0.0 for m in self.modalities])
        self.last = np.where(scored, s, self.last)
        self.counts += scored
        n = np.maximum(self.counts, 1)
        kind = self.config.kind
        if kind == "running_mean":
            new = ((n - 1) * self.cumulative + s) / n
        elif kind == "ema":
            d = self.config.ema_decay
            self._ema_raw = np.where(scored, d * self._ema_raw + (1 - d) * s, self._ema_raw)
            new = self._ema_raw / (1 - d**n)
        else:
            self._window.append(np.where(scored, s, np.nan))
            with np.errstate(invalid="ignore"):
                stacked = np.array(self._window)
                counts = (~np.isnan(stacked)).sum(0)
                new = np.where(counts > 0, np.nansum(stacked, 0) / np.maximum(counts, 1), self.cumulative)
        self.cumulative = np.where(scored, new, self.cumulative)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume."""
        return {
            "t": self.t,
            "counts": self.counts.copy(),
            "last": self.last.copy(),
            "cumulative": self.cumulative.copy(),
            "samples": self.samples.copy(),
            "ema_raw": self._ema_raw.copy(),
            "window": [w.copy() for w in self._window],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from ``state_dict()``."""
        self.t = int(state["t"])
        self.counts = np.asarray(state["counts"], dtype=np.int64)
        self.last = np.asarray(state["last"], dtype=float)
        self.cumulative = np.asarray(state["cumulative"], dtype=float)
        self.samples = np.asarray(state["samples"], dtype=np.int64)
        self._ema_raw = np.asarray(state["ema_raw"], dtype=float)
        self._window = deque((np.asarray(w) for w in state["window"]), maxlen=self.config.window)
