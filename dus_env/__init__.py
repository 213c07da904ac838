"""dus_env: the Gymnasium environment that wraps one multimodal training run.

Importing the package registers the environment ids (``gymnasium.make(id, **overrides)`` accepts any
DUSEnvConfig field and any TrainerConfig field by name):

v1, the papers' regime (SGD lr 1e-3, momentum 0.9, weight decay 1e-4; equal-budget actions; the paired reward
against a uniform reference run, scored by the validation score of the epoch ``fit`` keeps on the whole
validation split (``paired_selected_val``; ``reward="paired_val_acc"`` is the last-evaluation score the first v1
tables used); the observation that describes learning):

    dus_env/DUS-v1            synthetic "mild" (strong + weak modality), joint, 12 epochs, a step every 47 iterations
    dus_env/DUS-Strong-v1     synthetic "strong" (stronger imbalance), the same schedule
    dus_env/DUS-ThreeModal-v1 synthetic "three_modal", the same schedule
    dus_env/DUS-HAPT-v1       UCI HAPT accelerometer + gyroscope, MLP encoders (needs the `data` extra)
    dus_env/DUS-Tiny-v1       a four-step synthetic episode for tests and smoke runs

An instance family (``dus_env.family``, docs/instances.md): each episode is a training run drawn from an
instance set's train or test split, with the validation context in the observation:

    dus_env/DUS-Family-v1     gymnasium.make(id, instance_set="two_modal", split="train"|"test",
                              sampling="random"|"round_robin", instance=NAME to replay one)
    dus_env/DUS-Family-v2     the same, with the validation context refreshed at every decision
                              (``validation_context="decision"``), not only at epoch ends

v0, the first release (Adam 1e-3, 4 epochs, a free quantity per modality, delta_val_acc on a 1000-sample
validation subset, the cumulative/ratio/progress observation), kept working and reproducible: DUS-v0,
DUS-Strong-v0, DUS-ThreeModal-v0, DUS-HAPT-v0, DUS-Tiny-v0. Every v0 setting is written out in ``V0``, since the
defaults (``DUSEnvConfig()``, ``make_config(None)``) are DUS-v1's; tests/dus_env/test_v0_pinned.py pins them.
"""

from typing import Any

from gymnasium.envs.registration import register, registry

from dus_env.actions import ActionMapper
from dus_env.config import DUSEnvConfig, make_config
from dus_env.env import DUSEnv
from mml_backbones.observation import CONTEXT_FEATURES, DEFAULT_FEATURES, LEARNING_FEATURES

#: the v0 release's settings, as flat overrides of DUSEnvConfig / TrainerConfig
V0: dict[str, Any] = {
    "optim": {"name": "adam", "lr": 1e-3},
    "epochs": 4,
    "decision_interval": 25,
    "val_max_samples": 1000,
    "action_budget": "free",
    "reference": False,
    "reward": "delta_val_acc",
    "observation_features": DEFAULT_FEATURES,
}
#: the papers' regime of the v1 worlds (DESIGN.md "Where the decision matters")
V1: dict[str, Any] = {
    "optim": {"name": "sgd", "lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4},
    "epochs": 12,
    "decision_interval": 47,
    "val_max_samples": None,
    "action_budget": "equal",
    "reference": True,
    "reward": "paired_selected_val",
    "observation_features": LEARNING_FEATURES,
}
#: a four-step environment on 256 training samples, for tests and smoke runs (DUS-Tiny-v0 / -v1)
TINY: dict[str, Any] = {
    "dataset_options": {"preset": "mild", "n_train": 256, "n_val": 128, "n_test": 128},
    "batch_size": 32,
    "epochs": 1,
    "decision_interval": 2,
}


def _synthetic(preset: str) -> dict[str, Any]:
    return {"dataset": "synthetic", "dataset_options": {"preset": preset}}


ENV_IDS: dict[str, dict[str, Any]] = {
    "dus_env/DUS-v0": {**V0, **_synthetic("mild")},
    "dus_env/DUS-Strong-v0": {**V0, **_synthetic("strong")},
    "dus_env/DUS-ThreeModal-v0": {**V0, **_synthetic("three_modal")},
    "dus_env/DUS-HAPT-v0": {**V0, "dataset": "hapt", "dataset_options": {}, "epochs": 3, "decision_interval": 20},
    "dus_env/DUS-Tiny-v0": {**V0, **_synthetic("mild"), **TINY, "bounds": {"low": 0.25, "high": 4.0}},
    "dus_env/DUS-v1": {**V1, **_synthetic("mild")},
    "dus_env/DUS-Strong-v1": {**V1, **_synthetic("strong")},
    "dus_env/DUS-ThreeModal-v1": {**V1, **_synthetic("three_modal")},
    # MLP encoders: 5x faster episodes than the 1-D CNNs, and the allocation matters there (RESULTS.md, section 0)
    "dus_env/DUS-HAPT-v1": {
        **V1,
        "dataset": "hapt",
        "dataset_options": {},
        "model": {"encoder": "mlp"},
        "epochs": 12,
        "decision_interval": 41,
    },
    "dus_env/DUS-Tiny-v1": {**V1, **_synthetic("mild"), **TINY},
}

#: the v1 settings an instance family shares (the run itself, optimiser and schedule included, is the instance's)
FAMILY_V1: dict[str, Any] = {
    **{k: V1[k] for k in ("action_budget", "reference", "reward", "val_max_samples")},
    "observation_features": CONTEXT_FEATURES,
}
#: v2: the validation context is refreshed at every decision, so a policy reads the run before its first epoch end
FAMILY_V2: dict[str, Any] = {**FAMILY_V1, "validation_context": "decision"}
_FAMILY_DRAW = {"instance_set": "two_modal", "split": "train", "sampling": "random"}
FAMILY_IDS: dict[str, dict[str, Any]] = {
    "dus_env/DUS-Family-v1": {**FAMILY_V1, **_FAMILY_DRAW},
    "dus_env/DUS-Family-v2": {**FAMILY_V2, **_FAMILY_DRAW},
}
for _id, _kwargs in FAMILY_IDS.items():
    if _id not in registry:  # gymnasium.make_vec(id, num_envs=K): K runs of one instance per round, batched
        register(
            id=_id,
            entry_point="dus_env.family:DUSFamilyEnv",
            vector_entry_point="dus_env.family_batched:make_batched_family",
            kwargs=_kwargs,
        )

# gymnasium.make_vec(id, num_envs=K) trains the K runs batched in one process (dus_env.batched)
for _id, _kwargs in ENV_IDS.items():
    if _id not in registry:
        register(
            id=_id,
            entry_point="dus_env.env:DUSEnv",
            vector_entry_point="dus_env.batched:make_batched",
            kwargs=_kwargs,
        )

__all__ = [
    "ENV_IDS",
    "FAMILY_IDS",
    "FAMILY_V1",
    "FAMILY_V2",
    "TINY",
    "V0",
    "V1",
    "ActionMapper",
    "DUSEnv",
    "DUSEnvConfig",
    "make_config",
]
