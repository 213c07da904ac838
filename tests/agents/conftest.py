"""Tiny environments and a policy trained once for the agents tests."""

from __future__ import annotations

import pytest

import dus_env

TINY_ENV = dus_env.TINY


@pytest.fixture
def tiny_env() -> dict:
    """DUSEnvConfig overrides of a four-step environment on 256 training samples."""
    return dict(TINY_ENV)


@pytest.fixture(scope="session")
def trained_ppo(tmp_path_factory):
    """A PPO policy trained for a few steps on the tiny environment (with DUS metadata)."""
    from agents.training import train_policy

    out = tmp_path_factory.mktemp("ppo")
    return train_policy(
        "dus_env/DUS-v0",
        "ppo",
        timesteps=64,
        out_dir=out,
        env_kwargs=TINY_ENV,
        hyperparams={"n_steps": 32, "batch_size": 16, "n_epochs": 2},
        eval_episodes=2,
        eval_freq=32,
    )
