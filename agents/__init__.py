"""agents: samplers (uniform, heuristic, learned SB3 policy) and SB3 policy training for the DUS environment.

Names are imported on first use, so that ``import agents.heuristic`` (what ``--sampler heuristic`` loads) does
not pull in Stable-Baselines3.
"""

from __future__ import annotations

from mml_backbones.lazy import lazy_getattr

_EXPORTS = {
    "HeuristicSampler": "agents.heuristic",
    "PolicySampler": "agents.policy_sampler",
    "TrainedPolicy": "agents.training",
    "train_policy": "agents.training",
    "load_algorithm": "agents.policy_io",
    "load_policy": "agents.policy_io",
    "read_metadata": "agents.policy_io",
    "save_policy": "agents.policy_io",
    "UniformSampler": "mml_backbones.samplers",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
