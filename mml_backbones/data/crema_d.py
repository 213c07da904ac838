"""CREMA-D audio-visual emotion recognition, read from the preprocessed layout OGM-GE and BalanceBenchmark use.

Layout inside ``data_dir`` (every name below is an option of ``load_crema_d``)::

    train.csv, test.csv       rows ``clip_id,LABEL`` such as ``1001_DFA_ANG_XX,ANG``; no header needed (a header
                              row and a UTF-8 BOM are tolerated, columns after the second are ignored).
                              LABEL is one of NEU HAP SAD FEA DIS ANG, class 0-5 in that order (both repos' order).
    audio/<clip>.npy          a spectrogram, 2-D (freq, time), e.g. OGM-GE's 257 x 188 log-STFT, or
    audio/<clip>.pt           a torch tensor (time, mel), e.g. BalanceBenchmark's filterbank.
    visual/<clip>/*.jpg       the clip's frames extracted at 1 fps (OGM-GE's folder is ``Image-01-FPS``).

When ``audio_dir`` is not given, the first existing of ``audio``, ``audio_spec`` is used; when ``visual_dir`` is
not given, the first existing of ``visual/Image-01-FPS``, ``visual``, ``Image-01-FPS``. Raw ``AudioWAV`` folders
are not read: convert the wav files to spectrograms first (the repos' preprocessing scripts do).

Samples:
    audio: float32 (1, F, T). Every clip is cropped (its first T frames) or padded to T time frames: T is
        ``audio_length`` or, by default, the most common length among the train clips (the smallest on ties).
        Padding repeats the clip (as OGM-GE tiles the waveform before its STFT) or appends zeros (``audio_pad``).
        With ``audio_standardise`` the values are shifted and scaled by one mean and std computed on the final
        train split (after the validation split is carved out).
    visual: float32 (frames, 3, H, W), ImageNet-normalised, H = W = ``image_size`` (the frame is squashed to a
        square, as the repos' evaluation transform does). ``frames`` frames are taken evenly spaced, the i-th of
        k being frame ``floor((2i + 1) n / 2k)`` of the n sorted frames (the middle one for k = 1; a clip with
        fewer than k frames repeats some). The selection is deterministic and the same in every split: no
        random crops or flips. Frames stay uint8 in memory (``ImageStore``) and are converted one batch at a
        time, since 7,442 clips x 3 frames x 224^2 as float32 would take about 13 GB.

Splits: test is ``test.csv`` as given. The repos have no validation split (they select on test); here a
validation split is carved out of ``train.csv``:
    ``val_split="stratified"`` (default): ``val_fraction`` of each class, at random with ``seed``. The published
        test split is a random clip split whose actors all appear in train too, so a random validation split
        measures the same thing the test accuracy does.
    ``val_split="actor"``: ``round(val_fraction * actors)`` actors (the first four digits of the clip id), at
        random with ``seed``, go to validation with all their clips: speaker-disjoint, a harder estimate.

Missing data: a clip listed in a csv whose spectrogram, frame folder or frames are absent raises DataError by
default (OGM-GE skips such clips silently); ``skip_missing=True`` skips them and counts them in
``info["skipped"]``.

Cache: the decoded arrays are saved under ``DUS_CACHE_DIR`` (default ``~/.cache/dus``) in a file whose name is a
hash of the list files' clips, every file's size and modification time and the options that change the arrays;
it is written to a temporary file and renamed, and a file that does not read back whole is rebuilt.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import re
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from mml_backbones.data.cache import cached_arrays
from mml_backbones.data.dataset import DatasetSplits, MultimodalDataset
from mml_backbones.data.images import ImageStore
from mml_backbones.data.splits import group_split, stratified_split
from mml_backbones.data.standardize import fit_standardization
from mml_backbones.errors import ConfigError, DataError, DataFileNotFoundError
from mml_backbones.safe_files import load_torch

log = logging.getLogger(__name__)

CLASS_NAMES = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")
CLASS_INDEX = {name: i for i, name in enumerate(CLASS_NAMES)}
AUDIO_DIRS = ("audio", "audio_spec")
VISUAL_DIRS = ("visual/Image-01-FPS", "visual", "Image-01-FPS")
AUDIO_SUFFIXES = {"npy": ".npy", "pt": ".pt"}
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
ACTOR_ID = re.compile(r"^(\d{4})_")
CACHE_VERSION = 1
MISSING_KINDS = ("no_audio", "no_frame_dir", "no_frames")


# ----------------------------------------------------------------------------------------------- list files
def read_clip_list(path: Path) -> list[tuple[str, int]]:
    """(clip id, class index) for every row of a CREMA-D list file such as train.csv."""
    if not path.is_file():
        raise DataFileNotFoundError(f"CREMA-D list file not found: {path} (options train_csv / test_csv)")
    try:
        text = path.read_text(encoding="utf-8-sig")  # utf-8-sig drops the BOM that some of these files carry
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read CREMA-D list file {path}: {e}") from e
    rows: list[tuple[str, int]] = []
    first = True
    for lineno, raw in enumerate(csv.reader(io.StringIO(text)), start=1):
        fields = [f.strip() for f in raw]
        if not any(fields):
            continue
        if len(fields) < 2 or not fields[0] or not fields[1]:
            raise DataError(f"{path}, line {lineno}: expected 'clip_id,LABEL', got {','.join(raw)!r}")
        clip, label = fields[0], fields[1].upper()
        if "/" in clip or "\\" in clip or clip in (".", ".."):
            raise DataError(f"{path}, line {lineno}: clip id {clip!r} is not a file name")
        if label not in CLASS_INDEX:
            if first and not ACTOR_ID.match(clip):  # a header row such as "clip,label"
                first = False
                continue
            raise DataError(
                f"{path}, line {lineno}: unknown label {fields[1]!r} for clip {clip!r}; "
                f"expected one of {list(CLASS_NAMES)}"
            )
        first = False
        rows.append((clip, CLASS_INDEX[label]))
    if not rows:
        raise DataError(f"CREMA-D list file {path} lists no clips")
    dupes = [c for c, n in Counter(c for c, _ in rows).items() if n > 1]
    if dupes:
        raise DataError(f"{path}: clips listed more than once: {dupes[:5]}")
    return rows


def actor_of(clip: str) -> int:
    """The actor id of a CREMA-D clip id (its first four digits)."""
    match = ACTOR_ID.match(clip)
    if match is None:
        raise DataError(f"clip id {clip!r} does not start with a four-digit actor id; val_split='actor' needs one")
    return int(match.group(1))


# ------------------------------------------------------------------------------------------------ audio
def read_spectrogram(path: Path, axes: Literal["freq_time", "time_freq"]) -> np.ndarray:
    """A spectrogram file (.npy or .pt) as a float32 (freq, time) array."""
    try:
        if path.suffix == ".pt":
            obj = load_torch(path, f"spectrogram {path}")  # tensors only: a .pt file is data, never code
            if not isinstance(obj, torch.Tensor):
                raise DataError(f"{path}: expected a tensor, found a {type(obj).__name__}")
            arr = obj.detach().float().numpy()
        else:
            with path.open("rb") as f:
                if f.read(6) != b"\x93NUMPY":
                    raise DataError(f"{path} is not a .npy file (no NUMPY header)")
            arr = np.load(path, allow_pickle=False)
    except DataError:  # already names the problem (DataError is a ValueError: keep it out of the next clause)
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # np.load's errors for a torn .npy
        raise DataError(f"cannot read spectrogram {path}: {e}") from e
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise DataError(f"{path}: expected a numeric array, got {type(arr).__name__} {getattr(arr, 'dtype', '')}")
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.size == 0:
        raise DataError(f"{path}: expected a 2-D spectrogram ({axes.replace('_', ', ')}), got shape {arr.shape}")
    if axes == "time_freq":
        arr = arr.T
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise DataError(f"{path}: spectrogram contains NaN or inf")
    return arr


def fit_length(spec: np.ndarray, length: int, pad: Literal["repeat", "zeros"]) -> np.ndarray:
    """Crop a (freq, time) array to its first ``length`` frames or pad it to ``length``."""
    t = spec.shape[1]
    if t >= length:
        return spec[:, :length]
    if pad == "repeat":
        return np.tile(spec, (1, math.ceil(length / t)))[:, :length]
    return np.pad(spec, ((0, 0), (0, length - t)))


def most_common_length(lengths: Sequence[int]) -> int:
    """The most frequent value (the smallest on ties)."""
    counts = Counter(lengths)
    best = max(counts.values())
    return min(t for t, n in counts.items() if n == best)


# ----------------------------------------------------------------------------------------------- frames
def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders frame_2.jpg before frame_10.jpg."""
    return tuple(int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", name)))


def select_frames(n: int, k: int) -> list[int]:
    """Indices of ``k`` frames evenly spaced among ``n`` (the centres of k equal segments)."""
    return [(2 * i + 1) * n // (2 * k) for i in range(k)]


def read_frame(path: Path, size: int) -> np.ndarray:
    """An image file as a uint8 (3, size, size) array (RGB, squashed to a square)."""
    from PIL import Image  # Pillow comes with matplotlib; imported here so the package imports without it

    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))  # lets the JPEG decoder downscale by a power of two: much faster
            rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read frame {path}: {e}") from e
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


