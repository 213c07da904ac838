"""The running DUS statistics: per-iteration scores s_t(m), the cumulative score S_t(m), samples consumed.

s_t(m) is the batch mean of modality m's unimodal-head softmax probability of the true class (DUS paper).
S_t(m) is by default the running mean S_t = ((t-1)/t) S_{t-1} + s_t / t (the paper's statistic, completed),
where t counts the iterations in which modality m was scored (methods that train one modality per iteration,
such as MIE, score only that one; the others keep their statistic).
For long runs the running mean barely moves late in training, so an exponential moving average
(bias-corrected) and a sliding-window mean are offered as options.

How learning is going, per block of ``block`` iterations (the controller's decision interval, so that at every
decision point the latest complete block is exactly the last decision interval):

    block_score(m)  mean s_t(m) over the latest complete block
    speed(m)        (block_score - the previous block's) / block: the change of s_t per iteration, in [-1, 1];
                    0 until two blocks are complete
    loss(m)         mean unimodal training cross-entropy (nats) of modality m over the latest complete block;
                    0 until one block is complete. Losses are given with the scores; where they are not,
                    -log s_t(m) stands in (a lower bound of the cross-entropy, by Jensen's inequality).

Modalities not scored in a block keep their previous block values.
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

    def __init__(self, modalities: Sequence[str], config: StatisticsConfig | None = None, block: int = 1) -> None:
        if int(block) != block or block < 1:
            raise ConfigError(f"block must be a positive integer, got {block!r}")
        self.modalities = tuple(modalities)
        self.config = config or StatisticsConfig()
        self.block = int(block)
        m = len(self.modalities)
        self.t = 0
        self.counts = np.zeros(m, dtype=np.int64)
        self.last = np.zeros(m)
        self.cumulative = np.zeros(m)
        self.samples = np.zeros(m, dtype=np.int64)
        self._ema_raw = np.zeros(m)
        self._window: deque[np.ndarray] = deque(maxlen=self.config.window)
        self.block_score = np.full(m, np.nan)  # NaN: no complete block yet
        self.previous_block_score = np.full(m, np.nan)
        self.block_loss = np.full(m, np.nan)
        self._block_sums = np.zeros((3, m))  # score sum, loss sum, scored count within the current block

    @property
    def speed(self) -> np.ndarray:
        """Change of s_t(m) per iteration between the last two complete blocks (0 until there are two)."""
        d = (self.block_score - self.previous_block_score) / self.block
        return np.nan_to_num(d, nan=0.0)

    @property
    def loss(self) -> np.ndarray:
        """Mean unimodal training cross-entropy of each modality over the latest complete block (0 before)."""
        return np.nan_to_num(self.block_loss, nan=0.0)

    def update(
        self, scores: Mapping[str, float], quantities: Mapping[str, int], losses: Mapping[str, float] | None = None
    ) -> None:
        """Add one iteration's scores s_t(m) and training losses (for the modalities scored) and the n_m it used."""
        self.t += 1
        self.samples += np.array([int(quantities.get(m, 0)) for m in self.modalities], dtype=np.int64)
        scored = np.array([m in scores for m in self.modalities])
        s = np.array([float(scores[m]) if m in scores else 0.0 for m in self.modalities])
        self._update_block(scored, s, losses or {})
        if not scored.any():
            return
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

    def _update_block(self, scored: np.ndarray, s: np.ndarray, losses: Mapping[str, float]) -> None:
        """Add an iteration to the current block; at its end it becomes the latest complete block."""
        # -log s_t is what a loop that passes only scores can give: a lower bound of the cross-entropy
        stand_in = -np.log(np.clip(s, 1e-12, 1.0))
        loss = np.array([float(losses.get(m, stand_in[i])) for i, m in enumerate(self.modalities)])
        self._block_sums += np.where(scored, np.stack([s, loss, np.ones_like(s)]), 0.0)
        if self.t % self.block:
            return
        score_sum, loss_sum, n = self._block_sums
        has = n > 0
        self.previous_block_score = np.where(has, self.block_score, self.previous_block_score)
        self.block_score = np.where(has, score_sum / np.maximum(n, 1), self.block_score)
        self.block_loss = np.where(has, loss_sum / np.maximum(n, 1), self.block_loss)
        self._block_sums = np.zeros_like(self._block_sums)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as plain lists and numbers (``torch.load(weights_only=True)`` reads it)."""
        return {
            "t": int(self.t),
            "counts": self.counts.tolist(),
            "last": self.last.tolist(),
            "cumulative": self.cumulative.tolist(),
            "samples": self.samples.tolist(),
            "ema_raw": self._ema_raw.tolist(),
            "window": [np.asarray(w).tolist() for w in self._window],
            "block_score": self.block_score.tolist(),
            "previous_block_score": self.previous_block_score.tolist(),
            "block_loss": self.block_loss.tolist(),
            "block_sums": self._block_sums.tolist(),
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
        m = len(self.modalities)  # states written before the block statistics existed start them afresh
        self.block_score = np.asarray(state.get("block_score", np.full(m, np.nan)), dtype=float)
        self.previous_block_score = np.asarray(state.get("previous_block_score", np.full(m, np.nan)), dtype=float)
        self.block_loss = np.asarray(state.get("block_loss", np.full(m, np.nan)), dtype=float)
        self._block_sums = np.asarray(state.get("block_sums", np.zeros((3, m))), dtype=float)
