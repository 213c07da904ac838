"""Saving and loading learned samplers: an SB3 ``.zip`` with a ``dus_metadata.json`` entry added to it.

The metadata says which algorithm saved the policy, the number and names of modalities, the observation
features and the action mapping it was trained with, and the environment configuration. SB3 ignores the extra
entry, so the file still loads with ``PPO.load`` and friends; a ``.zip`` without it is refused as foreign.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

from agents.algorithms import algo_spec
from mml_backbones.errors import DataError, DataFileNotFoundError

METADATA = "dus_metadata.json"
FORMAT = 1


def add_metadata(path: str | Path, metadata: dict[str, Any]) -> None:
    """Add (or replace) the DUS metadata entry of an SB3 zip file."""
    path = Path(path)
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        entries = {n: z.read(n) for n in names if n != METADATA} if METADATA in names else None
    if entries is not None:  # zip files cannot drop an entry in place: rewrite without the old one
        tmp = path.with_suffix(".tmp.zip")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in entries.items():
                z.writestr(name, data)
        tmp.replace(path)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as z:
        z.writestr(METADATA, json.dumps({"format": FORMAT, **metadata}, indent=2))


def save_policy(model: BaseAlgorithm, path: str | Path, metadata: dict[str, Any]) -> Path:
    """Save an SB3 model with DUS metadata; returns the path of the ``.zip``."""
    path = Path(path)
    if path.suffix != ".zip":
        path = path.with_suffix(".zip")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    add_metadata(path, metadata)
    return path


def _is_complete_zip(path: Path) -> bool:
    """Whether the file ends with a zip end-of-central-directory record (a cut-short copy does not).

    ``zipfile`` alone cannot tell: an SB3 zip holds zipped torch files, and a truncated copy may still end in one
    of theirs, which ``zipfile`` then opens as if it were the policy.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - 65557))  # the record (22 bytes) plus the longest comment a zip allows
        tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    return at >= 0 and at + 22 + int.from_bytes(tail[at + 20 : at + 22], "little") == len(tail)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The DUS metadata of a policy file; clear errors for a missing, truncated, corrupt or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"policy file not found: {path}")
    with path.open("rb") as f:
        if f.read(4) != b"PK\x03\x04":
            raise DataError(f"{path} is not a valid policy .zip: not a zip file (write one with dus train-policy)")
    if not _is_complete_zip(path):
        raise DataError(
            f"{path} is truncated or corrupt: it does not end like a zip file (a copy cut short?); copy it again, "
            "or train a policy with dus train-policy"
        )
    try:
        with zipfile.ZipFile(path) as z:
            if METADATA not in z.namelist():
                raise DataError(
                    f"{path} is not a DUS policy: it has no {METADATA} (save policies with agents.save_policy "
                    "or dus train-policy)"
                )
            meta = json.loads(z.read(METADATA))
    except zipfile.BadZipFile as e:
        raise DataError(f"{path} is not a valid policy .zip (corrupt or not a zip file): {e}") from e
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: corrupt {METADATA}: {e}") from e
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: policy metadata format {meta.get('format')!r}, this version reads {FORMAT}")
    for key in ("algo", "modalities", "observation_features", "action"):
        if key not in meta:
            raise DataError(f"{path}: policy metadata lacks {key!r}")
    return meta


def load_policy(path: str | Path, device: str = "cpu") -> tuple[BaseAlgorithm, dict[str, Any]]:
    """Load a DUS policy file: the SB3 model and its metadata."""
    meta = read_metadata(path)
    cls = algo_spec(meta["algo"]).sb3_class
    try:
        with warnings.catch_warnings():
            # SB3 re-creates an off-policy model's (empty) replay buffer on load and warns that its saved n_steps
            # and buffer class overlap; a loaded policy only acts, so the buffer never matters here
            warnings.filterwarnings("ignore", message=r"`n_steps=\d+` is ignored")
            model = cls.load(path, device=device)
    except Exception as e:  # SB3 and torch raise many types for a damaged archive
        raise DataError(f"cannot load {meta['algo']} policy from {path}: {e}") from e
    return model, meta
