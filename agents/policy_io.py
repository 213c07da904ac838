"""Saving and loading learned samplers: an SB3 ``.zip`` with a ``dus_metadata.json`` entry added to it.

The metadata says which algorithm saved the policy, the number and names of modalities, the observation
features and the action mapping it was trained with, and the environment configuration. SB3 ignores the extra
entry, so the file still loads with ``PPO.load`` and friends; a ``.zip`` without it is refused as foreign.

Loading never unpickles (policies are files people share): the archive is read once into memory
(``mml_backbones.safe_files.read_zip``), the metadata is checked as JSON of the expected types, and the algorithm is
rebuilt from it and from ``agents.algorithms`` with the weights read as tensors only (``agents.policy_rebuild``, which
lists what is taken from where). ``trust_file=True`` is the escape hatch for a file one trusts that only SB3's full
loader reads (say, trained with policy_kwargs of one's own): it calls SB3's ``load``, which unpickles, and logs one
line saying so. This module is the only place that calls SB3's ``load`` (a test checks it).
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from agents.algorithms import ALGOS, algo_spec
from agents.policy_rebuild import rebuild_algorithm
from dus_env.actions import ActionMapper
from mml_backbones.errors import DataError, DataFileNotFoundError, DUSError, one_line
from mml_backbones.observation import check_features
from mml_backbones.safe_files import note_unpickling, read_json, read_zip

METADATA = "dus_metadata.json"
FORMAT = 1
#: the metadata of a policy is a few kB; a larger entry is refused unread
MAX_METADATA_BYTES = 2**20
#: more modalities than this in a metadata entry is taken as damage, not a model
MAX_MODALITIES = 64


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


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The DUS metadata of a policy file; clear errors for a missing, corrupt, foreign or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"policy file not found: {path}")
    return check_metadata(path, read_zip(path, "policy .zip", only={METADATA}))


def check_metadata(path: Path, entries: Mapping[str, bytes]) -> dict[str, Any]:
    """Parse and check the metadata entry of a policy archive: JSON of the expected types, nothing else."""
    if METADATA not in entries:
        raise DataError(
            f"{path} is not a DUS policy: it has no {METADATA} (save policies with agents.save_policy "
            "or dus train-policy)"
        )
    meta = read_json(entries[METADATA], f"{path}: {METADATA}", max_bytes=MAX_METADATA_BYTES)
    if not isinstance(meta, dict):
        raise DataError(f"{path}: {METADATA} holds a {type(meta).__name__}, not a JSON object")
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: policy metadata format {meta.get('format')!r:.40}, this version reads {FORMAT}")
    for key in ("algo", "modalities", "observation_features", "action"):
        if key not in meta:
            raise DataError(f"{path}: policy metadata lacks {key!r}")
    algo, modalities, features = meta["algo"], meta["modalities"], meta["observation_features"]
    if not isinstance(algo, str) or algo not in ALGOS:
        raise DataError(f"{path}: policy metadata names algorithm {algo!r:.60}; known: {ALGOS.names()}")
    if (
        not isinstance(modalities, list)
        or not 1 <= len(modalities) <= MAX_MODALITIES
        or not all(isinstance(m, str) for m in modalities)
        or len(set(modalities)) != len(modalities)
    ):
        raise DataError(f"{path}: policy metadata 'modalities' must be 1 to {MAX_MODALITIES} distinct names")
    if not isinstance(meta.get("env_id", ""), str):
        raise DataError(f"{path}: policy metadata 'env_id' must be a string")
    try:
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise DataError("'observation_features' must be a list of names")
        check_features(features)
        if not isinstance(meta["action"], dict):
            raise DataError("'action' must be a JSON object")
        mapper = ActionMapper.from_metadata(meta["action"], len(modalities))
        # map the neutral action once: a field of the wrong type fails here, not in the middle of a run
        mapper.action_to_quantities(0 if mapper.action_type == "discrete" else [0] * len(modalities), 64)
    except (DUSError, TypeError, KeyError, ValueError, AttributeError) as e:  # malformed mappings fail many ways
        raise DataError(f"{path}: policy metadata is malformed: {type(e).__name__}: {one_line(e)}") from None
    return meta


def load_policy(
    path: str | Path, device: str = "cpu", trust_file: bool = False
) -> tuple[BaseAlgorithm, dict[str, Any]]:
    """Load a DUS policy file without unpickling: the SB3 model and its metadata.

    ``trust_file=True`` uses SB3's full loader instead (it unpickles; logged): only for a file you trust.
    """
    return load_algorithm(path, device=device, trust_file=trust_file)


def load_algorithm(
    path: str | Path,
    env: VecEnv | None = None,
    device: str = "cpu",
    settings: Mapping[str, Any] | None = None,
    trust_file: bool = False,
) -> tuple[BaseAlgorithm, dict[str, Any]]:
    """Load a DUS policy or ``dus train-policy`` checkpoint as an SB3 algorithm, optionally onto environments.

    Args:
        path: the ``.zip``.
        env: environments to continue training on (None: the policy only acts).
        device: torch device.
        settings: the hyper-parameters the objects SB3 pickles are rebuilt from (policy_kwargs, action noise,
            ...; see ``agents.policy_rebuild``); default: ``agents.algorithms``' defaults for the metadata's
            algorithm (those objects do not depend on the episode length).
        trust_file: load with SB3's full loader, which unpickles the file (logged); only for a file you trust.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"policy file not found: {path}")
    entries = read_zip(path, "policy .zip")
    meta = check_metadata(path, entries)
    spec = algo_spec(meta["algo"])
    with warnings.catch_warnings():
        # SB3 re-creates an off-policy model's (empty) replay buffer on load and warns that its saved n_steps
        # and buffer class overlap; a loaded policy only acts, so the buffer never matters here
        warnings.filterwarnings("ignore", message=r"`n_steps=\d+` is ignored")
        if trust_file:
            note_unpickling(path, f"Stable-Baselines3's {spec.sb3_class.__name__}.load")
            try:
                model = spec.sb3_class.load(path, env=env, device=device)
            except Exception as e:  # SB3 and torch raise many types for a damaged archive
                why = f"{type(e).__name__}: {one_line(e)}"
                raise DataError(f"cannot load {meta['algo']} policy from {path}: {why}") from e
            return model, meta
        if settings is None:
            settings = spec.defaults(1, len(meta["modalities"]))
        try:
            model = rebuild_algorithm(str(path), spec, meta, entries, settings, env=env, device=device)
        except DataError as e:
            raise DataError(f"cannot load {meta['algo']} policy: {one_line(e, 600)}") from None
    return model, meta
