"""Configuration of the DUS environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dus_env.actions import ActionScale, ActionType
from dus_env.rewards import REWARDS, RewardType
from mml_backbones.errors import ConfigError
from mml_backbones.models.model import ModelConfig
from mml_backbones.observation import DEFAULT_FEATURES, check_features
from mml_backbones.statistics import StatisticsConfig
from mml_backbones.trainer import OptimConfig, TrainerConfig


@dataclass(frozen=True)
class DUSEnvConfig:
    """One DUS environment: the training run an episode is, and how the agent acts on it.

    Attributes:
        dataset: registered dataset name.
        dataset_options: options of the dataset loader.
        method: training method the run uses (joint, concat, ogm_ge, mie, ...); DUS is a plug-in on top of it.
        method_options: overrides of that method's config.
        model: the architecture.
        optim: optimiser and schedule.
        batch_size: nominal batch size B.
        n_min: smallest quantity an action can give (at B).
        n_max: largest quantity an action can give (at B).
        decision_interval: training iterations per environment step.
        episode_epochs: epochs of training in one episode (its length in steps is
            ceil(episode_epochs * iterations_per_epoch / decision_interval)).
        reward: "delta_val_acc", "final_val_acc" or "balance" (see dus_env.rewards).
        reward_scale: rewards are accuracies times this (100: percentage points).
        balance_weight: weight of the spread penalty of the "balance" reward.
        action_type: "box", "multidiscrete" or "discrete" (see dus_env.actions).
        action_scale: "log" or "linear" spacing of quantities.
        action_bins: levels per modality of the discrete action types.
        observation_features: what the observation vector holds (see mml_backbones.observation).
        statistics: how S_t(m) accumulates.
        val_subset: validation samples scored for rewards (a fixed subset; None: the whole split).
        seed: training seed used when reset() gets no seed (then later resets draw from the env's RNG).
        train_seed_range: [low, high) of the training seeds drawn by resets without a seed; evaluation uses
            seeds outside it (agents.seeds), so policies are never scored on runs they trained on.
        num_threads: torch CPU threads per environment (1 suits vectorised environments).
    """

    dataset: str = "synthetic"
    dataset_options: dict[str, Any] = field(default_factory=lambda: {"preset": "mild"})
    method: str = "joint"
    method_options: dict[str, Any] = field(default_factory=dict)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 64
    n_min: int = 16
    n_max: int = 256
    decision_interval: int = 25
    episode_epochs: int = 4
    reward: RewardType = "delta_val_acc"
    reward_scale: float = 100.0
    balance_weight: float = 1.0
    action_type: ActionType = "box"
    action_scale: ActionScale = "log"
    action_bins: int = 5
    observation_features: tuple[str, ...] = DEFAULT_FEATURES
    statistics: StatisticsConfig = field(default_factory=StatisticsConfig)
    val_subset: int | None = 1000
    seed: int = 0
    train_seed_range: tuple[int, int] = (0, 10_000)
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        if self.reward not in REWARDS:
            raise ConfigError(f"unknown reward {self.reward!r}; valid: {', '.join(REWARDS)}")
        if self.episode_epochs < 1 or self.decision_interval < 1:
            raise ConfigError("episode_epochs and decision_interval must be >= 1")
        check_features(self.observation_features)

    def trainer_config(self, seed: int) -> TrainerConfig:
        """The TrainerConfig of one episode's training run."""
        return TrainerConfig(
            dataset=self.dataset,
            dataset_options=dict(self.dataset_options),
            method=self.method,
            method_options=dict(self.method_options),
            model=self.model,
            optim=self.optim,
            batch_size=self.batch_size,
            epochs=self.episode_epochs,
            decision_interval=self.decision_interval,
            max_quantity=max(self.n_max, self.batch_size),
            statistics=self.statistics,
            observation_features=self.observation_features,
            val_max_samples=self.val_subset,
            seed=seed,
            num_threads=self.num_threads,
        )
