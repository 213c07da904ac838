"""Instance families: sets from JSON, an instance per episode, replayed alone, a user's .npz, the shipped set."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import dus_env
from dus_env.config import make_config
from dus_env.env import DUSEnv
from dus_env.family import list_instance_sets, load_instance_set
from mml_backbones.errors import ConfigError
from mml_backbones.observation import CONTEXT_FEATURES

FAMILY = "dus_env/DUS-Family-v1"


def test_the_family_passes_both_env_checkers_and_names_the_instance(tiny_set_data, write_set):
    env = gym.make(FAMILY, instance_set=write_set(tiny_set_data), split="train").unwrapped
    assert env.config.reward == "paired_selected_val" and env.config.reference
    assert env.config.trainer.observation_features == CONTEXT_FEATURES
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=True)
    _, info = env.reset(seed=3)
    assert info["instance"] in {"s0", "s1-weak-first", "s2-adam"} and info["split"] == "train"
    *_, info = env.step(env.action_space.sample())
    assert info["instance"] == env.instance.name and info["train_seed"] == 3


def test_random_draws_follow_the_seed_and_round_robin_cycles(tiny_set_data, write_set):
    path = write_set(tiny_set_data)
    env = gym.make(FAMILY, instance_set=path).unwrapped
    drawn = [env.reset(seed=s)[1]["instance"] for s in range(12)]
    again = [env.reset(seed=s)[1]["instance"] for s in range(12)]
    assert drawn == again and set(drawn) == {"s0", "s1-weak-first", "s2-adam"}  # seeded, and all of train
    env.reset(seed=0)
    unseeded = {env.reset()[1]["instance"] for _ in range(12)}
    assert unseeded <= {"s0", "s1-weak-first", "s2-adam"}
    rr = gym.make(FAMILY, instance_set=path, sampling="round_robin").unwrapped
    assert [rr.reset(seed=7)[1]["instance"] for _ in range(4)] == ["s0", "s1-weak-first", "s2-adam", "s0"]
    assert rr.reset(seed=7, options={"instance": "s2-adam"})[1]["instance"] == "s2-adam"


def test_an_instance_replays_alone_as_the_dus_env_of_its_run(tiny_set_data, write_set):
    path = write_set(tiny_set_data)
    family = gym.make(FAMILY, instance_set=path, instance="s1-weak-first").unwrapped
    assert [family.reset(seed=s)[1]["instance"] for s in range(3)] == ["s1-weak-first"] * 3
    assert family.modalities == ("weak", "strong")  # the modality order is the instance's
    inst = load_instance_set(path).get("s1-weak-first")
    alone = DUSEnv(make_config(None, trainer=inst.trainer_config(), **dus_env.FAMILY_V1))
    action = np.array([0.7, -0.7], np.float32)
    for env in (family, alone):
        env.reset(seed=5)
    for _ in range(family.episode_length):
        a, b = family.step(action), alone.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1] == b[1]


def test_a_user_instance_on_their_own_npz_runs_from_the_test_split(tiny_set_data, write_set, tmp_path):
    path = write_set(tiny_set_data)
    env = gym.make(FAMILY, instance_set=path, split="test").unwrapped
    _, info = env.reset(seed=0)
    assert info["instance"] == "mine" and env.modalities == ("a", "b")
    assert env.instance.trainer["dataset_options"]["path"] == str(tmp_path / "mine.npz")  # relative to the set
    assert env.current.splits.info["standardized"] == ["a", "b"]
    steps, done = 0, False
    while not done:
        _, r, done, _, info = env.step(np.zeros(2, np.float32))
        assert r == 0.0  # the uniform action, paired against the uniform reference
        steps += 1
    assert steps == env.episode_length == math.ceil(2 * math.ceil(84 / 16) / 2)


def test_a_set_can_extend_another_and_add_instances(tiny_set_data, write_set):
    extra = {"name": "more", "extends": write_set(tiny_set_data), "test": [{"name": "s9", "epochs": 1}]}
    s = load_instance_set(write_set(extra))
    assert s.names("train") == ["s0", "s1-weak-first", "s2-adam"] and s.names("test") == ["mine", "s9"]
    assert (
        s.get("s9").trainer["dataset_options"] == tiny_set_data["defaults"]["dataset_options"]
    )  # the base set's defaults carry over
    shipped = load_instance_set({"name": "mine", "extends": "two_modal", "test": [{"name": "extra-test"}]})
    assert "extra-test" in shipped.names("test") and len(shipped.names("train")) == 16


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train": [{"name": "x", "optimiser": "sgd"}]}, "unknown TrainerConfig field"),
        ({"train": [{"name": "x", "observation_features": ["ratio"]}]}, "cannot differ between instances"),
        ({"train": [{"name": "x", "seed": 3}]}, "cannot differ between instances"),
        ({"train": [{"name": "x"}, {"name": "x"}]}, "unique"),
        ({"train": [{"description": "no name"}]}, "needs a 'name'"),
        ({"train": [{"name": "x", "epochs": 0}]}, "epochs must be >= 1"),
        ({"splits": []}, "unknown key"),
    ],
)
def test_bad_sets_fail_with_a_clear_message(tiny_set_data, change, message):
    data = {**tiny_set_data, **change}
    with pytest.raises(ConfigError, match=message):
        load_instance_set(data)


def test_instances_with_other_modality_counts_are_refused_and_names_are_checked(tiny_set_data, write_set):
    data = tiny_set_data
    data["train"].append({"name": "three", "dataset_options": {"preset": "three_modal"}})
    env = gym.make(FAMILY, instance_set=write_set(data)).unwrapped
    with pytest.raises(ConfigError, match="instance 'three' has 3 modalities"):
        env.instance_env("three")
    with pytest.raises(ConfigError, match="no instance 'nope'"):
        gym.make(FAMILY, instance_set=write_set(data), instance="nope")
    with pytest.raises(ConfigError, match="unknown instance set 'nope'"):
        load_instance_set("nope")
    with pytest.raises(ConfigError, match="unknown split"):
        gym.make(FAMILY, instance_set=write_set(data), split="val")


def structure_seed(instance) -> int:
    """A synthetic instance's generator structure seed (a preset's option, or its own spec's)."""
    options = instance.trainer["dataset_options"]
    return options["structure_seed"] if "structure_seed" in options else options["spec"]["structure_seed"]


