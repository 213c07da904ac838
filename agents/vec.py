"""Stable-Baselines3 on the batched DUS environment: ``dus train-policy --vec batched --n-envs K``.

``BatchedVecEnv`` adapts ``dus_env.batched.BatchedDUSEnv`` (K runs trained in lockstep in one process) to SB3's
``VecEnv``: SB3 resets finished environments in the same step and reports the last observation as
``infos[i]["terminal_observation"]``, so the adapter drives the environment's list-of-infos core
(``begin`` / ``advance``) rather than its Gymnasium next-step autoreset. Seeds follow SB3's convention:
``venv.seed(s)`` gives environment i the training seed s + i at the next reset; later episodes draw theirs as
``DUSEnv`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import load_env_creator
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from dus_env.batched import BatchedDUSEnv
from mml_backbones.errors import ConfigError

#: the vector entry points of DUS ids: one world's runs, or K runs of one instance per round (a family)
BATCHED_ENTRY_POINTS = ("dus_env.batched:make_batched", "dus_env.family_batched:make_batched_family")


class BatchedVecEnv(VecEnv):
    """SB3 ``VecEnv`` over a ``BatchedDUSEnv`` (one process, K runs on stacked parameters)."""

    def __init__(self, env: BatchedDUSEnv) -> None:
        self.env = env
        self._actions: np.ndarray | None = None
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    def reset(self) -> np.ndarray:
        """Start K new runs (with the seeds set by ``seed()``, if any)."""
        obs, self.reset_infos = self.env.begin(self._seeds)
        self._reset_seeds()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Keep the actions for ``step_wait``."""
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Train one decision interval of every run; finished episodes restart at once (SB3's autoreset)."""
        obs, rewards, terminated, infos = self.env.advance(self._actions)
        if terminated.all():  # one schedule: every member ends at the same step
            for i, info in enumerate(infos):
                info["terminal_observation"] = obs[i]
                info["TimeLimit.truncated"] = False
            obs, self.reset_infos = self.env.begin([None] * self.num_envs)
        return obs, rewards.astype(np.float32), terminated.copy(), infos

    def close(self) -> None:
        """Release the runs."""
        self.env.close()

    def _count(self, indices: int | Sequence[int] | None) -> int:
        return len(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices: int | Sequence[int] | None = None) -> list[Any]:
        """The batched environment's attribute, once per index (the members share it)."""
        return [getattr(self.env, attr_name)] * self._count(indices)

    def set_attr(self, attr_name: str, value: Any, indices: int | Sequence[int] | None = None) -> None:
        """Set an attribute of the batched environment (shared by every member)."""
        setattr(self.env, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: int | Sequence[int] | None = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call a method of the batched environment, once per index."""
        return [getattr(self.env, method_name)(*method_args, **method_kwargs) for _ in range(self._count(indices))]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: int | Sequence[int] | None = None
    ) -> list[bool]:
        """No member is wrapped."""
        return [False] * self._count(indices)


def batched_vec_env(env_id: str, env_kwargs: dict[str, Any], n_envs: int, seed: int | None) -> VecEnv:
    """A monitored BatchedVecEnv of ``n_envs`` members of ``env_id`` (any DUS world or instance family)."""
    spec = gym.spec(env_id)
    if spec.vector_entry_point not in BATCHED_ENTRY_POINTS:
        raise ConfigError(f"--vec batched needs a DUS environment id; {env_id} has no batched form")
    make = load_env_creator(spec.vector_entry_point)
    env = make(n_envs, **{**spec.kwargs, **env_kwargs})
    venv = VecMonitor(BatchedVecEnv(env))  # the episode returns and lengths SB3 logs
    venv.seed(seed)
    return venv
