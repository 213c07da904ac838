"""The paired reward against the uniform reference run, the learning features, and the seed ranges."""

import itertools

import gymnasium as gym
import numpy as np
import pytest

import dus_env
from dus_env import DUSEnv
from dus_env.seeds import (
    SEED_RANGES,
    TRAIN_SEED_RANGE,
    downstream_seeds,
    eval_seeds,
    parse_seed_span,
    purpose_of,
    selection_seeds,
)
from mml_backbones.controller import DUSController
from mml_backbones.errors import ConfigError
from mml_backbones.observation import LEARNING_FEATURES, SPEED_SCALE
from mml_backbones.statistics import ModalityStatistics

UNIFORM = np.zeros(2, np.float32)  # the equal budget's zero action: B for each modality
WEAK = np.array([-1.0, 1.0], np.float32)


def tiny_v1(**kw) -> DUSEnv:
    return gym.make("dus_env/DUS-Tiny-v1", **kw).unwrapped


def episode(env: DUSEnv, seed: int, action: np.ndarray) -> tuple[dict, list[float], list[dict]]:
    _, first = env.reset(seed=seed)
    rewards, infos = [], []
    while True:
        _, r, terminated, truncated, info = env.step(action)
        rewards.append(r)
        infos.append(info)
        if terminated or truncated:
            return first, rewards, infos


def test_v1_defaults_and_v0_keeps_its_own():
    v1, v0 = tiny_v1(), gym.make("dus_env/DUS-Tiny-v0").unwrapped
    assert v1.config.reference and v1.config.reward == "paired_selected_val"
    assert v1.config.trainer.observation_features == LEARNING_FEATURES
    assert v1.config.trainer.val_max_samples is None
    assert not v0.config.reference and v0.config.reward == "delta_val_acc"
    assert v0.config.trainer.observation_features == ("cumulative", "ratio", "progress")
    assert v0.observation_space.shape == (5,) and v1.observation_space.shape == (2 * 5 + 1,)


def test_uniform_action_earns_exactly_zero_every_step():
    env = tiny_v1()
    first, rewards, infos = episode(env, 3, UNIFORM)
    assert env.action_to_quantities(UNIFORM) == {"strong": 32, "weak": 32}
    assert first["val/fused_acc"] == first["reference/val/fused_acc"]
    assert rewards == [0.0] * env.episode_length
    for info in infos:  # the same computation, to the last bit
        assert info["val/fused_acc"] == info["reference/val/fused_acc"]
        assert info["val/fused_loss"] == info["reference/val/fused_loss"]
    for reward in ("paired_val_loss", "paired_val_acc"):
        assert episode(tiny_v1(reward=reward), 3, UNIFORM)[1] == [0.0] * env.episode_length


@pytest.mark.parametrize(
    ("reward", "metric", "sign"),
    [("paired_val_acc", "fused_acc", 1), ("paired_val_loss", "fused_loss", -1), ("paired_selected_val", "selected", 1)],
)
def test_paired_reward_is_the_change_of_agent_minus_reference(reward, metric, sign):
    env = tiny_v1(reward=reward)
    first, rewards, infos = episode(env, 5, WEAK)
    gap = [sign * (i[f"val/{metric}"] - i[f"reference/val/{metric}"]) for i in [first, *infos]]
    assert gap[0] == 0.0  # same initial weights
    assert rewards == pytest.approx(100 * np.diff(gap))
    assert sum(rewards) == pytest.approx(100 * gap[-1])  # the return is the final advantage over uniform
    assert any(i[f"val/{metric}"] != i[f"reference/val/{metric}"] for i in infos)


def test_the_reference_is_the_uniform_run_of_the_same_seed_and_is_cached():
    env = tiny_v1()
    _, _, infos = episode(env, 7, WEAK)
    alone = tiny_v1(reference=False, reward="delta_val_acc")
    _, _, uniform = episode(alone, 7, UNIFORM)
    assert [i["reference/val/fused_acc"] for i in infos] == [i["val/fused_acc"] for i in uniform]
    assert "reference/val/fused_acc" not in uniform[-1]
    assert env.episodes.reference_runs_trained == 1
    again = episode(env, 7, WEAK)
    assert env.episodes.reference_runs_trained == 1  # replayed from the cache, with the same rewards
    assert again[1] == episode(tiny_v1(), 7, WEAK)[1]
    episode(env, 8, WEAK)
    assert env.episodes.reference_runs_trained == 2


def test_an_abandoned_episode_does_not_poison_the_cache():
    env = tiny_v1()
    env.reset(seed=9)
    env.step(WEAK)
    _, rewards, _ = episode(env, 9, WEAK)  # reset mid-episode: the reference starts again
    assert rewards == episode(tiny_v1(), 9, WEAK)[1]


def test_the_reference_run_never_reads_the_test_split(forbid_test_split):
    env = tiny_v1()
    forbid_test_split(env)
    episode(env, 0, WEAK)
    assert env.episodes.reference_runs_trained == 1


def test_paired_rewards_need_the_reference():
    with pytest.raises(ConfigError, match="reference=True"):
        tiny_v1(reference=False)
    env = tiny_v1(reference=False, reward="delta_val_acc")
    _, rewards, infos = episode(env, 0, WEAK)
    assert env.trainer.num_runs == 1  # no reference run
    assert len(rewards) == env.episode_length and "reference/val/fused_acc" not in infos[-1]


# ------------------------------------------------------------------------------------------ learning features
def split(obs: np.ndarray) -> dict[str, np.ndarray]:
    """The v1 observation vector by feature (M = 2)."""
    names = ["cumulative", "ratio", "speed", "loss", "allocation"]
    out = {n: obs[2 * i : 2 * i + 2] for i, n in enumerate(names)}
    out["progress"] = obs[-1:]
    return out


