"""dus_env: the Gymnasium environment that wraps one multimodal training run.

Importing the package registers the environment ids:

    dus_env/DUS-v0            synthetic "mild" preset (strong + weak modality), fast: an episode in seconds
    dus_env/DUS-Strong-v0     synthetic "strong" preset (stronger imbalance)
    dus_env/DUS-ThreeModal-v0 synthetic "three_modal" preset (three modalities)
    dus_env/DUS-HAPT-v0       UCI HAPT accelerometer + gyroscope (needs the `data` extra)
    dus_env/DUS-Tiny-v0       a four-step synthetic episode for tests and smoke runs

``gymnasium.make("dus_env/DUS-v0", **overrides)`` accepts any DUSEnvConfig field as an override.
"""

from gymnasium.envs.registration import register, registry

from dus_env.actions import ActionMapper
from dus_env.config import DUSEnvConfig
from dus_env.env import DUSEnv

#: a four-step environment on 256 training samples, for tests and smoke runs (also dus_env/DUS-Tiny-v0)
TINY = {
    "dataset_options": {"preset": "mild", "n_train": 256, "n_val": 128, "n_test": 128},
    "batch_size": 32,
    "episode_epochs": 1,
    "decision_interval": 2,
    "n_min": 8,
    "n_max": 128,
}

ENV_IDS = {
    "dus_env/DUS-v0": {"dataset": "synthetic", "dataset_options": {"preset": "mild"}},
    "dus_env/DUS-Strong-v0": {"dataset": "synthetic", "dataset_options": {"preset": "strong"}},
    "dus_env/DUS-ThreeModal-v0": {"dataset": "synthetic", "dataset_options": {"preset": "three_modal"}},
    "dus_env/DUS-HAPT-v0": {"dataset": "hapt", "dataset_options": {}, "episode_epochs": 3, "decision_interval": 20},
    "dus_env/DUS-Tiny-v0": {"dataset": "synthetic", **TINY},
}

for _id, _kwargs in ENV_IDS.items():
    if _id not in registry:
        register(id=_id, entry_point="dus_env.env:DUSEnv", kwargs=_kwargs)

__all__ = ["ENV_IDS", "TINY", "ActionMapper", "DUSEnv", "DUSEnvConfig"]
