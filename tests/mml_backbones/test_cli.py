import json

from mml_backbones.cli import main
from mml_backbones.config import parse_options

TINY = ["--preset", "mild", "--dataset-option", "n_train=256", "--dataset-option", "n_val=128"]
TINY += ["--dataset-option", "n_test=128", "--epochs", "1", "--batch-size", "32", "--no-progress"]


def test_train_prints_a_table_and_writes_a_run_directory(tmp_path, capsys):
    assert main(["train", *TINY, "--method", "ogm_ge", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "fused_acc" in out and "probe/weak" in out and "test" in out
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert 0 <= final["test"]["fused_acc"] <= 1


def test_unimodal_run_and_method_options(capsys):
    assert (
        main(["train", *TINY, "--modalities", "weak", "--method", "joint", "--method-option", "fusion_weight=0.5"]) == 0
    )
    assert "head/weak" in capsys.readouterr().out


def test_errors_exit_2_with_the_problem_named(capsys):
    assert main(["train", *TINY, "--method", "pmr"]) == 2
    assert "unknown method 'pmr'" in capsys.readouterr().err
    assert main(["train", "--dataset", "npz", "--path", "/nonexistent.npz", "--epochs", "1"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["train", *TINY, "--sampler", "oracle"]) == 2
    assert "unknown sampler 'oracle'" in capsys.readouterr().err


def test_datasets_and_methods_listings(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "synthetic --preset mild" in out and "hapt" in out and "npz" in out
    assert main(["methods"]) == 0
    assert "ogm_ge" in capsys.readouterr().out


def test_parse_options_reads_json_values():
    assert parse_options(["a=1", "b=[1, 2]", "c=text", "d=true"]) == {"a": 1, "b": [1, 2], "c": "text", "d": True}


def test_per_modality_encoders_and_options_reach_the_model(tmp_path):
    args = ["train", *TINY, "--encoders", "weak=mlp,strong=mlp", "--encoder-option", "weak.hidden=[8]"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    config = json.loads((tmp_path / "config.json").read_text())["trainer"]["model"]
    assert config["encoders"] == {"weak": "mlp", "strong": "mlp"}
    assert config["encoder_options"] == {"weak": {"hidden": [8]}}
    assert main(["train", *TINY, "--encoder-option", "hidden=[8]"]) == 2
