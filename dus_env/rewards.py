"""Reward functions of the DUS environment; each is computed from validation accuracies only.

    delta_val_acc (default): scale * (acc_t - acc_{t-1}), the change of fused validation accuracy between two
        decisions (acc_0 is measured at reset). An episode's return is scale * (final - initial accuracy), so the
        agent maximises the validation accuracy at the end of the schedule, with credit given as it comes.
    final_val_acc: 0 until the last decision, then scale * final accuracy. The same optimum as delta_val_acc
        without the intermediate credit (sparser, for comparison).
    balance: delta_val_acc - balance_weight * spread_t, where spread_t is the max minus the min over modalities
        of S_t(m) / mean S_t: it still pays for accuracy but also for keeping the modalities' cumulative scores
        close, the DUS paper's rebalancing intuition made explicit.
The test split is never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from mml_backbones.errors import ConfigError

RewardType = Literal["delta_val_acc", "final_val_acc", "balance"]
REWARDS = ("delta_val_acc", "final_val_acc", "balance")


@dataclass(frozen=True)
class RewardInput:
    """What a reward is computed from at one decision.

    Attributes:
        val_acc: fused validation accuracy after the decision interval.
        previous_val_acc: the same before it.
        ratio: S_t(m) / mean_k S_t(k).
        terminal: whether this decision ends the episode.
    """

    val_acc: float
    previous_val_acc: float
    ratio: np.ndarray
    terminal: bool


def reward(kind: RewardType, x: RewardInput, scale: float = 100.0, balance_weight: float = 1.0) -> float:
    """The reward of type ``kind`` (see the module docstring)."""
    if kind == "delta_val_acc":
        return scale * (x.val_acc - x.previous_val_acc)
    if kind == "final_val_acc":
        return scale * x.val_acc if x.terminal else 0.0
    if kind == "balance":
        spread = float(np.max(x.ratio) - np.min(x.ratio))
        return scale * (x.val_acc - x.previous_val_acc) - balance_weight * spread
    raise ConfigError(f"unknown reward {kind!r}; valid: {', '.join(REWARDS)}")
