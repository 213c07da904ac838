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

    # the leave-one-instance-out check on the recorded decisions: a row per (variant, held-out instance), resumable
    from benchmarks import imitation_loo

    loo = tmp_path / "loo.csv"
    loo_args = ["--run", str(out), "--set", labelled_set, "--variants", "mse", "grid_gain + augment", "--out", str(loo)]
    assert imitation_loo.main(loo_args) == 0
    rows = pd.read_csv(loo)
    assert len(rows) == 6 and set(rows["instance"]) == {"s0", "s1-weak-first", "s2-adam"}
    assert rows["played n0/B"].between(0.25, 1.75).all() and rows["label n0/B"].between(0.25, 1.75).all()
    assert "| grid_gain + augment |" in loo.with_suffix(".md").read_text()
    monkeypatch.setattr(imitation_loo, "leave_one_out", refuse)
    assert imitation_loo.main(loo_args) == 0  # both variants are on record


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


def test_share_n0_is_the_share_the_family_mapper_plays(labelled_set):
    import torch

    from agents.imitation import family_env, share_n0

    env = family_env(labelled_set, "s0")
    b = env.config.trainer.batch_size
    actions = np.random.default_rng(0).uniform(-1.3, 1.3, (200, 2)).astype(np.float32)
    played = np.array([env.mapper.action_to_quantities(a, b)[0] / b for a in actions])
    found = share_n0(torch.as_tensor(actions)).numpy()
    assert np.abs(found - played).max() <= 1.0 / b + 1e-6  # the mapper rounds to whole samples


def test_gain_curves_are_the_oracle_shares_with_unsupported_gains_clipped(labelled_set):
    from agents.imitation import GAIN_GRID, gain_curves
    from agents.oracle import load_oracles

    oracles = load_oracles(labelled_set)
    raw, clipped = gain_curves(labelled_set, clip=False), gain_curves(labelled_set)
    assert set(raw) == {"s0", "s1-weak-first", "s2-adam"}
    for name, curve in raw.items():
        assert curve.shape == (len(GAIN_GRID),) and curve[GAIN_GRID.index(1.0)] == 0.0  # uniform
        # every grid point is one of the cache's shares (uniform aside)
        shares = sorted(round(m, 4) for m, _, _ in oracles[name].shares.values())
        assert sorted(round(float(v), 4) for i, v in enumerate(curve) if GAIN_GRID[i] != 1.0) == shares
    assert (clipped["s0"] == raw["s0"]).all()  # headroom: kept as it is
    assert (clipped["s2-adam"] <= 0).all() and (clipped["s2-adam"] == np.minimum(raw["s2-adam"], 0)).all()


def test_the_grid_gain_loss_moves_each_share_to_its_curves_peak():
    from agents.imitation import GAIN_GRID

    model = new_model_stub()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (400, model.observation_space.shape[0])).astype(np.float32)
    first = x[:, 0] > 0.5
    peak_low = -np.abs(np.array(GAIN_GRID) - 0.25)  # best at the floor of modality 0
    curves = np.where(first[:, None], peak_low, peak_low[::-1]).astype(np.float32)
    y = np.zeros((len(x), 2), np.float32)  # the labels say uniform; the curves say otherwise
    config = ImitationConfig(epochs=80, batch_size=64, lr=3e-3, loss="grid_gain", mse_weight=0.0)
    with pytest.raises(ValueError, match="needs each row's gain curve"):
        fit(model, x, y, config)
    fit(model, x, y, config, curves)
    mean, _ = model.predict(x, deterministic=True)
    assert np.mean((mean[:, 0] < mean[:, 1]) == first) > 0.9


def test_an_unknown_imitation_loss_is_refused():
    from mml_backbones.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown imitation loss 'l1'"):
        ImitationConfig(loss="l1")


def test_a_generalist_imitated_on_family_v2_reads_and_asks_for_the_decision_context(labelled_set, tmp_path):
    from agents.evaluation import run_episode
    from agents.family_eval import evaluate_instances
    from agents.imitation import family_env
    from mml_backbones.errors import ConfigError
    from mml_backbones.trainer import Trainer

    out = tmp_path / "v2"
    args = ["imitate", "--set", labelled_set, "--seeds", "1", "--rounds", "0", "--epochs", "5", "--out", str(out)]
    assert main([*args, "--env", "dus_env/DUS-Family-v2"]) == 0
    demos = pd.read_csv(out / "demonstrations.csv")
    # before the first epoch end (k = 1: 2 of the 4 iterations an epoch) the validation features are not 0
    assert (demos.loc[demos["k"] == 1, ["x11", "x12", "x15"]].abs().sum(axis=1) > 0).all()
    sampler = PolicySampler(out / "policy.zip")
    assert sampler.metadata["env_id"] == "dus_env/DUS-Family-v2" and sampler.validation_context == "decision"
    with pytest.raises(ConfigError, match="validation_context='decision'"):
        run_episode(family_env(labelled_set, "s0"), sampler, seed=1)  # a v1 environment
    rows = evaluate_instances({"v2": sampler}, labelled_set, "train", [10000], names=["s0"])
    assert set(rows["sampler"]) == {"uniform", "v2"}  # played in a decision-context environment
    env = family_env(labelled_set, "s0", "dus_env/DUS-Family-v2")
    ep = run_episode(env, sampler, 10000)
    kept = Trainer(env.config.trainer_config(10000), splits=env.splits).fit(sampler, progress=False)
    assert kept.val["fused_acc"] == ep.selected_val  # fit honours the policy's context: the same run
    with pytest.raises(ConfigError, match="unknown family environment"):
        ImitationConfig(env="dus_env/DUS-v1")