def test_learning_features_start_neutral_stay_in_bounds_and_follow_the_run():
    env = tiny_v1()
    obs, _ = env.reset(seed=1)
    f = split(obs)
    assert (f["speed"] == 0).all() and (f["loss"] == 0).all() and np.allclose(f["allocation"], 0.5)
    rng = np.random.default_rng(0)
    steps = 0
    while True:
        action = rng.uniform(-1, 1, 2).astype(np.float32)
        obs, _, terminated, _, info = env.step(action)
        steps += 1
        assert env.observation_space.contains(obs)
        f = split(obs)
        q = np.array([info["quantities"]["strong"], info["quantities"]["weak"]], float)
        assert f["allocation"] == pytest.approx(q / q.sum())  # the last action's shares
        assert (f["loss"] > 0).all()  # cross-entropy of the interval just run
        if steps == 1:
            assert (f["speed"] == 0).all()  # needs two complete intervals
        if terminated:
            break


def test_loss_feature_is_the_heads_training_cross_entropy():
    env = tiny_v1()
    env.reset(seed=2)
    obs, _, _, _, info = env.step(UNIFORM)  # n_m = B: the unimodal loss (sum / B) is the mean cross-entropy
    loss = split(obs)["loss"]
    assert loss == pytest.approx([info["train_losses"]["unimodal/strong"], info["train_losses"]["unimodal/weak"]])


def test_speed_is_the_change_of_block_means_per_iteration():
    s = ModalityStatistics(("a", "b"), block=2)
    for scores in ({"a": 0.1, "b": 0.5}, {"a": 0.3, "b": 0.5}):
        s.update(scores, {"a": 1, "b": 1})
    assert (s.speed == 0).all() and s.block_score == pytest.approx([0.2, 0.5])
    for scores in ({"a": 0.4, "b": 0.4}, {"a": 0.6, "b": 0.4}):
        s.update(scores, {"a": 1, "b": 1}, losses={"a": 1.0, "b": 2.0})
    assert s.speed == pytest.approx([(0.5 - 0.2) / 2, (0.4 - 0.5) / 2])
    assert s.loss == pytest.approx([1.0, 2.0])
    s.update({"a": 0.9}, {"a": 1, "b": 1})  # an unfinished block changes nothing yet
    assert s.speed == pytest.approx([0.15, -0.05])
    restored = ModalityStatistics(("a", "b"), block=2)
    restored.load_state_dict(s.state_dict())
    for x in (s, restored):
        x.update({"a": 0.9}, {"a": 1, "b": 1})  # b not scored in this block: keeps its values
    assert restored.speed == pytest.approx(s.speed) and s.speed == pytest.approx([(0.9 - 0.5) / 2, -0.05])
    with pytest.raises(ConfigError, match="block"):
        ModalityStatistics(("a",), block=0)


def test_controller_fills_the_learning_features_from_any_update_path():
    c = DUSController(("a", "b"), batch_size=4, decision_interval=2, total_iterations=8)
    assert c.observation().allocation == pytest.approx([0.5, 0.5])
    c.set_quantities({"a": 6, "b": 2})
    p = {"a": [0.5, 0.5], "b": [0.25, 1.0]}
    for _ in range(2):
        c.update_probabilities(p)
    o = c.observation()
    assert o.allocation == pytest.approx([0.75, 0.25])
    assert o.loss == pytest.approx([np.log(2), (np.log(4) + 0) / 2])  # the exact cross-entropy
    c.set_quantities({"a": 4, "b": 4})
    c.update_scores({"a": 0.6, "b": 0.625})
    c.update_scores({"a": 0.6, "b": 0.625})  # no losses given: -log s stands in
    o = c.observation()
    assert o.loss == pytest.approx([-np.log(0.6), -np.log(0.625)])
    assert o.speed == pytest.approx([0.05, 0.0])
    v = o.vector(LEARNING_FEATURES)
    assert v[4:6] == pytest.approx(np.tanh(SPEED_SCALE * np.array([0.05, 0.0])))


# ------------------------------------------------------------------------------------------------- seeds
def test_seed_ranges_are_disjoint_and_selection_is_apart_from_scoring():
    spans = sorted(SEED_RANGES.values())
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    sel, ev, down = set(selection_seeds(100)), set(eval_seeds(100)), set(downstream_seeds(100))
    assert not sel & ev and not sel & down and not ev & down
    assert not sel & set(range(*TRAIN_SEED_RANGE))
    assert dus_env.DUSEnvConfig().train_seed_range == TRAIN_SEED_RANGE
    assert purpose_of(selection_seeds(1)[0]) == "selection" and purpose_of(10) == "train" and purpose_of(-1) is None
    with pytest.raises(ConfigError, match="n must be"):
        eval_seeds(10_001)


def test_agents_seeds_still_exports_the_old_names():
    from agents.seeds import DOWNSTREAM_SEED_BASE, EVAL_SEED_BASE
    from agents.seeds import downstream_seeds as d
    from agents.seeds import eval_seeds as e

    assert e(2) == [EVAL_SEED_BASE, EVAL_SEED_BASE + 1] == [10_000, 10_001]
    assert d(1) == [DOWNSTREAM_SEED_BASE] == [20_000]


@pytest.mark.parametrize("bad", ["", "10", "a:3", "10:x", "10:0", "-1:3", "1:2:3"])
def test_seed_spans_parse_and_reject_bad_values(bad):
    assert parse_seed_span("50000:3") == [50_000, 50_001, 50_002]
    with pytest.raises(ConfigError, match="START:COUNT"):
        parse_seed_span(bad)
