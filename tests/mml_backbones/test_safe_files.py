"""Files are data, never code: checkpoints read without unpickling, resume exact, and one place that reads them.

The last tests walk the sources of every package (agents, dus_env, mml_backbones, benchmarks) and fail on a
``torch.load``, a pickle import or an SB3-style ``.load(`` outside the places listed in ``ALLOWED``.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from mml_backbones.cli import main
from mml_backbones.config import replace
from mml_backbones.errors import DataError
from mml_backbones.methods import METHODS
from mml_backbones.run_dir import RunDir
from mml_backbones.safe_files import load_torch, read_zip, save_torch, to_plain
from mml_backbones.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agents", "dus_env", "mml_backbones", "benchmarks")


class Payload:
    """Pickles as a call of ``open(marker, "w")``: unpickling it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def one_line(message: str) -> bool:
    """A message fit for the CLI: one line, not empty."""
    return bool(message.strip()) and "\n" not in message.strip()


# ---------------------------------------------------------------------------------------------- reading as data
def test_tensors_and_plain_data_round_trip_and_numpy_becomes_tensors(tmp_path):
    rng = np.random.default_rng([3, 1])
    rng.permutation(7)
    state = {
        "rng": rng.bit_generator.state,  # 128-bit Python ints
        "order": np.arange(5),
        "cumulative": np.array([0.5, np.nan]),
        "window": [np.zeros(2), np.ones(2)],
        "score": np.float64(0.25),
        "count": np.int64(3),
        "model": torch.nn.Linear(2, 1).state_dict(),
        "nested": {"a": (1, "x", None, True)},
    }
    path = tmp_path / "state.pt"
    save_torch(state, path)
    back = load_torch(path, "test state")
    assert back["rng"] == state["rng"]
    assert isinstance(back["order"], torch.Tensor) and back["order"].dtype == torch.int64
    assert np.array_equal(np.asarray(back["cumulative"]), state["cumulative"], equal_nan=True)
    assert type(back["score"]) is float and back["score"] == 0.25 and type(back["count"]) is int
    assert all(torch.equal(back["model"][k], v) for k, v in state["model"].items())
    assert back["nested"] == {"a": (1, "x", None, True)}
    model_state = state["model"]
    assert to_plain(model_state) is model_state  # nothing to convert: saved as it is (with its version metadata)
    with pytest.raises(TypeError, match="cannot checkpoint a Payload"):
        to_plain({"x": Payload(tmp_path / "never")})


def test_a_pickled_object_is_refused_unbuilt_and_named(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "x": Payload(marker)}, path)
    with pytest.raises(DataError) as err:
        load_torch(path, f"checkpoint {path}", legacy_numpy=True, hint="start again")
    message = str(err.value)
    assert not marker.exists()
    assert one_line(message) and "io.open" in message and "start again" in message and "trust" in message
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_torch(path, "checkpoint")


def test_the_trust_file_hatch_unpickles_and_says_so(tmp_path, caplog):
    marker = tmp_path / "marker"
    path = tmp_path / "own.pt"
    torch.save({"x": Payload(marker)}, path)
    with caplog.at_level(logging.WARNING):
        load_torch(path, "checkpoint", trust_file=True)
    assert marker.exists()  # the payload is live: the refusals above are real
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "unpickling" in lines[0] and str(path) in lines[0]


