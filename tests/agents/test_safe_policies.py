"""Policies and train-policy checkpoints load without unpickling, through every public path.

Crafted files carry a pickle whose reduce opens a marker file for writing: loading must never create the marker
and must fail with one line naming the problem. Every committed policy loads through the safe path with SB3's
weights and deterministic actions, and a safe resume continues as SB3's full loader does.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import pickle
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.algorithms import algo_spec
from agents.policy_io import METADATA, load_policy, read_metadata
from agents.policy_sampler import PolicySampler
from agents.training import train_policy
from mml_backbones.cli import main
from mml_backbones.controller import DUSController
from mml_backbones.errors import DataError
from mml_backbones.samplers import make_sampler

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "benchmarks" / "results").rglob("*.zip"))
TRAIN = ["--preset", "mild", "--dataset-option", "n_train=128", "--epochs", "1", "--no-progress"]


class Payload:
    """Pickles as a call of ``open(marker, "w")``: unpickling it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def rewrite(src: Path, dst: Path, changes: dict[str, bytes]) -> Path:
    """Copy the archive ``src`` to ``dst`` with some entries replaced or added."""
    changes = dict(changes)
    with zipfile.ZipFile(src) as z_in, zipfile.ZipFile(dst, "w") as z_out:
        for name in z_in.namelist():
            z_out.writestr(name, changes.pop(name) if name in changes else z_in.read(name))
        for name, data in changes.items():
            z_out.writestr(name, data)
    return dst


def serialized(marker: Path) -> dict:
    """An SB3 ``data`` value whose pickle would create ``marker``."""
    return {":type:": "<class 'abc.ABCMeta'>", ":serialized:": base64.b64encode(pickle.dumps(Payload(marker))).decode()}


def with_data(src: Path, dst: Path, **values) -> Path:
    """``src`` with some values of its SB3 ``data`` entry replaced."""
    with zipfile.ZipFile(src) as z:
        data = json.loads(z.read("data"))
    return rewrite(src, dst, {"data": json.dumps({**data, **values}).encode()})


def one_line_error(call) -> str:
    """Run ``call``, expect a DataError and return its message, checked to be one line."""
    with pytest.raises(DataError) as err:
        call()
    message = str(err.value)
    assert message.strip() and "\n" not in message, message
    return message


def refused_everywhere(path: Path, tmp_path: Path, capsys) -> str:
    """Load ``path`` through every public API and CLI path; each must refuse it in one line. Returns the message."""
    message = one_line_error(lambda: load_policy(path))
    for call in (
        lambda: PolicySampler(path),
        lambda: make_sampler(f"policy:{path}", modalities=("strong", "weak")),
        lambda: DUSController(["strong", "weak"], sampler=f"policy:{path}"),
    ):
        assert one_line_error(call) == message
    capsys.readouterr()
    for argv in (
        ["train", *TRAIN, "--sampler", f"policy:{path}"],
        ["eval-policy", "--policy", str(path), "--episodes", "1"],
        ["demo", "--policy", str(path), "--out", str(tmp_path / "demo"), "--no-progress"],
    ):
        assert main(argv) == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert error == f"dus: error: {message}", argv
    return message


# ------------------------------------------------------------------------------------------ crafted policies
def test_a_pickle_in_a_serialized_data_entry_is_never_decoded(trained_ppo, tmp_path, capsys):
    marker = tmp_path / "marker"
    # a value the loader supplies itself: the file's pickle is ignored and the policy loads
    supplied = with_data(trained_ppo.final, tmp_path / "supplied.zip", policy_class=serialized(marker))
    model, _ = load_policy(supplied)
    reference, _ = load_policy(trained_ppo.final)
    obs = np.zeros((3, *model.observation_space.shape), np.float32)
    assert np.array_equal(model.predict(obs, deterministic=True)[0], reference.predict(obs, deterministic=True)[0])
    # a value it does not supply: refused by name, not decoded
    unexpected = with_data(trained_ppo.final, tmp_path / "unexpected.zip", gamma=serialized(marker))
    message = refused_everywhere(unexpected, tmp_path, capsys)
    assert "pickled 'gamma'" in message and "trust_file=True" in message
    assert not marker.exists()
    # the payload is live: SB3's full loader, behind the explicit hatch, runs it
    with contextlib.suppress(DataError):
        load_policy(unexpected, trust_file=True)
    assert marker.exists()


