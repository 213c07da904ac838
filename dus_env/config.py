"""Configuration of the DUS environment: the training run an episode is, plus what is the environment's own."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dus_env.actions import ActionBudget, ActionMapper, ActionScale, ActionType
from dus_env.rewards import NEEDS_REFERENCE, REWARDS
from dus_env.seeds import TRAIN_SEED_RANGE
from mml_backbones.config import from_dict, replace, to_dict
from mml_backbones.errors import ConfigError
from mml_backbones.observation import LEARNING_FEATURES
from mml_backbones.optim import OptimConfig
from mml_backbones.trainer_config import TrainerConfig

#: the default episode: DUS-v1's world (synthetic "mild", joint, the papers' SGD, 12 epochs, a step every 47
#: iterations, the whole validation split, the observation that describes learning)
DEFAULT_TRAINER = TrainerConfig(
    dataset="synthetic",
    dataset_options={"preset": "mild"},
    optim=OptimConfig(name="sgd", lr=1e-3, momentum=0.9, weight_decay=1e-4),
    epochs=12,
    decision_interval=47,
    val_max_samples=None,
    observation_features=LEARNING_FEATURES,
    num_threads=1,
)


@dataclass(frozen=True)
class DUSEnvConfig:
    """One DUS environment; the defaults are ``dus_env/DUS-v1`` (the v0 ids state every v0 setting explicitly).

    The episode's training run is ``trainer``: its ``epochs`` are the episode, its ``decision_interval`` the
    iterations of one step, its ``val_max_samples`` the validation samples that rewards score (None: all), its
    ``bounds`` the range of the quantities. Its seed is set per episode by ``reset``.

    Attributes:
        trainer: the training run of one episode (see mml_backbones.TrainerConfig).
        action_type: "box", "multidiscrete" or "discrete" (see dus_env.actions).
        action_budget: "equal" (the action reallocates M * B; v1) or "free" (a quantity per modality; v0).
        action_scale: "log" or "linear" spacing of the free budget's quantities.
        action_bins: levels per modality of the discrete action types.
        action_temperature: sharpness of the equal budget's share weights.
        reward: a registered reward (see dus_env.rewards); the paired ones need ``reference``.
        reference: advance, beside the agent's run, the uniform equal-budget run from the same TrainerConfig and
            seed (common random numbers), which the paired rewards compare with (v1: on; doubles the compute).
        reward_scale: rewards are metrics times this (100: percentage points).
        balance_weight: weight of the spread penalty of the "balance" reward.
        seed: training seed used when reset() gets no seed (then later resets draw from the env's RNG).
        train_seed_range: [low, high) of the training seeds drawn by resets without a seed; selection,
            evaluation and downstream runs use the other ranges of ``dus_env.seeds``, so policies are never
            selected or scored on runs they trained on.
    """

    trainer: TrainerConfig = field(default_factory=lambda: DEFAULT_TRAINER)
    action_type: ActionType = "box"
    action_budget: ActionBudget = "equal"
    action_scale: ActionScale = "log"
    action_bins: int = 5
    action_temperature: float = 2.0
    reward: str = "paired_selected_val"
    reference: bool = True
    reward_scale: float = 100.0
    balance_weight: float = 1.0
    seed: int = 0
    train_seed_range: tuple[int, int] = TRAIN_SEED_RANGE

    def __post_init__(self) -> None:
        REWARDS.get(self.reward)
        if self.reward in NEEDS_REFERENCE and not self.reference:
            raise ConfigError(
                f"reward {self.reward!r} compares with the uniform reference run: set reference=True, or use a "
                "reward without it (delta_val_acc, final_val_acc, balance)"
            )
        self.action_mapper(1)  # validates the action settings

    def action_mapper(self, num_modalities: int) -> ActionMapper:
        """The action mapping for ``num_modalities`` modalities."""
        return ActionMapper(
            num_modalities,
            self.trainer.bounds,
            self.action_type,
            self.action_budget,
            self.action_scale,
            self.action_bins,
            self.action_temperature,
        )

    def episode_seed(self, seed: int | None, first_reset: bool, rng: np.random.Generator) -> int:
        """An episode's training seed: ``seed`` if given, else ``seed`` of this config at the environment's first
        reset, else one drawn from ``rng`` (the environment's np_random) in ``train_seed_range``."""
        if seed is not None:
            return int(seed)
        return self.seed if first_reset else int(rng.integers(*self.train_seed_range))

    def trainer_config(self, seed: int) -> TrainerConfig:
        """The TrainerConfig of the episode whose training seed is ``seed``."""
        return replace(self.trainer, seed=seed)


ENV_FIELDS = frozenset(f.name for f in dataclasses.fields(DUSEnvConfig))
TRAINER_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainerConfig))


def make_config(config: DUSEnvConfig | dict[str, Any] | None = None, **overrides: Any) -> DUSEnvConfig:
    """``config`` with ``overrides``: environment fields by name, and any TrainerConfig field by its own name.

    ``trainer=`` given a TrainerConfig replaces the training run; given a dict, it overlays the fields it names on
    ``config``'s training run (one level deep: ``trainer={"optim": {...}}`` replaces the whole optimiser), as the
    flat TrainerConfig keys (``epochs=2``, ``optim={"name": "adam"}``) do. ``seed`` is the environment's.
    """
    if config is None:
        config = DUSEnvConfig()
    elif isinstance(config, dict):
        config = from_dict(DUSEnvConfig, config)
    env_changes: dict[str, Any] = {}
    trainer = to_dict(config.trainer)
    for key, value in overrides.items():
        if key == "trainer":
            trainer = to_dict(value) if isinstance(value, TrainerConfig) else {**trainer, **to_dict(value)}
        elif key in ENV_FIELDS:
            env_changes[key] = value
        elif key in TRAINER_FIELDS:
            trainer[key] = to_dict(value)
        else:
            valid = sorted(ENV_FIELDS | TRAINER_FIELDS)
            raise ConfigError(f"DUSEnvConfig has no field {key!r} (nor has TrainerConfig); valid: {valid}")
    if "trainer" in overrides:  # flat keys given beside trainer= still apply on top of it
        trainer.update({k: to_dict(v) for k, v in overrides.items() if k in TRAINER_FIELDS and k not in ENV_FIELDS})
    env_changes["trainer"] = from_dict(TrainerConfig, trainer)
    if "train_seed_range" in env_changes:
        env_changes["train_seed_range"] = tuple(env_changes["train_seed_range"])
    return replace(config, **env_changes)