def test_object_arrays_are_refused_even_through_the_legacy_numpy_route(tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save({"numbers": np.arange(3), "objects": np.array([{"a": 1}], dtype=object)}, path)
    with pytest.raises(DataError, match="only unpickling|dtype object"):
        load_torch(path, "checkpoint", legacy_numpy=True)
    torch.save({"numbers": np.arange(3)}, path)
    assert np.array_equal(load_torch(path, "checkpoint", legacy_numpy=True)["numbers"], np.arange(3))
    with pytest.raises(DataError, match="only unpickling"):  # numpy is only accepted for old checkpoints
        load_torch(path, "tensor file")


def test_zip_reading_names_truncation_duplicates_and_size(tmp_path):
    import zipfile

    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("data", "{}")
        z.writestr("big", b"0" * 10_000)
    assert read_zip(path, "archive", only={"data"}) == {"data": b"{}"}
    with pytest.raises(DataError, match="more than 100"):
        read_zip(path, "archive", max_total=100)
    (tmp_path / "torn.zip").write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_zip(tmp_path / "torn.zip", "archive")
    with zipfile.ZipFile(path, "a") as z, pytest.warns(UserWarning, match="Duplicate"):
        z.writestr("data", "[]")
    with pytest.raises(DataError, match="appear twice"):
        read_zip(path, "archive")


def test_a_controllers_state_is_plain_data_for_a_users_own_checkpoints(tmp_path):
    from mml_backbones.controller import DUSController

    kwargs = dict(sampler="heuristic:gamma=2", batch_size=16, decision_interval=3, total_iterations=20)
    a = DUSController(["a", "b"], **kwargs)
    scores = np.random.default_rng(0).uniform(0.1, 0.9, (20, 2))
    for x, y in scores[:7]:
        a.quantities()
        a.update_scores({"a": float(x), "b": float(y)})
    torch.save(a.state_dict(), tmp_path / "mine.pt")  # what a user's own loop does, with torch's default load
    b = DUSController(["a", "b"], **kwargs)
    b.load_state_dict(torch.load(tmp_path / "mine.pt", weights_only=True))
    for x, y in scores[7:]:
        assert a.quantities() == b.quantities()
        for c in (a, b):
            c.update_scores({"a": float(x), "b": float(y)})
    assert np.array_equal(a.statistics.cumulative, b.statistics.cumulative)


# ------------------------------------------------------------------------------------------- run directories
@pytest.mark.parametrize("name", METHODS.names())
def test_every_methods_checkpoint_reads_as_data_and_continues_exactly(tiny_config, tmp_path, name):
    config = replace(tiny_config, method=name)
    q = {"strong": 8, "weak": 24}
    straight = Trainer(config)
    straight.run_iterations(17, q)  # past the end of epoch 1: epoch hooks have run, method state is set
    run = RunDir(tmp_path)
    run.save_checkpoint(straight.state_dict(), run.last_checkpoint)
    resumed = Trainer(config)
    resumed.load_state_dict(run.load_checkpoint(run.last_checkpoint))  # weights-only: no unpickling
    straight.run_iterations(3, q)
    resumed.run_iterations(3, q)
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), f"{name}: {k} differs after resuming"
    assert np.array_equal(straight.statistics.cumulative, resumed.statistics.cumulative)


def _legacy_save(state, path):
    """How format 2 was written: torch.save of the state as it was, numpy arrays and scalars inside."""
    state = dict(state)
    if "trainer" not in state:  # best.pt: weights only
        torch.save(state, path)
        return
    new = state["trainer"]  # this version's layout (format 4, one run) back to the one-run layout of format 2
    run = new["runs"][0]
    trainer = state["trainer"] = {
        "format": 2,
        "config": new["configs"][0],
        "model": new["models"][0],
        "optimizer": new["optimizers"][0],
        "scheduler": new["schedulers"][0],
        **{k: run[k] for k in ("method", "controller", "stream", "torch_rng", "loss_sums", "loss_count")},
        "iteration": new["iteration"],
        "epoch": new["epoch"],
    }
    trainer["stream"] = dict(trainer["stream"], order=np.asarray(trainer["stream"]["order"]))
    stats = dict(trainer["controller"]["statistics"])
    for key, value in stats.items():
        if key == "window":
            stats[key] = [np.asarray(w) for w in value]
        elif key != "t":
            stats[key] = np.asarray(value)
    trainer["controller"] = dict(trainer["controller"], statistics=stats)
    state["best"] = dict(state["best"], score=np.float64(state["best"]["score"]))
    torch.save(state, path)


