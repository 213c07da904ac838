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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mml_backbones.registry import Registry


@dataclass(frozen=True)
class RewardInput:
    """What a reward is computed from at one decision.

    Attributes:
        val_acc: fused validation accuracy after the decision interval.
        previous_val_acc: the same before it.
        ratio: S_t(m) / mean_k S_t(k).
        terminal: whether this decision ends the episode.
        scale: rewards are accuracies times this (100: percentage points).
        balance_weight: weight of the spread penalty of the "balance" reward.
    """

    val_acc: float
    previous_val_acc: float
    ratio: np.ndarray
    terminal: bool
    scale: float = 100.0
    balance_weight: float = 1.0


RewardFunction = Callable[[RewardInput], float]
#: reward name -> function; add one with ``REWARDS.register("name", fn)``
REWARDS: Registry[RewardFunction] = Registry("reward")


@REWARDS.register("delta_val_acc")
def delta_val_acc(x: RewardInput) -> float:
    """scale x the change of fused validation accuracy over the step."""
    return x.scale * (x.val_acc - x.previous_val_acc)


@REWARDS.register("final_val_acc")
def final_val_acc(x: RewardInput) -> float:
    """scale x the final validation accuracy at the last step, 0 before."""
    return x.scale * x.val_acc if x.terminal else 0.0


@REWARDS.register("balance")
def balance(x: RewardInput) -> float:
    """delta_val_acc minus balance_weight x the spread of the ratios S_t(m) / mean S_t."""
    return delta_val_acc(x) - x.balance_weight * float(np.max(x.ratio) - np.min(x.ratio))
