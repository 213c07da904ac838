"""Batched runs (dus_env.batched on the core's run axis): the same numbers as separate runs, the vector API."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

import dus_env
from dus_env import DUSEnv
from dus_env.batched import BatchedDUSEnv
from dus_env.episodes import validation_metrics
from mml_backbones.cli import main
from mml_backbones.config import replace
from mml_backbones.data.registry import load_dataset
from mml_backbones.optim import OptimConfig, build_optimizer, build_scheduler
from mml_backbones.trainer import Trainer
from mml_backbones.trainer_config import TrainerConfig

TINY_ID = "dus_env/DUS-Tiny-v1"
#: per-run quantities of the equivalence tests: unequal across runs and modalities, some beyond B = 32
QUANTITIES = [np.array([[32, 32], [48, 16], [8, 56]]), np.array([[16, 48], [32, 32], [60, 4]])]


def tiny_trainer_config(**changes) -> TrainerConfig:
    """DUS-Tiny-v1's training run (v1: SGD with momentum and weight decay), with ``changes``."""
    return dus_env.make_config(None, **{**dus_env.V1, **dus_env.TINY, **changes}).trainer


@pytest.mark.parametrize(
    "optim",
    [
        {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-2},
        {"name": "adam", "lr": 0.01, "weight_decay": 1e-2},
        {"name": "sgd", "lr": 0.05, "momentum": 0.9, "schedule": "step", "step_size": 1, "gamma": 0.5},
    ],
)
def test_a_stacked_optimizer_is_k_independent_optimizers(optim):
    torch.manual_seed(0)
    config = OptimConfig(**optim)
    models = [nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)) for _ in range(4)]
    stacked = {
        n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]).requires_grad_()
        for n, _ in models[0].named_parameters()
    }
    batched = build_optimizer(list(stacked.values()), config, fused=True)  # the core's optimiser of K runs
    separate = [build_optimizer(m.parameters(), config) for m in models]  # what each Trainer builds
    schedules = [build_scheduler(o, config, 3) for o in [batched, *separate]]
    for step in range(6):
        grads = {n: torch.randn_like(p) for n, p in stacked.items()}
        for n, p in stacked.items():
            p.grad = grads[n].clone()
        for k, m in enumerate(models):
            for n, p in m.named_parameters():
                p.grad = grads[n][k].clone()
        batched.step()
        for o in separate:
            o.step()
        if step % 2 and schedules[0] is not None:  # an epoch boundary every other step
            for s in schedules:
                s.step()
    for k, m in enumerate(models):
        for n, p in m.named_parameters():
            torch.testing.assert_close(stacked[n][k], p, rtol=1e-5, atol=1e-6)


def _npz(tmp_path) -> dict:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    path = tmp_path / "data.npz"
    np.savez(path, labels=y, audio=rng.normal(size=(300, 6)) + y[:, None], video=rng.normal(size=(300, 2, 5)))
    return {"dataset": "npz", "dataset_options": {"path": str(path)}, "model": {"encoder": "mlp"}}


