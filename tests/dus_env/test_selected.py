"""The score downstream training keeps: episodes are scored by the epoch ``fit`` selects, not the last one."""

import json

import gymnasium as gym
import numpy as np
import pytest

import dus_env  # noqa: F401 - registers the ids
from mml_backbones.config import replace
from mml_backbones.observation import CONTEXT_FEATURES, VALIDATION_FEATURES, feature_bounds
from mml_backbones.trainer import Trainer

# Adam 1e-2 over-fits the tiny world within 6 epochs, so the kept epoch is not the last one
OVERFIT = {"epochs": 6, "optim": {"name": "adam", "lr": 1e-2}}
FAVOUR_WEAK = {"strong": 16, "weak": 48}


def scored_episode(env, seed: int, quantities: dict[str, int]) -> tuple[float, list[float], list[dict]]:
    """Return, rewards and infos of one episode with constant quantities."""
    _, info = env.reset(seed=seed)
    rewards, infos = [], [info]
    while True:
        _, r, terminated, _, info = env.step_quantities(quantities)
        rewards.append(r)
        infos.append(info)
        if terminated:
            return sum(rewards), rewards, infos


@pytest.mark.parametrize("seed", [0, 1])
def test_the_return_is_the_difference_of_fits_selected_validation_scores(seed):
    env = gym.make("dus_env/DUS-Tiny-v1", **OVERFIT).unwrapped
    ret, _, infos = scored_episode(env, seed, FAVOUR_WEAK)
    config = env.config.trainer_config(seed)
    agent = Trainer(config, splits=env.splits).fit(lambda o: FAVOUR_WEAK, progress=False)
    uniform = Trainer(config, splits=env.splits).fit(None, progress=False)
    assert ret == pytest.approx(100 * (agent.val["fused_acc"] - uniform.val["fused_acc"]), abs=1e-9)
    assert infos[-1]["val/selected"] == agent.val["fused_acc"]
    assert infos[-1]["reference/val/selected"] == uniform.val["fused_acc"]
    assert infos[-1]["val/selected_epoch"] == agent.best_epoch
    # the case the score exists for: the kept epoch is not the last, so the last evaluation says otherwise
    assert min(agent.best_epoch, uniform.best_epoch) < 6
    last = 100 * (infos[-1]["val/fused_acc"] - infos[-1]["reference/val/fused_acc"])
    assert last != pytest.approx(ret)
    # the last evaluation's reward is still there, by its own name
    old = gym.make("dus_env/DUS-Tiny-v1", reward="paired_val_acc", **OVERFIT).unwrapped
    assert scored_episode(old, seed, FAVOUR_WEAK)[0] == pytest.approx(last, abs=1e-9)


def test_rewards_are_zero_until_the_first_epoch_end_and_the_unpaired_return_is_the_kept_gain():
    env = gym.make("dus_env/DUS-Tiny-v1", **OVERFIT).unwrapped  # 8 iterations an epoch, a step every 2
    ret, rewards, infos = scored_episode(env, 1, FAVOUR_WEAK)
    assert rewards[:3] == [0.0, 0.0, 0.0] and [i["val/selected_epoch"] for i in infos[:5]] == [0, 0, 0, 0, 1]
    alone = gym.make("dus_env/DUS-Tiny-v1", reference=False, reward="selected_val", **OVERFIT).unwrapped
    ret, _, infos = scored_episode(alone, 1, FAVOUR_WEAK)
    kept = Trainer(alone.config.trainer_config(1), splits=alone.splits).fit(lambda o: FAVOUR_WEAK, progress=False)
    assert ret == pytest.approx(100 * (kept.val["fused_acc"] - infos[0]["val/fused_acc"]), abs=1e-9)


def test_validation_features_read_the_latest_epoch_end():
    env = gym.make("dus_env/DUS-Tiny-v1", observation_features=CONTEXT_FEATURES, **OVERFIT).unwrapped
    low, _ = feature_bounds(CONTEXT_FEATURES, 2)
    assert env.observation_space.shape == low.shape == (2 * 7 + 3,)
    obs, _ = env.reset(seed=3)
    tail = obs[-6:]  # val_acc (2), val_gap (2), val_score, val_drop
    assert (tail == 0).all()  # no epoch has ended
    best = -1.0
    for step in range(env.episode_length):
        obs, _, _, _, info = env.step_quantities(FAVOUR_WEAK)
        assert env.observation_space.contains(obs)
        if (step + 1) % 4 == 0:  # an epoch end (8 iterations, a step every 2)
            val_acc, gap, score, drop = obs[-6:-4], obs[-4:-2], obs[-2], obs[-1]
            assert val_acc == pytest.approx([info["val/acc/strong"], info["val/acc/weak"]])
            assert score == pytest.approx(info["val/fused_acc"])
            best = max(best, info["val/fused_acc"])
            assert drop == pytest.approx(best - info["val/fused_acc"], abs=1e-6)
            assert np.abs(gap).max() > 0
    assert set(VALIDATION_FEATURES) <= set(CONTEXT_FEATURES)


