"""REINFORCE is an SB3 A2C configuration: whole episodes, Monte-Carlo returns, a learned baseline."""

import numpy as np
from stable_baselines3 import A2C
from stable_baselines3.common.env_util import make_vec_env

from agents.algorithms import reinforce_settings
from dus_env import DUSEnv


def test_settings_are_those_of_reinforce_with_a_baseline():
    s = reinforce_settings(length=7, m=2)
    assert s["n_steps"] == 7 and s["gae_lambda"] == 1.0 and s["gamma"] == 1.0
    assert s["ent_coef"] == 0.0 and not s["normalize_advantage"] and not s["use_rms_prop"]
    assert s["policy_kwargs"]["net_arch"] == {"pi": [64, 64], "vf": [64, 64]}


def test_a_rollout_is_one_whole_episode_with_monte_carlo_returns(tiny_env):
    venv = make_vec_env(lambda: DUSEnv(**tiny_env), n_envs=2, seed=0)
    length = venv.envs[0].unwrapped.episode_length
    model = A2C("MlpPolicy", venv, seed=0, **reinforce_settings(length, 2))
    model.learn(length * 2)  # exactly one rollout of one episode per environment
    buf = model.rollout_buffer
    assert buf.episode_starts[0].all() and not buf.episode_starts[1:].any()  # the rollout starts an episode
    mc = np.flip(np.cumsum(np.flip(buf.rewards, 0), 0), 0)  # undiscounted reward-to-go, (n_steps, n_envs)
    flat = mc.swapaxes(0, 1).reshape(-1, 1)  # SB3 flattens the buffer env-major for its minibatches
    assert np.allclose(buf.returns, flat, atol=1e-5)
    assert np.allclose(buf.advantages, flat - buf.values, atol=1e-5)  # return minus the baseline
