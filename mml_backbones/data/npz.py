"""Bring your own data: one ``.npz`` file with an array per modality.

Layout of the file:
    labels: integer array (N,), required.
    split: optional integer array (N,) with 0 = train, 1 = val, 2 = test. Without it the samples are split
        70/15/15, stratified by class, with the ``seed`` option.
    class_names: optional string array (num_classes,).
    every other array: one modality, named by its key, shape (N, ...) (any shape after the sample axis).

Standardisation (option ``standardize``, default true; CLI ``--dataset-option standardize=false`` turns it off):
floating-point modalities are shifted and scaled per feature (every entry of a sample's shape) with the mean and
std of the train split, because raw-scale features train badly; a feature constant on train gets std 1 and so
becomes 0. Integer arrays (token ids) and booleans are left as they are. ``info["standardized"]`` lists the
modalities standardised and ``info["standardization"]`` their statistics, saved with a run's config.json.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from mml_backbones.data.dataset import RESERVED_NAMES, DatasetSplits, MultimodalDataset
from mml_backbones.data.splits import stratified_split
from mml_backbones.data.standardize import fit_standardization
from mml_backbones.errors import ConfigError, DataError, DataFileNotFoundError

SPLIT_CODES = {0: "train", 1: "val", 2: "test"}


def load_npz(
    path: str | None = None,
    modalities: list[str] | tuple[str, ...] | None = None,
    seed: int = 0,
    standardize: bool = True,
) -> DatasetSplits:
    """Load a user ``.npz`` file (see the module docstring for its layout and standardisation)."""
    if not isinstance(standardize, bool):
        raise ConfigError(f"npz option standardize must be true or false, got {standardize!r}")
    if path is None:
        raise DataError("dataset 'npz' needs path=... (CLI: --path FILE.npz)")
    src = Path(path)
    if not src.is_file():
        raise DataFileNotFoundError(f"npz file not found: {src}")
    with src.open("rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":  # np.save's one array, not np.savez's archive
        raise DataError(
            f"{src} is a .npy file (one array); dataset npz reads an .npz archive with 'labels' and one array per "
            "modality: np.savez(path, labels=y, <modality>=x, ...)"
        )
    if not zipfile.is_zipfile(src):
        raise DataError(
            f"{src} is not an .npz archive (not a zip file; a text or other file named .npz?); write one with "
            "np.savez(path, labels=y, <modality>=x, ...)"
        )
    try:
        with np.load(src, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:  # numpy's hint to load unsafely does not apply: object arrays are never modalities
        raise DataError(
            f"cannot read {src}: an array holds Python objects (dtype object), which are not loaded for safety; "
            "save numeric arrays (and class_names as a str array)"
        ) from e
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"cannot read {src} as .npz (corrupt or truncated?): {e}") from e
    if "labels" not in arrays:
        raise DataError(
            f"{src}: no 'labels' array (the integer class of each sample); arrays in the file: {sorted(arrays)}. "
            "Save it with np.savez(path, labels=y, <modality>=x, ...)"
        )
    labels = arrays.pop("labels")
    if len(labels) == 0:
        raise DataError(f"{src}: the file has no samples ('labels' is empty)")
    if labels.ndim != 1 or not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise DataError(f"{src}: 'labels' must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    split = arrays.pop("split", None)
    names = arrays.pop("class_names", None)
    arrays = {k: v for k, v in arrays.items() if k not in RESERVED_NAMES}
    if modalities is not None:
        missing = [m for m in modalities if m not in arrays]
        if missing:
            raise DataError(f"{src}: unknown modality {missing}; arrays present: {sorted(arrays)}")
        arrays = {m: arrays[m] for m in modalities}
    if not arrays:
        raise DataError(f"{src}: no modality arrays besides labels/split")
    for m, a in arrays.items():
        if len(a) != len(labels):
            raise DataError(f"{src}: modality {m!r} has {len(a)} samples but 'labels' has {len(labels)}")
        if a.ndim == 1:
            arrays[m] = a[:, None]
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise DataError(f"{src}: modality {m!r} has non-numeric dtype {a.dtype}")
        if 0 in a.shape[1:]:
            raise DataError(
                f"{src}: modality {m!r} is empty (shape {a.shape}: no features per sample); leave it out of the "
                "file, or train on the others with --modalities"
            )
        if np.issubdtype(a.dtype, np.floating):
            bad = np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(axis=1))
            if len(bad):  # file rows, before any split or shuffle, so they can be found and fixed
                shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
                raise DataError(
                    f"{src}: modality {m!r} has NaN or inf in {len(bad)} row(s) of the file (0-based: {shown}); "
                    "remove or impute them"
                )
    if np.issubdtype(labels.dtype, np.floating):
        if not np.isfinite(labels).all() or not np.equal(labels, np.round(labels)).all():
            raise DataError(f"{src}: 'labels' has NaN, inf or fractional values")
        labels = labels.astype(np.int64)
    if (labels < 0).any():
        raise DataError(f"{src}: 'labels' has negative values")
    num_classes = int(labels.max()) + 1
    class_names = [str(c) for c in names] if names is not None else [f"class_{k}" for k in range(num_classes)]
    if len(class_names) < num_classes:
        raise DataError(f"{src}: labels go up to {num_classes - 1} but class_names has {len(class_names)} entries")
    if split is None:
        parts = dict(zip(("train", "val", "test"), stratified_split(labels, (0.7, 0.15, 0.15), seed)))
        rule = f"stratified 70/15/15 with seed {seed}"
    else:
        if split.shape != labels.shape or not np.isin(split, list(SPLIT_CODES)).all():
            raise DataError(f"{src}: 'split' must hold one of 0 (train), 1 (val), 2 (test) per sample")
        parts = {name: np.flatnonzero(split == code) for code, name in SPLIT_CODES.items()}
        rule = "the file's 'split' array"
    empty = [s for s, idx in parts.items() if len(idx) == 0]
    if empty:
        raise DataError(f"{src}: split(s) {empty} have no samples")
    stats = {}
    if standardize:
        # train rows only (every value is finite: checked above, with the file's rows named)
        stats = {
            m: fit_standardization(a, parts["train"]) for m, a in arrays.items() if np.issubdtype(a.dtype, np.floating)
        }
    out = {}
    for s, idx in parts.items():
        mods = {}
        for m, a in arrays.items():
            rows = stats[m].apply(a[idx]) if m in stats else a[idx]
            t = torch.from_numpy(np.ascontiguousarray(rows))
            mods[m] = t.float() if t.is_floating_point() or t.dtype == torch.bool else t
        out[s] = MultimodalDataset(mods, torch.from_numpy(labels[idx]), class_names, name=f"npz/{s}")
    info = {
        "description": f"user data from {src.name}",
        "split_rule": rule,
        "path": str(src),
        "standardized": list(stats),
        "standardization": {m: st.to_info() for m, st in stats.items()},
    }
    return DatasetSplits(out["train"], out["val"], out["test"], info=info)
