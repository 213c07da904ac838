"""The imitation generalist: labels from the oracle cache, demonstrations that resume, a fit that loads as a policy."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from agents import imitation
from agents.headroom import numeric_rows
from agents.imitation import ImitationConfig, dataset, fit, labels, new_model
from agents.oracle import oracles_of, run_instance, write_oracles
from agents.policy_sampler import PolicySampler
from dus_env.seeds import gate_seeds
from mml_backbones.cli import main


@pytest.fixture
def labelled_set(tiny_set_data, write_set):
    """The tiny set with an oracle cache: s0 favours the weak modality (16/112), the others have no headroom."""
    path = write_set(tiny_set_data)
    seeds = gate_seeds(1)
    rows = [r for n in ("s0", "s1-weak-first", "s2-adam") for r in run_instance(path, n, seeds)]
    oracles = oracles_of(numeric_rows(rows, seeds), path)
    oracles = {k: dataclasses.replace(o, headroom=False, direction="none") for k, o in oracles.items()}
    oracles["s0"] = dataclasses.replace(
        oracles["s0"], headroom=True, direction="weak", quantities={"strong": 16, "weak": 112}
    )
    write_oracles(oracles, path)
    return path


def test_labels_are_the_oracle_share_with_headroom_and_uniform_without(labelled_set):
    from agents.imitation import family_env

    found = labels(labelled_set)
    assert set(found) == {"s0", "s1-weak-first", "s2-adam"}  # train instances only
    env = family_env(labelled_set, "s0")
    b = env.config.trainer.batch_size
    assert env.mapper.action_to_quantities(found["s0"], b).tolist() == [b // 4, 7 * b // 4]  # 16/112 at B = 64
    assert not found["s2-adam"].any() and not found["s1-weak-first"].any()


def test_fit_learns_the_labels_of_the_observations():
    model = new_model_stub()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (400, model.observation_space.shape[0])).astype(np.float32)
    y = np.where(x[:, :1] > 0.5, [[0.4, -0.4]], [[-0.4, 0.4]]).astype(np.float32)
    losses = fit(model, x, y, ImitationConfig(epochs=60, batch_size=64, lr=3e-3))
    assert losses[-1] < 0.4 * losses[0]
    mean, _ = model.predict(x[:50], deterministic=True)
    assert np.mean(np.sign(mean[:, 0]) == np.sign(y[:50, 0])) > 0.9


def new_model_stub():
    """A PPO actor-critic on the tiny spaces, without building an instance set."""
    import gymnasium as gym
    from stable_baselines3 import PPO

    env = gym.make("dus_env/DUS-Tiny-v1")
    return PPO("MlpPolicy", env, policy_kwargs={"net_arch": [16], "log_std_init": -3.0}, seed=0, device="cpu")


def test_dus_imitate_writes_a_policy_that_loads_safely_and_resumes_its_demonstrations(
    labelled_set, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "imitation"
    args = ["imitate", "--set", labelled_set, "--seeds", "1", "--rounds", "1", "--epochs", "20", "--out", str(out)]
    assert main(args) == 0
    assert "imitation generalist" in capsys.readouterr().out
    demos = pd.read_csv(out / "demonstrations.csv")
    assert set(demos["behaviour"]) == {"uniform", "label", "random"} and demos["instance"].nunique() == 3
    assert set(pd.read_csv(out / "dagger_1.csv")["behaviour"]) == {"policy"}
    history = json.loads((out / "fit.json").read_text())
    assert [h["round"] for h in history] == [0, 1] and history[1]["episodes"] == history[0]["episodes"] + 3
    sampler = PolicySampler(out / "policy.zip")  # the safe loader: no unpickling
    assert sampler.metadata["trained_by"] == "imitation" and sampler.metadata["algo"] == "ppo"
    x, y = dataset(demos, labels(labelled_set))
    assert x.shape[1] == sampler.model.observation_space.shape[0] and y.shape == (len(x), 2)

    def refuse(*a, **k):
        raise AssertionError("a finished episode was played again")

    monkeypatch.setattr(imitation, "play", refuse)
    assert main(args) == 0  # every episode is on disk: the re-run only fits


def test_new_model_has_the_family_spaces(labelled_set):
    model = new_model(labelled_set, seed=0)
    assert model.action_space.shape == (2,)


def test_mirror_swaps_each_modalitys_entries_and_the_label():
    from agents.imitation import mirror
    from dus_env import FAMILY_V1

    features = FAMILY_V1["observation_features"]
    x = np.arange(17, dtype=np.float32)[None]
    mx, my = mirror(x, np.array([[0.4, -0.4]], np.float32), features)
    # cumulative, ratio, speed, loss, allocation swap; progress (10) and the two scores (15, 16) stay
    assert mx[0].tolist() == [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 10, 12, 11, 14, 13, 15, 16]
    assert my.tolist() == [[pytest.approx(-0.4), pytest.approx(0.4)]]
    back, _ = mirror(mx, my, features)
    assert (back == x).all()
    with pytest.raises(ValueError, match="observation has 5 entries"):
        mirror(x[:, :5], my, features)
