"""A family as a batched vector environment: K runs of one instance per round, each as the family plays it alone."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from dus_env.family import DUSFamilyEnv
from dus_env.family_batched import BatchedFamilyEnv

FAMILY = "dus_env/DUS-Family-v1"


def _alone(path: str, instance: str, seed: int, actions: list[np.ndarray]) -> tuple[np.ndarray, list[float]]:
    """The family's episode of ``instance`` on training seed ``seed`` under ``actions``: final obs, rewards."""
    env = DUSFamilyEnv(path, instance=instance, **_kwargs())
    obs, _ = env.reset(seed=seed)
    rewards = []
    for a in actions:
        obs, r, *_ = env.step(a)
        rewards.append(r)
    return obs, rewards


def _kwargs() -> dict:
    from dus_env import FAMILY_IDS

    return {k: v for k, v in FAMILY_IDS[FAMILY].items() if k not in ("instance_set", "split", "sampling")}


def test_each_member_plays_the_rounds_instance_as_the_family_alone(tiny_set_data, write_set):
    path = write_set(tiny_set_data)
    venv = gym.make_vec(FAMILY, num_envs=2, vectorization_mode="vector_entry_point", instance_set=path,
                        sampling="round_robin")  # fmt: skip
    env = venv.unwrapped
    assert isinstance(env, BatchedFamilyEnv)
    rng = np.random.default_rng(0)
    for round_, instance in enumerate(["s0", "s1-weak-first"]):
        if round_ == 0:
            obs, info = venv.reset(seed=100)
            seeds = [100, 101]
        else:  # next-step autoreset: the step after the terminal one starts the next round
            obs, reward, *_, info = venv.step(venv.action_space.sample())
            assert (reward == 0).all()
            seeds = list(info["train_seed"])
        assert list(info["instance"]) == [instance, instance] and list(info["split"]) == ["train", "train"]
        actions = [rng.uniform(-1, 1, size=venv.action_space.shape).astype(np.float32) for _ in range(4)]
        returns = np.zeros(2)
        for a in actions:
            obs, reward, terminated, _, info = venv.step(a)
            returns += reward
        assert terminated.all() and env.episode_length == 4
        for i in range(2):
            final, alone = _alone(path, instance, int(seeds[i]), [a[i] for a in actions])
            np.testing.assert_allclose(obs[i], final, rtol=1e-4, atol=1e-5)
            assert returns[i] == pytest.approx(sum(alone), abs=1e-3)
    assert env.modalities == ("weak", "strong")  # the second round's instance names its modalities


def test_a_reset_can_pick_the_instance_and_seeded_draws_repeat(tiny_set_data, write_set):
    path = write_set(tiny_set_data)
    env = BatchedFamilyEnv(2, path, **_kwargs())
    assert env.reset(seed=1, options={"instance": "s2-adam"})[1]["instance"][0] == "s2-adam"
    first = [env.reset(seed=s)[1]["instance"][0] for s in range(8)]
    assert first == [env.reset(seed=s)[1]["instance"][0] for s in range(8)]
    assert set(first) <= {"s0", "s1-weak-first", "s2-adam"} and len(set(first)) > 1


def test_a_generalist_trains_on_the_batched_family(tiny_set_data, write_set, tmp_path):
    from mml_backbones.cli import main

    args = ["train-policy", "--env", FAMILY, "--algo", "sac", "--timesteps", "16", "--no-progress"]
    args += ["--env-option", f"instance_set={write_set(tiny_set_data)}", "--vec", "batched", "--n-envs", "2"]
    assert main([*args, "--eval-episodes", "0", "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "policy.zip").is_file()