class Interrupted:
    """Uniform quantities, then an interruption at decision ``n`` (None: never)."""

    def __init__(self, n: int | None = None) -> None:
        self.n = n

    def __call__(self, obs):
        if self.n is not None:
            self.n -= 1
            if self.n < 0:
                raise KeyboardInterrupt
        return dict.fromkeys(obs.modalities, 24)


def test_a_format_2_checkpoint_with_numpy_inside_resumes_exactly(tiny_config, tmp_path, monkeypatch):
    cfg = replace(tiny_config, epochs=3)
    full = Trainer(cfg).fit(Interrupted(), run_dir=tmp_path / "full", progress=False)
    with monkeypatch.context() as m:  # the previous version's writer
        m.setattr("mml_backbones.run_dir.save_torch", _legacy_save)
        with pytest.raises(KeyboardInterrupt):
            Trainer(cfg).fit(Interrupted(6), run_dir=tmp_path / "cut", progress=False)  # inside epoch 2
    legacy = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=False)  # the test inspects it
    assert legacy["trainer"]["format"] == 2 and isinstance(legacy["trainer"]["stream"]["order"], np.ndarray)
    assert isinstance(legacy["trainer"]["controller"]["statistics"]["cumulative"], np.ndarray)
    resumed = Trainer(cfg).fit(Interrupted(), run_dir=tmp_path / "cut", resume=True, progress=False)
    assert resumed.test == full.test and resumed.best_epoch == full.best_epoch


def _poison(ckpt: Path, marker: Path) -> None:
    """Add a pickled payload to a run's checkpoint."""
    state = torch.load(ckpt, weights_only=True)
    state["extra"] = Payload(marker)
    torch.save(state, ckpt)


def test_a_poisoned_run_checkpoint_is_refused_by_the_api(tiny_config, tmp_path):
    marker = tmp_path / "marker"
    Trainer(tiny_config).fit(run_dir=tmp_path / "run", progress=False)
    _poison(tmp_path / "run" / "checkpoints" / "last.pt", marker)
    with pytest.raises(DataError) as err:
        Trainer(tiny_config).fit(run_dir=tmp_path / "run", resume=True, progress=False)
    message = str(err.value)
    assert one_line(message) and "io.open" in message and "without --resume" in message
    assert "--trust-file" in message and not marker.exists()