@pytest.mark.parametrize(
    "changes",
    [
        {},  # joint, concat fusion, SGD
        {"method": "concat", "dus_losses": True, "model": {"fusion": "sum"}},
        {"method": "concat", "model": {"fusion": "late"}, "val_max_samples": 50},
        {"optim": {"name": "adam", "lr": 1e-3}, "statistics": {"kind": "ema"}},
        "npz",
    ],
    ids=["joint-concat-sgd", "concat-dus-sum", "monitors-late-subset", "adam-ema", "npz"],
)
def test_batched_runs_match_separate_trainers(changes, tmp_path):
    config = tiny_trainer_config(**(_npz(tmp_path) if changes == "npz" else changes))
    splits = load_dataset(config.dataset, **config.dataset_options)
    seeds = [3, 4, 5]
    batched = Trainer([replace(config, seed=s) for s in seeds], splits)
    assert batched._vectorizable  # the vectorised step (joint and concat opt in)
    separate = [Trainer(replace(config, seed=s), splits=splits) for s in seeds]
    step = 0
    while not batched.done:  # the whole schedule: 8 iterations (npz: 7, its last step one iteration long)
        q = QUANTITIES[step % 2]
        batched.decide_each([dict(zip(batched.modalities, row.tolist())) for row in q])
        ran = batched.run_iterations(config.decision_interval)
        losses, obs = batched.pop_train_losses_each(), batched.observation_vectors()
        val = [validation_metrics(batched, config.val_max_samples, k) for k in range(len(seeds))]
        step += 1
        for k, trainer in enumerate(separate):
            assert trainer.run_iterations(config.decision_interval, q[k].tolist()) == ran
            expected = trainer.pop_train_losses()
            assert losses[k] == pytest.approx(expected, rel=1e-5, abs=1e-6)
            np.testing.assert_allclose(obs[k], trainer.observation_vector(), atol=2e-5)  # S_t, speed, loss, ...
            np.testing.assert_allclose(
                batched.runs[k].controller.statistics.cumulative, trainer.statistics.cumulative, atol=1e-6
            )
            metrics = validation_metrics(trainer, config.val_max_samples)
            assert abs(val[k]["fused_acc"] - metrics["fused_acc"]) <= 0.001  # within a tenth of a point
            assert val[k] == pytest.approx(metrics, abs=1e-3)
    assert batched.done and all(t.done for t in separate)


def episode(env, seed: int, actions: list[np.ndarray]) -> tuple[list, list, list]:
    """Observations, rewards and infos of one DUSEnv episode."""
    obs, info = env.reset(seed=seed)
    out = ([obs], [], [info])
    for a in actions:
        obs, r, *_, info = env.step(a)
        out[0].append(obs), out[1].append(r), out[2].append(info)
    return out


def test_make_vec_episodes_match_gym_make_episodes():
    k = 3
    venv = gym.make_vec(TINY_ID, num_envs=k, vectorization_mode="vector_entry_point")
    assert isinstance(venv, BatchedDUSEnv) and venv.config.reference  # v1: the reference runs are members
    assert venv.metadata["autoreset_mode"] is gym.vector.AutoresetMode.NEXT_STEP
    rng = np.random.default_rng(0)
    actions = [rng.uniform(-1, 1, (k, 2)).astype(np.float32) for _ in range(4)]
    obs, info = venv.reset(seed=7)
    got = ([obs], [], [info])
    for a in actions:
        obs, r, term, trunc, info = venv.step(a)
        got[0].append(obs), got[1].append(r), got[2].append(info)
    assert term.all() and not trunc.any()
    for i in range(k):
        env = gym.make(TINY_ID).unwrapped
        obs_i, rewards_i, infos_i = episode(env, 7 + i, [a[i] for a in actions])
        np.testing.assert_allclose(np.array(got[0])[:, i], np.array(obs_i), atol=2e-5)
        np.testing.assert_allclose(np.array(got[1])[:, i], rewards_i, atol=1e-3)
        for t, info_t in enumerate(infos_i):
            assert got[2][t]["train_seed"][i] == info_t["train_seed"] == 7 + i
            for key in ("val/fused_acc", "reference/val/fused_acc", "val/selected", "reference/val/selected"):
                assert abs(got[2][t][key][i] - info_t[key]) <= 0.001  # a tenth of a point
            if t:
                assert {m: got[2][t]["quantities"][m][i] for m in env.modalities} == info_t["quantities"]
                losses = {n: v[i] for n, v in got[2][t]["train_losses"].items() if not n.startswith("_")}
                assert losses == pytest.approx(info_t["train_losses"], rel=1e-5)
    # next-step autoreset: the step after the terminal one starts new runs, ignores the actions, pays 0
    obs, r, term, trunc, info = venv.step(actions[0])
    assert (r == 0).all() and not term.any() and (info["iteration"] == 0).all()
    assert len(set(info["train_seed"].tolist())) == k and not set(info["train_seed"]) & {7, 8, 9}
    assert (obs[:, -1] == 0).all()  # progress