# ------------------------------------------------------------------------------------------------ clips
@dataclass(frozen=True)
class Clip:
    """One listed clip whose files were found.

    Attributes:
        clip: the clip id.
        label: class index.
        split: the list file it came from ("train" or "test").
        audio: its spectrogram file.
        frames: its selected frame files, in order.
        n_frames: how many frames its folder holds.
    """

    clip: str
    label: int
    split: str
    audio: Path
    frames: tuple[Path, ...]
    n_frames: int


def _resolve(root: Path, given: str | None, candidates: Sequence[str], what: str, option: str) -> Path:
    if given is not None:
        path = root / given
        if not path.is_dir():
            raise DataFileNotFoundError(f"CREMA-D {what} directory not found: {path} (option {option})")
        return path
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    raise DataFileNotFoundError(
        f"no CREMA-D {what} directory in {root}: looked for {list(candidates)}; set {option}=... "
        "(relative to data_dir or absolute)"
    )


def _audio_suffix(audio_root: Path, names: set[str], audio_format: str) -> str:
    if audio_format != "auto":
        return AUDIO_SUFFIXES[audio_format]
    counts = Counter(Path(n).suffix.lower() for n in names)
    found = [s for s in AUDIO_SUFFIXES.values() if counts[s]]
    if len(found) == 1:
        return found[0]
    if len(found) == 2:
        raise DataError(
            f"{audio_root} holds both .npy ({counts['.npy']}) and .pt ({counts['.pt']}) files; "
            "choose with audio_format='npy' or 'pt'"
        )
    seen = ", ".join(f"{n} {s or '(no suffix)'}" for s, n in counts.most_common(5)) or "nothing"
    hint = " Raw audio is not read: compute spectrograms first." if counts[".wav"] else ""
    raise DataError(
        f"{audio_root} holds no spectrograms (.npy, freq x time) or filterbanks (.pt, time x mel); found {seen}.{hint}"
    )