def test_a_checkpoint_of_plain_data_but_the_wrong_layout_is_a_one_line_error(tiny_config, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    for state in ({"trainer": 5}, {"trainer": {"format": 3, "config": "x"}}, [1, 2]):
        torch.save(state, tmp_path / "checkpoints" / "last.pt")
        with pytest.raises(DataError) as err:
            Trainer(tiny_config).fit(run_dir=tmp_path, resume=True, progress=False)
        assert one_line(str(err.value)) and "without --resume" in str(err.value)


def test_a_poisoned_run_checkpoint_is_refused_by_dus_train_resume(tmp_path, capsys):
    marker = tmp_path / "marker"
    args = ["train", "--preset", "mild", "--dataset-option", "n_train=128", "--epochs", "1", "--no-progress"]
    args += ["--out", str(tmp_path / "run")]
    assert main(args) == 0
    _poison(tmp_path / "run" / "checkpoints" / "last.pt", marker)
    capsys.readouterr()
    # the run is finished: resuming it means extending it (--epochs 2), which reads the checkpoint
    assert main([*args, "--resume", "--epochs", "2"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the line that describes the run
    assert error.startswith("dus: error: cannot read checkpoint") and "io.open" in error
    assert not marker.exists()
    assert main([*args, "--resume", "--epochs", "2", "--trust-file"]) == 0  # the hatch unpickles (the payload is live)
    assert marker.exists()


# ----------------------------------------------------------------------------- one place reads these files
#: (file, what) pairs allowed to read files with code in them; each with its reason
ALLOWED = {
    # the one reader of torch files: weights_only=True, and weights_only=False only behind trust_file
    ("mml_backbones/safe_files.py", "torch.load"),
    ("mml_backbones/safe_files.py", "weights_only=False"),
    # the one caller of SB3's full loader, only behind trust_file (agents.policy_io.load_algorithm)
    ("agents/policy_io.py", ".load("),
    # HAPT ships as a pickle of pandas 0.x frames; its Unpickler's find_class refuses every global but a fixed
    # list of stand-ins (tests/mml_backbones/test_hapt.py)
    ("mml_backbones/data/hapt.py", "import pickle"),
}
PICKLERS = {"pickle", "cloudpickle", "dill", "joblib", "shelve", "marshal", "_pickle"}
DATA_MODULES = {"np", "numpy", "json", "tomllib", "yaml"}  # whose .load( reads data (np.load: allow_pickle checked)
SB3_READERS = {"load_from_zip_file", "load_from_pkl", "json_to_data", "read_pickle"}


def unsafe_calls(source: str) -> list[tuple[str, int]]:
    """(what, line) for every way ``source`` could unpickle a file."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [("import pickle", node.lineno) for a in node.names if a.name.split(".")[0] in PICKLERS]
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            if module in PICKLERS or (module == "torch" and any(a.name == "load" for a in node.names)):
                found.append(("import pickle", node.lineno))
        elif isinstance(node, ast.Call):
            func = node.func
            for kw in node.keywords:
                value = kw.value.value if isinstance(kw.value, ast.Constant) else None
                if (kw.arg, value) in (("weights_only", False), ("allow_pickle", True)):
                    found.append((f"{kw.arg}={value}", node.lineno))
            if not isinstance(func, ast.Attribute):
                if isinstance(func, ast.Name) and func.id in SB3_READERS:
                    found.append((".load(", node.lineno))
                continue
            owner = ast.unparse(func.value)
            if func.attr in SB3_READERS:
                found.append((".load(", node.lineno))
            elif func.attr == "load" and owner.split(".")[0] in ("torch", "th"):
                found.append(("torch.load", node.lineno))
            elif func.attr == "load" and (node.args or node.keywords) and owner not in DATA_MODULES:
                found.append((".load(", node.lineno))  # SB3's Algo.load(path), a pickler's load(file), ...
    return found


def package_findings() -> set[tuple[str, str, int]]:
    """Every unsafe call in the package sources, as (file, what, line)."""
    out = set()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            out |= {(rel, what, line) for what, line in unsafe_calls(path.read_text())}
    return out


def test_the_detector_sees_every_way_to_unpickle():
    snippet = (
        "import pickle\nfrom cloudpickle import loads\nfrom torch import load\nx = torch.load(f)\n"
        "m = PPO.load(path)\nn = spec.sb3_class.load(p, env=e)\nd = json_to_data(s)\nnp.load(p, allow_pickle=True)\n"
        "torch.load(f, weights_only=False)\nep.load()\nnp.load(p)\njson.load(f)\n"
    )
    found = unsafe_calls(snippet)
    assert [line for _, line in found].count(9) == 2  # torch.load and weights_only=False on one line
    assert {line for _, line in found} == set(range(1, 10))  # the last three lines read data or entry points


def test_only_the_one_place_loads_files_that_can_hold_code():
    findings = package_findings()
    outside = sorted(f for f in findings if (f[0], f[1]) not in ALLOWED)
    assert not outside, (
        f"unpickling outside the one place (mml_backbones/safe_files.py, agents/policy_io.py): {outside}"
    )
    unused = ALLOWED - {(f, what) for f, what, _ in findings}
    assert not unused, f"allowed but no longer needed, remove from ALLOWED: {unused}"
