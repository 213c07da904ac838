"""The SB3 algorithms a DUS sampler can be trained with, and their tuned defaults for this environment.

Defaults depend on the episode length L (steps per episode) of the environment:

    ppo        PPO, n_steps = 4 L per env (whole episodes), batch 64, 10 epochs, lr 3e-4, gamma 1 (the return
               is the undiscounted accuracy gain), GAE lambda 0.95, log_std_init -1 (actions start near uniform
               sampling rather than spread over the whole range).
    a2c        A2C, n_steps 8, lr 7e-4, gamma 1, Adam.
    reinforce  REINFORCE with a learned baseline (the DUS paper's algorithm) as an SB3 A2C configuration:
               n_steps = L so that one rollout is exactly one whole episode per environment (episodes have a
               fixed length and end by termination, so nothing is bootstrapped), gae_lambda = 1 and gamma = 1 so
               that the advantage is the Monte-Carlo return minus the baseline V(s), separate policy and value
               networks, no entropy bonus, no advantage normalisation, plain Adam, one gradient step per batch
               of episodes. tests/agents/test_reinforce.py checks the returns are the Monte-Carlo returns.
    sac, td3   off-policy, learning_starts 2 L, buffer 20k, batch 64, and n-step returns over the whole episode
               (n_steps = L, gamma 1): the critic's target is the Monte-Carlo return to the episode's end, as
               REINFORCE's. With SB3's 1-step targets the critic learnt the opposite ranking of the actions: a
               share that wins +3 points by the end of an episode is 2-4 points *behind* uniform in its first
               quarter, and a step's reward (SD 2-3 points, mean 0.1) hides the rest (benchmarks/RESULTS.md,
               section 0.5). SAC's entropy coefficient starts at 0.01 (auto-tuned from there), not SB3's 1.0,
               which outweighed the rewards tenfold. gradient_steps -1: one update per transition, whatever n_envs.
               TD3 shares the n-step setting (not measured here).
    dqn        needs a Discrete action space: the environment is built with action_type="discrete".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise

from mml_backbones.registry import Registry


@dataclass(frozen=True)
class AlgoSpec:
    """An algorithm: its SB3 class, the action type it needs and its default hyper-parameters.

    Attributes:
        name: our name (ppo, a2c, reinforce, sac, td3, dqn).
        sb3_class: the SB3 algorithm class.
        action_type: the environment action type it is trained with.
        defaults: (episode length, number of modalities) -> keyword arguments of the SB3 class.
    """

    name: str
    sb3_class: type[BaseAlgorithm]
    action_type: str
    defaults: Callable[[int, int], dict[str, Any]]


def _ppo(length: int, m: int) -> dict[str, Any]:
    return {
        "n_steps": max(64, 4 * length),
        "batch_size": 64,
        "n_epochs": 10,
        "learning_rate": 3e-4,
        "gamma": 1.0,
        "gae_lambda": 0.95,
        "ent_coef": 0.0,
        "policy_kwargs": {"net_arch": [64, 64], "log_std_init": -1.0},
    }


def _a2c(length: int, m: int) -> dict[str, Any]:
    return {
        "n_steps": 8,
        "learning_rate": 7e-4,
        "gamma": 1.0,
        "use_rms_prop": False,
        "policy_kwargs": {"net_arch": [64, 64], "log_std_init": -1.0},
    }


def reinforce_settings(length: int, m: int) -> dict[str, Any]:
    """The A2C settings that make it REINFORCE with a learned baseline on episodes of ``length`` steps."""
    return {
        "n_steps": length,
        "gamma": 1.0,
        "gae_lambda": 1.0,
        "ent_coef": 0.0,
        "vf_coef": 0.5,
        "normalize_advantage": False,
        "use_rms_prop": False,
        "learning_rate": 1e-3,
        "max_grad_norm": 1e6,  # SB3 always clips; REINFORCE does not
        "policy_kwargs": {
            "net_arch": {"pi": [64, 64], "vf": [64, 64]},
            "log_std_init": -1.0,
            "optimizer_class": torch.optim.Adam,
        },
    }


def _sac(length: int, m: int) -> dict[str, Any]:
    return {
        "learning_starts": 2 * length,
        "buffer_size": 20_000,
        "batch_size": 64,
        "learning_rate": 3e-4,
        "n_steps": length,
        "gamma": 1.0,
        "gradient_steps": -1,
        "ent_coef": "auto_0.01",
        "policy_kwargs": {"net_arch": [64, 64]},
    }


def _td3(length: int, m: int) -> dict[str, Any]:
    sac = {k: v for k, v in _sac(length, m).items() if k != "ent_coef"}  # TD3 has no entropy term
    return {
        **sac,
        "action_noise": NormalActionNoise(np.zeros(m), 0.2 * np.ones(m)),
    }


def _dqn(length: int, m: int) -> dict[str, Any]:
    return {
        "learning_starts": 2 * length,
        "buffer_size": 20_000,
        "batch_size": 64,
        "learning_rate": 1e-3,
        "gamma": 0.99,
        "exploration_fraction": 0.3,
        "exploration_final_eps": 0.05,
        "target_update_interval": 4 * length,
        "policy_kwargs": {"net_arch": [64, 64]},
    }


#: algorithm name -> AlgoSpec; add one with ``ALGOS.register(name, AlgoSpec(...))``
ALGOS: Registry[AlgoSpec] = Registry("algorithm")
for _spec in (
    AlgoSpec("ppo", PPO, "box", _ppo),
    AlgoSpec("a2c", A2C, "box", _a2c),
    AlgoSpec("reinforce", A2C, "box", reinforce_settings),
    AlgoSpec("sac", SAC, "box", _sac),
    AlgoSpec("td3", TD3, "box", _td3),
    AlgoSpec("dqn", DQN, "discrete", _dqn),
):
    ALGOS.register(_spec.name, _spec)


def algo_spec(name: str) -> AlgoSpec:
    """The AlgoSpec called ``name`` or a ConfigError listing the valid ones."""
    return ALGOS.get(name)
