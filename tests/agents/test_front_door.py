"""The agents' side of issue 19: v1 defaults, train-policy's run directory, the policy's own decision interval,
eval-policy refusing a policy early, Monitor and TensorBoard across resumes, progress."""

import json

import pandas as pd
import pytest

import agents.demo
import agents.evaluation
from agents.heuristic import HeuristicSampler
from agents.training import train_policy
from mml_backbones.cli import main
from mml_backbones.samplers import make_sampler

TINY = ["--preset", "mild", "--dataset-option", "n_train=256", "--dataset-option", "n_val=128"]
TINY += ["--dataset-option", "n_test=128", "--epochs", "1", "--batch-size", "32", "--no-progress"]
#: a short train-policy run on the four-step v1 world
POLICY = ["train-policy", "--env", "dus_env/DUS-Tiny-v1", "--algo", "reinforce", "--eval-episodes", "1"]
POLICY += ["--eval-freq", "8", "--no-progress"]


def test_v1_is_the_default_of_train_policy_and_the_heuristic_is_the_same_everywhere():
    import inspect

    from agents.cli import policy_config_from_args
    from mml_backbones.cli import build_parser

    args = build_parser().parse_args(["train-policy", "--out", "/nonexistent/run"])
    assert policy_config_from_args(args).env_id == "dus_env/DUS-v1"
    assert inspect.signature(train_policy).parameters["env_id"].default == "dus_env/DUS-v1"
    # dus eval-policy's default --compare names "heuristic"; the demo compares with the same sampler
    v1 = HeuristicSampler(gamma=2.0, budget="equal")
    assert make_sampler("heuristic") == make_sampler(agents.demo.HEURISTIC) == HeuristicSampler() == v1


def test_dus_train_runs_a_policy_at_the_interval_it_was_trained_with(trained_ppo, tmp_path, capsys):
    trained = json.loads((trained_ppo.out_dir / "train_config.json").read_text())
    interval = make_sampler(f"policy:{trained_ppo.final}").decision_interval
    assert interval == 2  # the tiny world's, from the policy's metadata (TrainerConfig's default is 10)
    assert trained["env_id"] == "dus_env/DUS-v0"
    run = tmp_path / "a"
    assert main(["train", *TINY, "--sampler", f"policy:{trained_ppo.final}", "--out", str(run)]) == 0
    assert "decision interval 2: the one policy:" in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["trainer"]["decision_interval"] == 2
    run = tmp_path / "b"
    args = ["train", *TINY, "--sampler", f"policy:{trained_ppo.final}", "--decision-interval", "4", "--out", str(run)]
    assert main(args) == 0
    assert "decision interval 4 (--decision-interval) overrides the 2" in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["trainer"]["decision_interval"] == 4


def test_dus_train_runs_the_generalist_with_the_validation_context_it_was_trained_with(tmp_path, capsys):
    run = tmp_path / "g"
    assert main(["train", *TINY, "--sampler", "policy:generalist", "--out", str(run)]) == 0
    assert "validation context refreshed before every decision" in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["trainer"]["validation_context"] == "decision"


def test_eval_policy_refuses_a_policy_for_another_modality_count_before_any_episode(trained_ppo, capsys, monkeypatch):
    monkeypatch.setattr(agents.evaluation, "run_episode", lambda *a, **k: pytest.fail("an episode was played"))
    small = 'dataset_options={"preset": "three_modal", "n_train": 128, "n_val": 64, "n_test": 64}'
    args = ["eval-policy", "--policy", str(trained_ppo.final), "--env", "dus_env/DUS-ThreeModal-v0"]
    assert main([*args, "--env-option", small, "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trained for 2 modalities" in err and "this run has 3" in err


def test_eval_policy_shows_progress(trained_ppo, capsys):
    args = ["eval-policy", "--policy", str(trained_ppo.final), "--episodes", "1", "--compare", "uniform"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "episodes" in err and "2/2" in err  # uniform and the policy, one seed each


def test_train_policy_run_directory_rules_and_one_tensorboard_run_across_resumes(tmp_path, capsys):
    out = tmp_path / "pol"
    assert main([*POLICY, "--timesteps", "8", "--out", str(out), "--hyper", "gamma=0.9", "--seed", "3"]) == 0
    capsys.readouterr()
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["hyper_overrides"] == {"gamma": 0.9} and saved["seed"] == 3
    # SB3's Monitor episode returns are logged for REINFORCE too (a log after every rollout)
    progress = pd.read_csv(out / "logs" / "segment_0" / "progress.csv")
    assert progress["rollout/ep_rew_mean"].notna().any()
    # a second run into the same directory is refused; so are resumes that change it or have nothing to resume
    assert main([*POLICY, "--timesteps", "8", "--out", str(out)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert main(["train-policy", "--resume", "--out", str(tmp_path / "none")]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["train-policy", "--resume", "--out", str(out), "--seed", "4", "--hyper", "gamma=0.5"]) == 2
    err = capsys.readouterr().err
    assert "seed: 3 -> 4" in err and "hyperparams.gamma: 0.9 -> 0.5" in err
    # resuming needs no flags but the new length, and keeps the run's own settings
    assert main(["train-policy", "--resume", "--out", str(out), "--timesteps", "16", "--no-progress"]) == 0
    assert "resuming" in capsys.readouterr().out
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["timesteps"] == 16 and saved["hyper_overrides"] == {"gamma": 0.9} and saved["seed"] == 3
    assert saved["env_id"] == "dus_env/DUS-Tiny-v1" and saved["algo"] == "reinforce"
    # one TensorBoard folder for the whole run: TensorBoard shows one run whose steps go on
    tb = out / "logs" / "tensorboard"
    assert len(list(tb.glob("events.out.tfevents.*"))) == 2
    assert not list((out / "logs").glob("segment_*/events.out.tfevents.*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb))
    events.Reload()
    steps = [e.step for e in events.Scalars("rollout/ep_rew_mean")]
    assert steps == sorted(steps) and steps[-1] == 16 and steps[0] <= 8
    # the run's curves as a picture
    assert main(["plot", str(out)]) == 0
    assert (out / "plots" / "policy.png").is_file()
    # --overwrite replaces it
    assert main([*POLICY, "--timesteps", "8", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "train_config.json").read_text())["seed"] == 0