def test_a_pickle_in_a_pth_entry_is_refused(trained_ppo, tmp_path, capsys):
    marker = tmp_path / "marker"
    with zipfile.ZipFile(trained_ppo.final) as z:
        weights = torch.load(io.BytesIO(z.read("policy.pth")), weights_only=True)
    buffer = io.BytesIO()
    torch.save({**weights, "extra": Payload(marker)}, buffer)
    path = rewrite(trained_ppo.final, tmp_path / "pth.zip", {"policy.pth": buffer.getvalue()})
    message = refused_everywhere(path, tmp_path, capsys)
    assert "policy.pth" in message and "io.open" in message and "unpickling" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ("pickle", "not valid JSON"),
        ({"format": 1, "algo": "serialized", "modalities": ["strong", "weak"]}, "names algorithm"),
        ("huge", "more than"),
        ({"modalities": "strong,weak"}, "'modalities' must be"),
        ({"action": ["box"]}, "'action' must be a JSON object"),
        ({"action": {"bounds": "wide"}}, "metadata is malformed"),
        ({"observation_features": ["cumulative", 7]}, "list of names"),
        ("list", "not a JSON object"),
    ],
)
def test_a_hostile_metadata_entry_is_refused_as_data(trained_ppo, tmp_path, capsys, metadata, problem):
    marker = tmp_path / "marker"
    meta = read_metadata(trained_ppo.final)
    if metadata == "pickle":
        raw = pickle.dumps(Payload(marker))
    elif metadata == "huge":
        raw = json.dumps({**meta, "padding": "x" * 2**21}).encode()
    elif metadata == "list":
        raw = json.dumps([meta]).encode()
    else:
        if metadata.get("algo") == "serialized":
            metadata = {**metadata, "algo": serialized(marker)}
        raw = json.dumps({**meta, **metadata}).encode()
    path = rewrite(trained_ppo.final, tmp_path / "meta.zip", {METADATA: raw})
    message = refused_everywhere(path, tmp_path, capsys)
    assert problem in message and str(path) in message
    assert one_line_error(lambda: read_metadata(path)) == message
    assert not marker.exists()


def weights_of(relpath: str) -> bytes:
    """The policy.pth entry of a committed policy."""
    with zipfile.ZipFile(ROOT / relpath) as z:
        return z.read("policy.pth")


def test_metadata_and_weights_that_disagree_are_refused(trained_ppo, tmp_path):
    meta = read_metadata(trained_ppo.final)
    fewer = {**meta, "observation_features": ["cumulative", "ratio"]}  # 4 entries; the networks take 5
    path = rewrite(trained_ppo.final, tmp_path / "a.zip", {METADATA: json.dumps(fewer).encode()})
    assert "observation_space" in one_line_error(lambda: load_policy(path))
    wider = weights_of("benchmarks/results/policies_v1/DUS-v1_ppo/policy.zip")  # PPO on 11 features, not 5
    path = rewrite(trained_ppo.final, tmp_path / "b.zip", {"policy.pth": wider})
    assert "has shape (64, 11), the network its metadata describes needs (64, 5)" in one_line_error(
        lambda: load_policy(path)
    )
    sac = weights_of("benchmarks/results/policies_v1/DUS-v1_sac/policy.zip")  # other networks altogether
    path = rewrite(trained_ppo.final, tmp_path / "c.zip", {"policy.pth": sac})
    assert "does not fit the network its metadata describes" in one_line_error(lambda: load_policy(path))
    path = rewrite(trained_ppo.final, tmp_path / "d.zip", {"extra.pth": sac})
    assert "unexpected ['extra.pth']" in one_line_error(lambda: load_policy(path))
    torn = tmp_path / "torn.zip"
    torn.write_bytes(trained_ppo.final.read_bytes()[:-200])
    message = one_line_error(lambda: load_policy(torn))
    assert "truncated or corrupt" in message and "not a DUS policy" not in message


