"""Reward functions of the DUS environment; each is computed from validation metrics only (never the test split).

The score a downstream run keeps. ``Trainer.fit`` keeps the weights of the epoch with the best validation score
(the run's ``selection_metric``, best over completed epoch ends), not the last epoch's; where runs over-fit the
two disagree. ``selected`` below is that kept score at each decision (``dus_env.episodes``), and the
``*_selected_*`` rewards are built on it, so their return is the score ``fit`` reports for the same run.

paired_selected_val (v1 default; needs ``reference=True``): scale * the change over the step of (agent's
    selected score - the reference's selected score). The return is scale * (agent's selected validation score -
    the uniform reference's), the difference of the two ``fit(...).val[selection_metric]`` of the same seed.
    Before the first epoch end both are the equal score at reset, so the reward is 0 until then.
selected_val: scale * the change of the agent's selected score (the return: selected score - the score at reset).
delta_val_acc (v0 default): scale * (acc_t - acc_{t-1}), the change of fused validation accuracy between two
    decisions (acc_0 is measured at reset). An episode's return is scale * (final - initial accuracy), so the
    agent maximises the validation accuracy at the end of the schedule, with credit given as it comes.
final_val_acc: 0 until the last decision, then scale * final accuracy. The same optimum as delta_val_acc
    without the intermediate credit (sparser, for comparison).
balance: delta_val_acc - balance_weight * spread_t, where spread_t is the max minus the min over modalities
    of S_t(m) / mean S_t: it still pays for accuracy but also for keeping the modalities' cumulative scores
    close, the DUS paper's rebalancing intuition made explicit.
paired_val_acc (v1's default until the selected score; needs ``reference=True``): scale * the change over the
    step of (agent's fused validation accuracy - the reference's), the last evaluation's (kept under its name to
    reproduce the tables and policies made with it). The reference is the uniform equal-budget run from
    the same initial weights and data order (common random numbers), so both start equal and the return is
    scale * (final accuracy - the reference's final accuracy): the advantage over uniform. The uniform
    action earns exactly 0 at every step; the luck of the seed (initial accuracy, data order) cancels.
paired_val_loss: the same with minus the fused validation cross-entropy in place of the accuracy (smoother;
    the return is scale * (reference's final loss - agent's final loss)).
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
        scale: rewards are metrics times this (100: percentage points).
        balance_weight: weight of the spread penalty of the "balance" reward.
        val_loss: fused validation cross-entropy after the decision interval.
        previous_val_loss: the same before it.
        reference_val_acc: the reference run's val_acc (None: no reference run).
        previous_reference_val_acc: the reference run's previous_val_acc.
        reference_val_loss: the reference run's val_loss.
        previous_reference_val_loss: the reference run's previous_val_loss.
        selected: the validation score of the epoch ``fit`` would keep, after the step.
        previous_selected: the same before it.
        reference_selected: the reference run's selected.
        previous_reference_selected: the reference run's previous_selected.
    """

    val_acc: float
    previous_val_acc: float
    ratio: np.ndarray
    terminal: bool
    scale: float = 100.0
    balance_weight: float = 1.0
    val_loss: float = float("nan")
    previous_val_loss: float = float("nan")
    reference_val_acc: float | None = None
    previous_reference_val_acc: float | None = None
    reference_val_loss: float | None = None
    previous_reference_val_loss: float | None = None
    selected: float = float("nan")
    previous_selected: float = float("nan")
    reference_selected: float | None = None
    previous_reference_selected: float | None = None


Metrics = dict[str, float]


def compute_reward(
    name: str,
    val: Metrics,
    before: Metrics,
    ratio: np.ndarray,
    terminal: bool,
    scale: float,
    balance_weight: float,
    ref: Metrics | None = None,
    ref_before: Metrics | None = None,
) -> float:
    """Reward ``name`` of one step from the validation metrics after and before it (and the reference run's)."""
    x = RewardInput(
        val["fused_acc"],
        before["fused_acc"],
        ratio,
        terminal,
        scale,
        balance_weight,
        val_loss=val["fused_loss"],
        previous_val_loss=before["fused_loss"],
        reference_val_acc=None if ref is None else ref["fused_acc"],
        previous_reference_val_acc=None if ref_before is None else ref_before["fused_acc"],
        reference_val_loss=None if ref is None else ref["fused_loss"],
        previous_reference_val_loss=None if ref_before is None else ref_before["fused_loss"],
        selected=val.get("selected", float("nan")),
        previous_selected=before.get("selected", float("nan")),
        reference_selected=None if ref is None else ref.get("selected"),
        previous_reference_selected=None if ref_before is None else ref_before.get("selected"),
    )
    return float(REWARDS.get(name)(x))


RewardFunction = Callable[[RewardInput], float]
#: reward name -> function; add one with ``REWARDS.register("name", fn)``
REWARDS: Registry[RewardFunction] = Registry("reward")
#: rewards that compare with the reference run: the environment refuses them with ``reference=False``
NEEDS_REFERENCE: set[str] = {"paired_val_acc", "paired_val_loss", "paired_selected_val"}


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


def _reference(x: RewardInput, *names: str) -> list[float]:
    values = [getattr(x, n) for n in names]
    if any(v is None for v in values):
        raise ValueError("a paired reward needs the reference run: build the environment with reference=True")
    return values


@REWARDS.register("paired_val_acc")
def paired_val_acc(x: RewardInput) -> float:
    """scale x the change over the step of (agent's fused validation accuracy - the reference run's)."""
    ref, previous_ref = _reference(x, "reference_val_acc", "previous_reference_val_acc")
    # differences taken before the step's change, so the uniform action gives exactly (a - a) - (b - b) = 0
    return x.scale * ((x.val_acc - ref) - (x.previous_val_acc - previous_ref))


@REWARDS.register("paired_val_loss")
def paired_val_loss(x: RewardInput) -> float:
    """scale x the change over the step of (reference's fused validation cross-entropy - agent's)."""
    ref, previous_ref = _reference(x, "reference_val_loss", "previous_reference_val_loss")
    return x.scale * ((ref - x.val_loss) - (previous_ref - x.previous_val_loss))


@REWARDS.register("selected_val")
def selected_val(x: RewardInput) -> float:
    """scale x the change over the step of the validation score of the epoch ``fit`` would keep."""
    return x.scale * (x.selected - x.previous_selected)


@REWARDS.register("paired_selected_val")
def paired_selected_val(x: RewardInput) -> float:
    """scale x the change over the step of (agent's kept validation score - the reference run's)."""
    ref, previous_ref = _reference(x, "reference_selected", "previous_reference_selected")
    return x.scale * ((x.selected - ref) - (x.previous_selected - previous_ref))
