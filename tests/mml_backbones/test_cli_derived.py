"""The command line derived from the config dataclasses: every field a flag, help from the docstrings, lazy start-up."""

import argparse
import dataclasses
import json
import subprocess
import sys
import typing

import pytest

from mml_backbones.cli import build_parser, main, trainer_config_from_flags
from mml_backbones.cli_config import DEST, differences, field_docs, given_values, overlay
from mml_backbones.trainer_config import TrainerConfig


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _paths(cls, prefix=""):
    """Every leaf field of a (nested) config dataclass, as dotted paths."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        inner = args[0] if len(args) == 1 else hint
        if dataclasses.is_dataclass(inner):
            yield from _paths(inner, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", cls, f.name


def test_every_trainer_config_field_is_a_flag_with_its_docstring_and_default():
    train = _subparser("train")
    dests = {a.dest: a for a in train._actions}
    help_text = train.format_help()
    for path, cls, name in _paths(TrainerConfig):
        assert DEST + path in dests, f"--{path} missing"
        action = dests[DEST + path]
        doc = field_docs(cls)[name]
        assert doc and doc.split()[0] in action.help, path  # the help is the field's docstring
        assert action.default is argparse.SUPPRESS  # "not given" unless typed
    assert "(default: 64)" in help_text and "(default: fused_acc)" in help_text  # batch size, selection metric
    assert "--optim.lr" in help_text and "--lr" in help_text and "--model.feature-dim" in help_text
    assert "constant:MODALITY=N" in help_text  # every sampler kind is named


def test_flags_reach_nested_fields_and_only_given_ones_are_kept():
    train = _subparser("train")
    argv = ["--lr", "0.05", "--statistics.window", "7", "--no-dus-losses", "--bounds.high", "2", "--modalities", "a,b"]
    argv += ["--dataset-option", "n_train=64", "--preset", "strong", "--encoder-option", "*.dropout=0.2"]
    argv += ["--iterations-per-epoch", "none", "--probe.C", "0.5", "--eval-batch-size", "128"]
    args = train.parse_args(argv)
    given = given_values(args)
    assert given == {
        "optim.lr": 0.05,
        "statistics.window": 7,
        "dus_losses": False,
        "bounds.high": 2.0,
        "modalities": ("a", "b"),
        "dataset_options": {"n_train": 64},
        "dataset_options.preset": "strong",
        "model.encoder_options": {"*": {"dropout": 0.2}},
        "iterations_per_epoch": None,
        "probe.C": 0.5,
        "eval_batch_size": 128,
    }
    config = trainer_config_from_flags(given)
    assert config.statistics.window == 7 and config.bounds.high == 2.0 and config.probe.C == 0.5
    assert config.dataset_options == {"n_train": 64, "preset": "strong"}
    # an optimiser flag starts from the method's paper's optimiser (joint: SGD, momentum 0.9)
    assert config.optim.name == "sgd" and config.optim.lr == 0.05 and config.optim.momentum == 0.9
    assert trainer_config_from_flags({"optim.name": "adam"}).optim.momentum == 0.9  # adam's defaults instead
    assert trainer_config_from_flags({}) == TrainerConfig().resolved()


def test_overlay_and_differences_work_on_saved_configs():
    saved = json.loads(json.dumps({"epochs": 3, "optim": {"lr": 0.1}, "dataset_options": {"preset": "mild"}}))
    given = {"epochs": 5, "optim.lr": 0.1, "dataset_options": {"n_train": 9}}
    assert overlay(saved, given) == {
        "epochs": 5,
        "optim": {"lr": 0.1},
        "dataset_options": {"preset": "mild", "n_train": 9},
    }
    assert differences(saved, given) == {"epochs": (3, 5), "dataset_options.n_train": (None, 9)}


def test_bad_flag_values_are_one_line_errors(capsys):
    assert main(["train", "--encoder-option", "hidden=[8]"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "NAME.KEY=VALUE" in err


def test_version(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"dus {version('dus')}"
    with pytest.raises(SystemExit) as e:  # also among other options
        main(["-v", "--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"dus {version('dus')}"


def test_help_and_the_config_layer_import_nothing_heavy():
    code = (
        "import sys\n"
        "from mml_backbones.cli import build_parser\n"
        "p = build_parser()\n"
        "for argv in (['train', '--lr', '0.1'], ['train-policy', '--timesteps', '8'], ['plot', 'x'], ['demo']):\n"
        "    p.parse_args(argv)\n"
        "heavy = ('torch', 'sklearn', 'stable_baselines3', 'gymnasium', 'pandas', 'scipy', 'matplotlib')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_device_auto_runs_and_is_saved_resolved(tmp_path):
    import torch

    tiny = ["--dataset-option", "n_train=128", "--dataset-option", "n_val=64", "--dataset-option", "n_test=64"]
    args = ["train", *tiny, "--epochs", "1", "--batch-size", "32", "--no-progress", "--device", "auto"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["trainer"]["device"]
    assert saved == ("cuda" if torch.cuda.is_available() else "cpu")


def test_device_cuda_without_cuda_is_one_line_naming_the_fix(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is available here")
    assert main(["train", "--epochs", "1", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device cpu" in err and "auto" in err
    assert main(["train", "--epochs", "1", "--device", "gpu"]) == 2
    assert "unknown device 'gpu'" in capsys.readouterr().err