# ---------------------------------------------------------------------------------- committed policies
@pytest.mark.parametrize("relpath", COMMITTED)
def test_every_committed_policy_loads_safely_and_acts_as_with_sb3s_own_loader(relpath):
    path = ROOT / relpath
    safe, meta = load_policy(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`n_steps=\d+` is ignored")
        full = algo_spec(meta["algo"]).sb3_class.load(path, device="cpu")  # the test compares with it
    mine, theirs = safe.get_parameters(), full.get_parameters()
    assert mine.keys() == theirs.keys()
    for network in (k for k in mine if not k.endswith("optimizer")):
        for key, value in theirs[network].items():
            assert torch.equal(mine[network][key], value), f"{network}.{key}"
    assert safe.observation_space == full.observation_space and safe.action_space == full.action_space
    space = full.observation_space
    obs = np.random.default_rng(0).uniform(space.low, space.high, (32, *space.shape)).astype(np.float32)
    assert np.array_equal(safe.predict(obs, deterministic=True)[0], full.predict(obs, deterministic=True)[0])
    assert safe.policy_kwargs == full.policy_kwargs and safe.num_timesteps == full.num_timesteps


# ------------------------------------------------------------------------------- train-policy checkpoints
HYPER = {"ppo": {"n_steps": 16, "batch_size": 16, "n_epochs": 1}, "sac": {"learning_starts": 8, "batch_size": 8}}


def _first_segment(algo: str, out: Path, tiny_env: dict) -> dict:
    kw = {"env_kwargs": tiny_env, "hyperparams": HYPER[algo], "eval_episodes": 0, "checkpoint_freq": 16}
    train_policy("dus_env/DUS-v0", algo, 32, out, seed=3, **kw)
    return kw


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_a_safe_resume_continues_as_sb3s_full_loader_does(tmp_path, tiny_env, algo):
    kw = _first_segment(algo, tmp_path / "safe", tiny_env)
    shutil.copytree(tmp_path / "safe", tmp_path / "full")
    safe = train_policy("dus_env/DUS-v0", algo, 48, tmp_path / "safe", seed=3, resume=True, **kw)
    full = train_policy("dus_env/DUS-v0", algo, 48, tmp_path / "full", seed=3, resume=True, trust_file=True, **kw)
    assert safe.timesteps == full.timesteps == 48
    a, b = load_policy(safe.final)[0].get_parameters(), load_policy(full.final)[0].get_parameters()
    for network in a:
        for key, value in a[network].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, b[network][key]), f"{network}.{key}"


def test_a_poisoned_train_policy_checkpoint_is_refused_on_resume(tmp_path, tiny_env, capsys):
    marker = tmp_path / "marker"
    out = tmp_path / "run"
    kw = _first_segment("ppo", out, tiny_env)
    latest = max((out / "checkpoints").glob("ppo_*_steps.zip"), key=lambda p: int(p.stem.split("_")[1]))
    poisoned = with_data(latest, tmp_path / "poisoned.zip", seed=serialized(marker))
    shutil.move(poisoned, latest)
    message = one_line_error(lambda: train_policy("dus_env/DUS-v0", "ppo", 48, out, resume=True, **kw))
    assert "pickled 'seed'" in message and latest.name in message
    args = ["train-policy", "--env", "dus_env/DUS-v0", "--timesteps", "48", "--out", str(out), "--resume"]
    args += ["--seed", "3", "--eval-episodes", "0", "--checkpoint-freq", "16", "--no-progress"]
    args += [f"--hyper={k}={v}" for k, v in HYPER["ppo"].items()]
    args += [f"--env-option={k}={json.dumps(v)}" for k, v in tiny_env.items()]
    capsys.readouterr()
    assert main(args) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"dus: error: {message}"
    assert not marker.exists()
    with contextlib.suppress(Exception):  # SB3's full loader runs the payload (then fails on its result)
        train_policy("dus_env/DUS-v0", "ppo", 48, out, resume=True, trust_file=True, **kw)
    assert marker.exists()


def test_the_metadata_is_still_read_for_a_trusted_file(trained_ppo, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING):
        model, meta = load_policy(trained_ppo.final, trust_file=True)
    assert meta["algo"] == "ppo" and model.observation_space.shape == (5,)
    lines = [r.getMessage() for r in caplog.records if "unpickling" in r.getMessage()]
    assert len(lines) == 1 and str(trained_ppo.final) in lines[0]
    assert METADATA in zipfile.ZipFile(trained_ppo.final).namelist()