def test_make_vec_with_16_envs_resets_and_steps_through_episodes():
    venv = gym.make_vec(TINY_ID, num_envs=16, vectorization_mode="vector_entry_point")
    obs, info = venv.reset(seed=0)
    assert obs.shape == (16, *venv.single_observation_space.shape) and venv.observation_space.contains(obs)
    assert info["train_seed"].tolist() == list(range(16))
    ends = 0
    for _ in range(2 * venv.episode_length + 1):  # two episodes and the autoreset step between them
        obs, r, term, trunc, info = venv.step(venv.action_space.sample())
        assert obs.shape == (16, obs.shape[1]) and r.shape == term.shape == trunc.shape == (16,)
        assert np.isfinite(r).all() and venv.observation_space.contains(obs)
        ends += int(term.all())
        assert term.all() or not term.any()  # one schedule: the members end together
    assert ends == 2
    venv.close()


def test_same_step_autoreset_reports_the_final_observation():
    venv = BatchedDUSEnv(
        2, None, "same_step", **{**dus_env.V1, **dus_env.TINY, "reference": False, "reward": "delta_val_acc"}
    )
    venv.reset(seed=1)
    for _ in range(venv.episode_length):
        obs, _, term, _, info = venv.step(np.zeros((2, 2), np.float32))
    assert term.all() and info["_final_obs"].all() and (info["iteration"] == 0).all()
    assert info["final_obs"][0][-1] == 1.0 and obs[0][-1] == 0.0  # final progress 1; the new episode's 0
    assert info["final_info"]["iteration"].tolist() == [8, 8]


@pytest.mark.parametrize(
    "changes",
    [
        {"method": "ogm_ge"},
        {"dataset": "npz"},  # a (3, 16) series modality: the 1-D CNN with BatchNorm and dropout
        {"model": {"fusion": "film"}},
        {"optim": {"name": "adamw", "lr": 1e-3}},
        {"optim": {"name": "sgd", "lr": 1e-3, "grad_clip": 1.0}},
    ],
    ids=["ogm_ge", "cnn1d", "film", "adamw", "grad-clip"],
)
def test_every_configuration_runs_batched_as_separate_environments(changes, tmp_path):
    """What the old batched runs left to SyncVectorEnv now trains on the one core, member for member."""
    if changes.get("dataset") == "npz":
        rng = np.random.default_rng(0)
        y = rng.integers(0, 3, 300)
        path = tmp_path / "series.npz"
        np.savez(path, labels=y, a=rng.normal(size=(300, 3, 16)) + y[:, None, None], b=rng.normal(size=(300, 6)))
        changes = {**changes, "dataset_options": {"path": str(path)}}
    kwargs = {**dus_env.V1, **dus_env.TINY, **changes}
    venv = gym.make_vec(TINY_ID, num_envs=2, vectorization_mode="vector_entry_point", **changes)
    assert isinstance(venv, BatchedDUSEnv)
    actions = [np.array([[0.5, -0.5], [-0.3, 0.2]], np.float32)] * 3
    venv.reset(seed=11)
    rewards = []
    for a in actions:
        _, r, *_ = venv.step(a)
        rewards.append(r)
    for i in range(2):
        env = DUSEnv(**kwargs)
        _, rewards_i, _ = episode(env, 11 + i, [a[i] for a in actions])
        np.testing.assert_allclose(np.array(rewards)[:, i], rewards_i, atol=1e-3)
    venv.close()


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"decision_interval": 3},  # epoch ends inside steps: the kept score follows them all the same
        {"observation_features": dus_env.FAMILY_V1["observation_features"]},  # the validation context
        {"selection_metric": "macro_f1"},
    ],
    ids=["v1", "epoch-end-inside-a-step", "validation-context", "macro-f1"],
)
def test_the_kept_score_reward_is_the_single_environments_member_by_member(changes):
    """paired_selected_val (v1's default) over three epochs: batched returns are DUSEnv's, seed by seed."""
    kwargs = {**dus_env.V1, **dus_env.TINY, "epochs": 3, **changes}
    assert kwargs["reward"] == "paired_selected_val"
    venv = BatchedDUSEnv(2, None, **kwargs)
    rng = np.random.default_rng(1)
    actions = [rng.uniform(-1, 1, (2, 2)).astype(np.float32) for _ in range(venv.episode_length)]
    obs, info = venv.reset(seed=[21, 22])
    got_obs, got_rewards, infos = [obs], [], [info]
    for a in actions:
        obs, r, term, _, info = venv.step(a)
        got_obs.append(obs), got_rewards.append(r), infos.append(info)
    assert term.all()
    assert (infos[-1]["val/selected_epoch"] > 0).all()
    for i, seed in enumerate((21, 22)):
        obs_i, rewards_i, infos_i = episode(DUSEnv(**kwargs), seed, [a[i] for a in actions])
        np.testing.assert_allclose(np.array(got_obs)[:, i], np.array(obs_i), atol=2e-5)
        np.testing.assert_allclose(np.array(got_rewards)[:, i], rewards_i, atol=1e-3)
        end = infos_i[-1]  # the return is the difference of the two runs' kept scores
        assert sum(rewards_i) == pytest.approx(100 * (end["val/selected"] - end["reference/val/selected"]), abs=1e-6)
        for key in ("val/selected", "reference/val/selected", "val/selected_epoch"):
            assert abs(infos[-1][key][i] - end[key]) <= 0.001
    venv.close()