@pytest.mark.parametrize("name", ["two_modal", "two_modal_plus"])
def test_the_shipped_set_poses_a_contextual_decision(name):
    assert name in list_instance_sets()
    s = load_instance_set(name)
    train, test = s.split("train"), s.split("test")
    assert len(train) >= 16 and len(test) >= 8
    for split in (train, test):  # the weak (or uninformative) modality is not always in the same position
        first = {i.trainer["modalities"][0] for i in split if i.trainer["dataset"] == "synthetic"}
        assert {"weak", "strong"} <= first and ({"noise", "slow"} & first)
    splits = (("train", train), ("test", test))
    real = [i for i in s.instances if i.trainer["dataset"] != "synthetic"]
    assert real and all(i.split == "test" for i in real)  # real data is test-only
    seeds = {sp: {structure_seed(i) for i in part if i.trainer["dataset"] == "synthetic"} for sp, part in splits}
    assert not seeds["train"] & seeds["test"]  # held-out generator structures
    lrs = {sp: {i.trainer["optim"]["lr"] for i in part} for sp, part in splits}
    assert lrs["test"] - lrs["train"]  # unseen hyper-parameter values
    for inst in s.instances:  # every episode has 16 decisions (the synthetic ones, computed from their sizes)
        c = inst.trainer_config()
        if c.dataset == "synthetic":
            opts = c.dataset_options
            n = opts.get("n_train") or opts["spec"]["n_train"]
            assert math.ceil(math.ceil(n / c.batch_size) * c.epochs / c.decision_interval) == 16, inst.name


def test_two_modal_plus_adds_train_instances_only_and_caches_every_oracle():
    from agents.oracle import load_oracles

    base, plus = load_instance_set("two_modal"), load_instance_set("two_modal_plus")
    assert plus.names("test") == base.names("test")  # scored on the same unseen runs
    assert set(base.names("train")) < set(plus.names("train")) and len(plus.names("train")) == 24
    oracles, base_oracles = load_oracles("two_modal_plus"), load_oracles("two_modal")
    assert set(oracles) == set(plus.names("train")) | set(plus.names("test"))
    for name, o in base_oracles.items():  # the shared instances are the same runs: the same oracle
        assert (oracles[name].share, oracles[name].gain) == (o.share, o.gain)