def find_clips(
    rows: Sequence[tuple[str, int]],
    split: str,
    audio_root: Path,
    audio_names: set[str],
    suffix: str,
    visual_root: Path,
    visual_names: set[str],
    frames: int,
) -> tuple[list[Clip], list[tuple[str, Path]]]:
    """The listed clips whose files exist, and (kind, path) for each one that lacks some."""
    found: list[Clip] = []
    missing: list[tuple[str, Path]] = []
    for clip, label in rows:
        audio = audio_root / f"{clip}{suffix}"
        if audio.name not in audio_names:
            missing.append(("no_audio", audio))
            continue
        folder = visual_root / clip
        if clip not in visual_names or not folder.is_dir():
            missing.append(("no_frame_dir", folder))
            continue
        names = sorted((n for n in os.listdir(folder) if n.lower().endswith(FRAME_SUFFIXES)), key=natural_key)
        if not names:
            missing.append(("no_frames", folder))
            continue
        chosen = tuple(folder / names[i] for i in select_frames(len(names), frames))
        found.append(Clip(clip, label, split, audio, chosen, len(names)))
    return found, missing


def _missing_error(missing: dict[str, list[tuple[str, Path]]], listed: int) -> DataError:
    every = [m for ms in missing.values() for m in ms]
    counts = Counter(kind for kind, _ in every)
    what = {
        "no_audio": "without a spectrogram file",
        "no_frame_dir": "without a frame folder",
        "no_frames": "whose frame folder has no frames (*.jpg, *.jpeg, *.png)",
    }
    parts = ", ".join(f"{counts[k]} {what[k]}" for k in MISSING_KINDS if counts[k])
    first = ", ".join(str(p) for _, p in every[:5])
    return DataError(
        f"CREMA-D: {len(every)} of {listed} listed clips lack data ({parts}); first: {first}. "
        "Pass skip_missing=True to leave them out (OGM-GE skips them silently)."
    )