def test_uncached_references_are_members_and_cached_ones_are_replayed():
    venv = BatchedDUSEnv(2, None, **{**dus_env.V1, **dus_env.TINY})
    venv.reset(seed=[5, 6])
    assert venv.episodes.trainer.num_runs == 4 and venv.episodes.reference_runs_trained == 2
    for _ in range(venv.episode_length):
        venv.step(np.zeros((2, 2), np.float32))
    venv.reset(seed=[5, 7])  # seed 5's reference trajectory is cached
    assert venv.episodes.trainer.num_runs == 3 and venv.episodes.reference_runs_trained == 3


@pytest.mark.parametrize("algo", ["ppo", "reinforce"])
def test_train_policy_with_batched_environments(algo, tmp_path, capsys):
    args = ["train-policy", "--env", TINY_ID, "--algo", algo, "--vec", "batched", "--n-envs", "4"]
    args += ["--timesteps", "32", "--out", str(tmp_path), "--no-progress", "--eval-episodes", "0"]
    if algo == "ppo":
        args += ["--hyper", "n_steps=4", "--hyper", "batch_size=8", "--hyper", "n_epochs=1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert main(args) == 0
    out = capsys.readouterr().out
    assert f"trained {algo} for 32 steps" in out and (tmp_path / "policy.zip").is_file()
    if algo == "ppo":  # (A2C, under REINFORCE, logs every 100 updates only)
        progress = (tmp_path / "logs" / "segment_0" / "progress.csv").read_text()
        assert "rollout/ep_rew_mean" in progress  # VecMonitor saw whole episodes


@pytest.mark.parametrize("env_id", [i for i in dus_env.ENV_IDS if i.endswith("-v1")])
def test_every_v1_world_runs_batched(env_id):
    """Every v1 id builds its batched environment on its own data and model, and steps (a short schedule)."""
    short = {"epochs": 1, "iterations_per_epoch": 2, "decision_interval": 1}
    venv = BatchedDUSEnv(2, None, **{**dus_env.ENV_IDS[env_id], **short})
    obs, _ = venv.reset(seed=0)
    obs, r, term, *_ = venv.step(np.zeros((2, len(venv.modalities)), np.float32))
    assert venv.observation_space.contains(obs) and np.isfinite(r).all() and not term.any()
    assert venv.episodes.trainer._vectorizable  # MLP encoders and joint: the vectorised step
    venv.close()
