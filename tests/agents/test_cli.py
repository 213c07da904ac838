import json

import pandas as pd

from mml_backbones.cli import main

TINY = ["--preset", "mild", "--dataset-option", "n_train=256", "--dataset-option", "n_val=128"]
TINY += ["--dataset-option", "n_test=128", "--epochs", "1", "--batch-size", "32", "--no-progress"]


def test_downstream_training_with_every_sampler_kind(trained_ppo, tmp_path, capsys):
    for spec in ("uniform", "heuristic:gamma=2", f"policy:{trained_ppo.final}"):
        out = tmp_path / spec.split(":")[0]
        assert main(["train", *TINY, "--sampler", spec, "--out", str(out)]) == 0
        assert "fused_acc" in capsys.readouterr().out
        decisions = (out / "decisions.csv").read_text().splitlines()
        assert len(decisions) > 1 and decisions[0].startswith("iteration,epoch,n/strong,n/weak")
    config = json.loads((tmp_path / "policy" / "config.json").read_text())
    assert config["sampler"].startswith("PolicySampler(")


def test_policy_errors_from_the_cli(trained_ppo, tmp_path, capsys):
    three = ["train", "--preset", "three_modal", "--dataset-option", "n_train=128", "--epochs", "1", "--no-progress"]
    assert main([*three, "--sampler", f"policy:{trained_ppo.final}"]) == 2
    assert "trained for 2 modalities" in capsys.readouterr().err
    bad = tmp_path / "bad.zip"
    bad.write_text("not a zip")
    assert main(["train", *TINY, "--sampler", f"policy:{bad}"]) == 2
    assert "not a valid policy" in capsys.readouterr().err


def test_train_policy_and_eval_policy_commands(tmp_path, capsys):
    env = ["--env", "dus_env/DUS-Tiny-v0"]
    args = ["train-policy", *env, "--algo", "reinforce", "--timesteps", "16", "--out", str(tmp_path), "--no-progress"]
    assert main([*args, "--eval-episodes", "1", "--eval-freq", "8"]) == 0
    assert "policy:" in capsys.readouterr().out
    assert main(["eval-policy", "--policy", str(tmp_path / "policy.zip"), "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "uniform" in out and "heuristic" in out and "reinforce" in out and "final_val_acc" in out


def test_demo_loads_the_committed_policy(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--env", "dus_env/DUS-Tiny-v1", "--env-seeds", "2", "--seeds", "1", "--out", str(out)]
    assert main([*args, "--no-progress", "--instances", ""]) == 0
    text = capsys.readouterr().out
    assert "loaded the committed policy benchmarks/results/policies_v1/DUS-v1_ppo/best/best_model.zip" in text
    assert "(trained with: dus train-policy --env dus_env/DUS-v1 --algo ppo" in text
    assert "heuristic" in text and "diff vs uniform" in text and "test acc" in text and "[4/4]" not in text
    for name in ("quantities.png", "env_eval.csv", "downstream.csv"):
        assert (out / name).is_file()


def test_demo_shows_the_committed_generalist_on_unseen_instances(tmp_path, capsys, tiny_set_data, write_set):
    from agents.headroom import numeric_rows
    from agents.oracle import oracles_of, run_instance, write_oracles
    from dus_env.seeds import gate_seeds

    path = write_set(tiny_set_data)
    write_oracles(oracles_of(numeric_rows(run_instance(path, "mine", gate_seeds(2)), gate_seeds(2)), path), path)
    out = tmp_path / "demo"
    args = ["demo", "--env", "dus_env/DUS-Tiny-v1", "--env-seeds", "1", "--seeds", "1", "--out", str(out)]
    args += ["--instance-set", path, "--instances", "mine", "--instance-seeds", "2", "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "[4/4] the instance-set generalist" in text and "oracle share" in text
    table = pd.read_csv(out / "instances.csv")
    assert list(table["sampler"]) == ["heuristic", "generalist"] and set(table["instance"]) == {"mine"}
    assert table["mean share"].str.fullmatch(r"\d+/\d+").all()


def test_demo_trains_on_the_spot_and_refuses_a_missing_policy(tmp_path, capsys, monkeypatch):
    import agents.demo

    tiny = [
        "demo",
        "--env",
        "dus_env/DUS-Tiny-v1",
        "--env-seeds",
        "1",
        "--seeds",
        "1",
        "--no-progress",
        "--instances",
        "",
    ]
    train = ["--train", "--timesteps", "64", "--n-envs", "1"]
    assert main([*tiny, *train, "--out", str(tmp_path / "t")]) == 0
    assert "training PPO on dus_env/DUS-Tiny-v1" in capsys.readouterr().out
    assert (tmp_path / "t" / "ppo" / "policy.zip").is_file()
    monkeypatch.setattr(agents.demo, "COMMITTED_POLICY", "no/such/policy.zip")
    assert main([*tiny, "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "the committed policy no/such/policy.zip is missing" in err and "dus demo --train" in err