# ------------------------------------------------------------------------------------------------ arrays
def _cache_key(clips: Sequence[Clip], options: dict[str, Any]) -> str:
    h = hashlib.sha1(json.dumps({"version": CACHE_VERSION, **options}, sort_keys=True).encode())
    for c in clips:
        parts = [c.clip, str(c.label), c.split, str(c.n_frames)]
        for p in (c.audio, *c.frames):
            st = p.stat()
            parts += [str(p), str(st.st_size), str(st.st_mtime_ns)]
        h.update("\0".join(parts).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def read_arrays(
    clips: Sequence[Clip],
    axes: Literal["auto", "freq_time", "time_freq"],
    audio_length: int | None,
    audio_pad: Literal["repeat", "zeros"],
    image_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Audio (N, F, T) float32 and frames (N, K, 3, S, S) uint8 of ``clips``; T from the train clips if not given."""
    log.info("reading the spectrograms and frames of %d CREMA-D clips", len(clips))
    specs: list[np.ndarray] = []
    for c in clips:
        layout = axes if axes != "auto" else ("time_freq" if c.audio.suffix == ".pt" else "freq_time")
        specs.append(read_spectrogram(c.audio, layout))
    sizes = Counter(s.shape[0] for s in specs)
    if len(sizes) > 1:
        usual = sizes.most_common(1)[0][0]
        odd = [str(c.audio) for c, s in zip(clips, specs) if s.shape[0] != usual]
        counts = ", ".join(f"{n} with {f}" for f, n in sizes.most_common())
        raise DataError(
            f"spectrogram frequency sizes differ ({counts} bins); e.g. {odd[:3]} differ from the usual {usual} "
            "(check audio_axes and that every file comes from the same preprocessing)"
        )
    length = audio_length or most_common_length([s.shape[1] for s, c in zip(specs, clips) if c.split == "train"])
    audio = np.empty((len(specs), specs[0].shape[0], length), dtype=np.float32)
    for i in range(len(specs) - 1, -1, -1):  # popping frees each clip's array once placed: one copy at the peak
        audio[i] = fit_length(specs.pop(), length, audio_pad)
    k = len(clips[0].frames)
    frames = np.empty((len(clips), k, 3, image_size, image_size), dtype=np.uint8)
    for i, c in enumerate(clips):
        for j, path in enumerate(c.frames):
            frames[i, j] = read_frame(path, image_size)
    return audio, frames


def load_arrays(clips: Sequence[Clip], options: dict[str, Any], cache: bool) -> tuple[np.ndarray, np.ndarray]:
    """``read_arrays`` through the on-disk cache (see the module docstring)."""
    k, s = len(clips[0].frames), options["image_size"]

    def build() -> dict[str, np.ndarray]:
        audio, frames = read_arrays(clips, **options)
        return {"audio": audio, "frames": frames}

    def valid(z: dict[str, np.ndarray]) -> bool:
        audio, frames = z.get("audio"), z.get("frames")
        return (
            audio is not None
            and frames is not None
            and audio.dtype == np.float32
            and audio.ndim == 3
            and len(audio) == len(clips)
            and frames.dtype == np.uint8
            and frames.shape == (len(clips), k, 3, s, s)
        )

    arrays = cached_arrays(f"crema_d_{_cache_key(clips, options)}.npz", build, valid, enabled=cache)
    return arrays["audio"], arrays["frames"]


# ------------------------------------------------------------------------------------------------ splits
def validation_split(
    labels: np.ndarray, clips: Sequence[str], rule: Literal["stratified", "actor"], fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Indices (train, val) of a split of the train list, and facts about it for ``info``."""
    if rule == "stratified":
        train_idx, val_idx = stratified_split(labels, (1.0 - fraction, fraction), seed)
        facts: dict[str, Any] = {"split_rule": f"val: {fraction:g} of each class of train.csv at random (seed {seed})"}
    else:
        actors = np.array([actor_of(c) for c in clips])
        n_actors = len(np.unique(actors))
        val_actors = group_split(actors, fraction, seed, what="actors in train.csv")
        n_val = len(val_actors)
        val_mask = np.isin(actors, val_actors)
        train_idx, val_idx = np.flatnonzero(~val_mask), np.flatnonzero(val_mask)
        facts = {
            "split_rule": f"val: all clips of {n_val} of the {n_actors} train actors at random (seed {seed})",
            "val_actors": val_actors.tolist(),
        }
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise DataError(
            f"the validation split of {len(labels)} train clips with val_fraction={fraction} leaves "
            f"{len(train_idx)} train and {len(val_idx)} val clips; change val_fraction"
        )
    facts["split_rule"] += "; test: test.csv"
    return train_idx, val_idx, facts


def _check_options(**o: Any) -> None:
    choices = {
        "audio_format": ("auto", "npy", "pt"),
        "audio_axes": ("auto", "freq_time", "time_freq"),
        "audio_pad": ("repeat", "zeros"),
        "val_split": ("stratified", "actor"),
    }
    for name, valid in choices.items():
        if o[name] not in valid:
            raise ConfigError(f"crema_d: {name} must be one of {list(valid)}, got {o[name]!r}")
    for name in ("frames", "image_size"):
        if not isinstance(o[name], int) or o[name] < 1:
            raise ConfigError(f"crema_d: {name} must be a positive integer, got {o[name]!r}")
    if o["audio_length"] is not None and (not isinstance(o["audio_length"], int) or o["audio_length"] < 1):
        raise ConfigError(f"crema_d: audio_length must be a positive integer or None, got {o['audio_length']!r}")
    if not isinstance(o["val_fraction"], int | float) or not 0.0 < o["val_fraction"] < 1.0:
        raise ConfigError(f"crema_d: val_fraction must be a number in (0, 1), got {o['val_fraction']!r}")
    if not isinstance(o["seed"], int):
        raise ConfigError(f"crema_d: seed must be an integer, got {o['seed']!r}")
    for name in ("audio_standardise", "skip_missing", "cache"):
        if not isinstance(o[name], bool):
            raise ConfigError(f"crema_d: {name} must be true or false, got {o[name]!r}")


def load_crema_d(
    data_dir: str | None = None,
    train_csv: str = "train.csv",
    test_csv: str = "test.csv",
    audio_dir: str | None = None,
    visual_dir: str | None = None,
    audio_format: Literal["auto", "npy", "pt"] = "auto",
    audio_axes: Literal["auto", "freq_time", "time_freq"] = "auto",
    audio_length: int | None = None,
    audio_pad: Literal["repeat", "zeros"] = "repeat",
    audio_standardise: bool = True,
    frames: int = 1,
    image_size: int = 112,
    val_split: Literal["stratified", "actor"] = "stratified",
    val_fraction: float = 0.1,
    seed: int = 0,
    skip_missing: bool = False,
    cache: bool = True,
) -> DatasetSplits:
    """Load CREMA-D (audio spectrogram + video frames, 6 emotions) from the preprocessed layout (module docstring).

    Args:
        data_dir: the dataset folder (CLI: ``--data-dir``).
        train_csv, test_csv: the list files, relative to ``data_dir`` or absolute.
        audio_dir: folder of ``<clip>.npy`` / ``<clip>.pt`` (None: ``audio``, else ``audio_spec``).
        visual_dir: folder of ``<clip>/`` frame folders (None: ``visual/Image-01-FPS``, ``visual``, ``Image-01-FPS``).
        audio_format: "npy", "pt" or "auto" (whichever of the two the audio folder holds).
        audio_axes: layout of the stored arrays; "auto" reads .npy as (freq, time) and .pt as (time, mel).
        audio_length: time frames T of every clip (None: the most common train length; OGM-GE's is 188).
        audio_pad: "repeat" (wrap the clip around) or "zeros" for clips shorter than T.
        audio_standardise: shift and scale audio by the train split's mean and std (OGM-GE feeds the raw log-STFT).
        frames: frames per clip, evenly spaced (OGM-GE uses 1 on CREMA-D, BalanceBenchmark 2).
        image_size: side of the square frames (224 in the papers; 112 keeps CPU runs practical).
        val_split: "stratified" (random per class) or "actor" (speaker-disjoint); see the module docstring.
        val_fraction: share of train.csv (of its clips, or of its actors) that goes to validation.
        seed: seed of the validation split.
        skip_missing: leave out listed clips whose files are missing instead of raising DataError.
        cache: keep the decoded arrays in the on-disk cache.
    """
    options = dict(locals())
    _check_options(**options)
    if data_dir is None:
        raise DataError("dataset 'crema_d' needs data_dir=... (CLI: --data-dir DIR)")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataFileNotFoundError(f"CREMA-D data_dir not found: {root}")
    lists = {"train": read_clip_list(root / train_csv), "test": read_clip_list(root / test_csv)}
    both = sorted({c for c, _ in lists["train"]} & {c for c, _ in lists["test"]})
    if both:
        raise DataError(f"CREMA-D: {len(both)} clip(s) listed in both train and test, e.g. {both[:5]}")

    audio_root = _resolve(root, audio_dir, AUDIO_DIRS, "audio", "audio_dir")
    visual_root = _resolve(root, visual_dir, VISUAL_DIRS, "visual", "visual_dir")
    audio_names = set(os.listdir(audio_root))
    suffix = _audio_suffix(audio_root, audio_names, audio_format)
    visual_names = set(os.listdir(visual_root))
    clips: dict[str, list[Clip]] = {}
    missing: dict[str, list[tuple[str, Path]]] = {}
    for split, rows in lists.items():
        clips[split], missing[split] = find_clips(
            rows, split, audio_root, audio_names, suffix, visual_root, visual_names, frames
        )
    n_missing = sum(len(m) for m in missing.values())
    if n_missing and not skip_missing:
        raise _missing_error(missing, sum(len(r) for r in lists.values()))
    for split in lists:
        if not clips[split]:
            raise DataError(f"CREMA-D: no clip of {split} has its files in {audio_root} and {visual_root}")

    every = clips["train"] + clips["test"]
    array_options = {
        "axes": audio_axes,
        "audio_length": audio_length,
        "audio_pad": audio_pad,
        "image_size": image_size,
    }
    audio, stored = load_arrays(every, array_options, cache)
    n_train_list = len(clips["train"])
    labels = np.array([c.label for c in every], dtype=np.int64)
    names = np.array([c.clip for c in every])
    train_idx, val_idx, facts = validation_split(
        labels[:n_train_list], names[:n_train_list], val_split, val_fraction, seed
    )
    parts = {"train": train_idx, "val": val_idx, "test": np.arange(n_train_list, len(every))}
    norm: dict[str, Any] = {"audio_standardisation": "none", "standardized": [], "standardization": {}}
    if audio_standardise:
        # one scalar mean and std (axes=None): every bin of a spectrogram shares one scale; accumulated in float64
        # over millions of values and applied in place, since the full audio array is large
        stats = fit_standardization(audio, parts["train"], axes=None, dtype=np.float64)
        stats.apply(audio, out=audio)
        norm = {
            "audio_standardisation": "one mean and std of the train split",
            "standardized": ["audio"],
            "standardization": {"audio": stats.to_info()},
        }

    audio_t = torch.from_numpy(audio).unsqueeze(1)
    visual = ImageStore(torch.from_numpy(stored))
    actors = np.array([int(m.group(1)) if (m := ACTOR_ID.match(c)) else -1 for c in names])
    splits = {}
    for split, idx in parts.items():
        splits[split] = MultimodalDataset(
            {"audio": audio_t[torch.from_numpy(idx)], "visual": visual.subset(idx)},
            torch.from_numpy(labels[idx]),
            CLASS_NAMES,
            name=f"crema_d/{split}",
            meta={"clip": names[idx], "actor": actors[idx]},
        )
    info = {
        "description": "CREMA-D audio-visual emotion recognition (6 classes), OGM-GE/BalanceBenchmark layout",
        **facts,
        "audio": f"{suffix} files, sample shape {[1, *audio.shape[1:]]}, T = "
        + (f"{audio_length} (option)" if audio_length else f"{audio.shape[2]} (most common train length)"),
        "visual": f"{frames} frame(s) per clip, {image_size}x{image_size}, ImageNet-normalised",
        **norm,
        "paths": {"data_dir": str(root), "audio_dir": str(audio_root), "visual_dir": str(visual_root)},
        "skipped": {
            split: {kind: sum(k == kind for k, _ in missing[split]) for kind in MISSING_KINDS} for split in lists
        },
        "skipped_first": [str(p) for ms in missing.values() for _, p in ms][:5],
        "class_counts": {s: d.class_counts().tolist() for s, d in splits.items()},
        "options": options,
    }
    return DatasetSplits(splits["train"], splits["val"], splits["test"], info=info)
