"""dus_env: the Gymnasium environment that wraps one multimodal training run.

Importing the package registers the environment ids:

    dus_env/DUS-v0            synthetic "mild" preset (strong + weak modality), fast: an episode in seconds
    dus_env/DUS-Strong-v0     synthetic "strong" preset (stronger imbalance)
    dus_env/DUS-ThreeModal-v0 synthetic "three_modal" preset (three modalities)
    dus_env/DUS-HAPT-v0       UCI HAPT accelerometer + gyroscope (needs the `data` extra)

``gymnasium.make("dus_env/DUS-v0", **overrides)`` accepts any DUSEnvConfig field as an override.
"""

from gymnasium.envs.registration import register, registry

from dus_env.actions import ActionMapper
from dus_env.config import DUSEnvConfig
from dus_env.env import DUSEnv

ENV_IDS = {
    "dus_env/DUS-v0": {"dataset": "synthetic", "dataset_options": {"preset": "mild"}},
    "dus_env/DUS-Strong-v0": {"dataset": "synthetic", "dataset_options": {"preset": "strong"}},
    "dus_env/DUS-ThreeModal-v0": {"dataset": "synthetic", "dataset_options": {"preset": "three_modal"}},
    "dus_env/DUS-HAPT-v0": {"dataset": "hapt", "dataset_options": {}, "episode_epochs": 3, "decision_interval": 20},
}

for _id, _kwargs in ENV_IDS.items():
    if _id not in registry:
        register(id=_id, entry_point="dus_env.env:DUSEnv", kwargs=_kwargs)

__all__ = ["ENV_IDS", "ActionMapper", "DUSEnv", "DUSEnvConfig"]