def test_fit_gives_a_sampler_the_same_validation_context_and_resumes_it(tmp_path):
    env = gym.make("dus_env/DUS-Tiny-v1", observation_features=CONTEXT_FEATURES, **OVERFIT).unwrapped
    seen = []

    def sampler(o):
        seen.append(o.vector(CONTEXT_FEATURES))
        return FAVOUR_WEAK

    config = env.config.trainer_config(4)
    Trainer(config, splits=env.splits).fit(sampler, progress=False)
    env.reset(seed=4)
    in_env = [env.observation().vector(CONTEXT_FEATURES)]
    while len(in_env) < len(seen):
        env.step_quantities(FAVOUR_WEAK)
        in_env.append(env.observation().vector(CONTEXT_FEATURES))
    np.testing.assert_allclose(np.array(seen), np.array(in_env), atol=1e-6)
    t = Trainer(config, splits=env.splits)
    t.fit(sampler, progress=False)
    state = t.controller.state_dict()
    again = Trainer(config, splits=env.splits)
    again.controller.load_state_dict(state)
    assert again.controller.validation is not None
    np.testing.assert_array_equal(
        again.observation().vector(CONTEXT_FEATURES), t.observation().vector(CONTEXT_FEATURES)
    )
    # the context is plain data in a checkpoint, so a resume reads it without unpickling (mml_backbones.safe_files)
    json.dumps(state)
    run = tmp_path / "run"
    Trainer(replace(config, epochs=2), splits=env.splits).fit(sampler, run_dir=run, progress=False)
    resumed = Trainer(replace(config, epochs=3), splits=env.splits)
    resumed.fit(sampler, run_dir=run, resume=True, progress=False)  # extends the run from its epoch-2 checkpoint
    assert resumed.controller.validation is not None and resumed.controller.validation.epoch == 3


class _NeedsDecisionContext:
    """A sampler that asks fit for the decision-time validation context (as a DUS-Family-v2 policy does)."""

    validation_context = "decision"

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def __call__(self, o):
        self.seen.append(o.vector(CONTEXT_FEATURES))
        return FAVOUR_WEAK


def test_decision_context_is_fresh_at_every_decision_in_fit_and_in_the_environment():
    features = {"observation_features": CONTEXT_FEATURES, "validation_context": "decision"}
    env = gym.make("dus_env/DUS-Tiny-v1", **features, **OVERFIT).unwrapped
    sampler = _NeedsDecisionContext()
    config = env.config.trainer_config(5)
    epoch_only = Trainer(replace(config, validation_context="epoch"), splits=env.splits)
    kept = epoch_only.fit(sampler, progress=False)  # the sampler's own request turns the probes on
    obs, info = env.reset(seed=5)
    in_env, infos = [obs], [info]
    while len(in_env) < len(sampler.seen):
        obs, _, _, _, info = env.step_quantities(FAVOUR_WEAK)
        in_env.append(obs)
        infos.append(info)
    np.testing.assert_allclose(np.array(sampler.seen), np.array(in_env), atol=1e-6)
    # every decision reads the validation of the run as it is: before the first epoch end too (8 iterations)
    for obs, info in zip(in_env, infos):
        assert obs[-6:-4] == pytest.approx([info["val/acc/strong"], info["val/acc/weak"]])
        assert obs[-2] == pytest.approx(info["val/fused_acc"])
    # the probes never change the kept epoch: the same score as fit without them
    plain = Trainer(replace(config, validation_context="epoch"), splits=env.splits).fit(
        lambda o: FAVOUR_WEAK, progress=False
    )
    assert kept.val["fused_acc"] == plain.val["fused_acc"] and kept.best_epoch == plain.best_epoch
    v2 = gym.make("dus_env/DUS-Family-v2", instance_set="two_modal").unwrapped
    assert v2.config.trainer.validation_context == "decision"


def test_an_unknown_validation_context_is_refused():
    from mml_backbones.errors import ConfigError
    from mml_backbones.trainer_config import TrainerConfig

    with pytest.raises(ConfigError, match="validation_context"):
        TrainerConfig(validation_context="iteration")
