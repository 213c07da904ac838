"""ArtELingo (Mohamed et al., EMNLP 2022): the emotion a WikiArt painting evoked, from the image and a comment.

Layout under ``data_dir`` (the public release, as its ``dataset/preprocess.py`` reads it):
    artelingo.csv                       columns art_style, painting, emotion, utterance, language, split
    wikiart/{art_style}/{painting}.jpg  the images
or, instead of the images, precomputed image features (CLIP, BEiT, ... extracted elsewhere):
    FEATURES.npy                        float array (P, D), one row per painting
    FEATURES.txt                        P lines, the painting keys ``{art_style}/{painting}`` in the same order

Values, as in the release and its loaders: ``language`` is english, arabic or chinese (spanish for the WECIA
transfer test); ISO codes and any capitalisation are accepted too (en -> english, ...). ``emotion`` is one of the
nine ArtEmis emotions, any capitalisation, with "other" read as "something else" (the authors' loader does the
same). ``split`` is train, val or test ("validation", "valid" and "dev" read as val).

Splits. Rows of the ``transfer_languages`` (spanish by default) form ``extra["transfer"]`` whatever their split
value: never trained on, scored in the final report. The other rows of the selected ``languages`` follow their
``split`` column. When the file has no val rows, ``val_fraction`` of the train paintings (chosen with ``seed``)
and all their comments become the val split, so no painting sits in both.

Modalities: "text", the comment wrapped in the ``prompt`` template and tokenised (see data/prompts.py and
data/text.py); "image", (3, image_size, image_size) RGB scaled to [0, 1] and normalised with the ImageNet mean and
std, or the feature vectors. Each painting is stored once (images as uint8) and gathered per batch: the full
release (about 80k paintings) takes about 1 GB at the default 64 x 64, so prefer ``image_features`` there.
Per-sample meta: language, painting (the key), utterance (raw comment), row (line in the CSV).

Errors (DataError, naming the CSV line): a missing column, an unknown language, emotion or split value, an empty
comment, painting or style; a missing or unreadable image (DataFileNotFoundError / DataError). With
``bad_rows="drop"`` bad rows are dropped instead and counted in ``info["dropped_rows"]``.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

from mml_backbones.data.dataset import DatasetSplits, MultimodalDataset
from mml_backbones.data.emotions import EMOTIONS
from mml_backbones.data.images import ImageStore
from mml_backbones.data.prompts import DEFAULT_PROMPT, LANGUAGES, apply_prompt, canonical_language
from mml_backbones.data.splits import group_split
from mml_backbones.data.text import DEFAULT_MAX_VOCAB, tokenize_splits
from mml_backbones.errors import ConfigError, DataError, DataFileNotFoundError

log = logging.getLogger(__name__)

COLUMNS = ("art_style", "painting", "emotion", "utterance", "language", "split")
DEFAULT_LANGUAGES = ("english", "arabic", "chinese")
DEFAULT_TRANSFER = ("spanish",)
SPLIT_ALIASES = {"train": "train", "val": "val", "validation": "val", "valid": "val", "dev": "val", "test": "test"}
EMOTION_ALIASES = {**{e: e for e in EMOTIONS}, "other": "something else", "something_else": "something else"}


def _language_option(value: Sequence[str] | str | None, default: tuple[str, ...], name: str) -> tuple[str, ...]:
    if value is None:
        return default
    items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
    try:
        return tuple(dict.fromkeys(canonical_language(v) for v in items))
    except DataError as e:
        raise ConfigError(f"artelingo option {name}: {e}") from None


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        present = sorted(p.name for p in path.parent.glob("*.csv")) if path.parent.is_dir() else []
        raise DataFileNotFoundError(f"ArtELingo CSV not found: {path} (CSV files there: {present or 'none'})")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path} as CSV: {e}") from e
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; present: {list(df.columns)}; expected {list(COLUMNS)}")
    df = df[list(COLUMNS)].apply(lambda col: col.str.strip())
    df["row"] = np.arange(len(df)) + 2  # line in the file (the header is line 1)
    return df


def _validate(df: pd.DataFrame, path: Path, bad_rows: str) -> tuple[pd.DataFrame, int]:
    """Canonical language, emotion and split values; bad rows raise (or are dropped with bad_rows="drop")."""
    languages = df["language"].map({v: _try_language(v) for v in df["language"].unique()})
    emotions = df["emotion"].str.lower().map(EMOTION_ALIASES)
    splits = df["split"].str.lower().map(SPLIT_ALIASES)
    # what is wrong -> (rows, the column whose values to quote, what is valid)
    problems = {
        "unknown language": (languages.isna(), "language", f"known: {sorted(LANGUAGES)} or their ISO codes"),
        "unknown emotion": (emotions.isna(), "emotion", f"valid: {list(EMOTIONS)} (or 'other')"),
        "unknown split value": (splits.isna(), "split", f"valid: {sorted(SPLIT_ALIASES)}"),
        "empty comment (utterance)": (df["utterance"] == "", None, ""),
        "empty painting": (df["painting"] == "", None, ""),
        "empty art_style": (df["art_style"] == "", None, ""),
    }
    bad = np.zeros(len(df), dtype=bool)
    for what, (mask, column, valid) in problems.items():
        mask = mask.to_numpy()
        if not mask.any():
            continue
        if bad_rows == "error":
            values = f" (values {sorted(set(df[column][mask]))[:5]}; {valid})" if column else ""
            raise DataError(
                f"{path}: {what} in {int(mask.sum())} row(s), first at line(s) {df['row'][mask].tolist()[:5]}"
                f"{values}; load with bad_rows='drop' to skip such rows"
            )
        bad |= mask
    if bad.any():
        log.warning("artelingo: dropped %d bad rows of %s", int(bad.sum()), path)
    df = df.assign(language=languages, emotion=emotions, split=splits)
    return df[~bad].reset_index(drop=True), int(bad.sum())


def _try_language(value: str) -> str | None:
    try:
        return canonical_language(value)
    except DataError:
        return None


def _carve_val(df: pd.DataFrame, val_fraction: float, seed: int) -> str:
    """Move ``val_fraction`` of the train paintings (all their rows) to val; returns the rule for info."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    train = df["split"] == "train"
    n_train = df.loc[train, "key"].nunique()
    chosen = group_split(df.loc[train, "key"].to_numpy(), val_fraction, seed, what="train paintings")
    df.loc[train & df["key"].isin(chosen), "split"] = "val"
    return f"CSV split column; val = {len(chosen)} of {n_train} train paintings (seed {seed}), all their comments"


def _image_file(root: Path, art_style: str, painting: str) -> Path | None:
    # file names on disk may be NFC or NFD (the release's preprocessing normalises to NFD)
    for form in ("NFC", "NFD"):
        path = root / unicodedata.normalize(form, art_style) / f"{unicodedata.normalize(form, painting)}.jpg"
        if path.is_file():
            return path
    path = root / art_style / f"{painting}.jpg"
    return path if path.is_file() else None


def _load_images(root: Path, keys: Sequence[tuple[str, str]], size: int) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    if not root.is_dir():
        raise DataFileNotFoundError(f"image directory not found: {root} (or give image_features=FILE.npy)")
    files = [_image_file(root, style, painting) for style, painting in keys]
    missing = [f"{root / s / p}.jpg" for (s, p), f in zip(keys, files) if f is None]
    if missing:
        raise DataFileNotFoundError(f"{len(missing)} image(s) missing, e.g. {missing[:3]}")
    table = np.empty((len(keys), 3, size, size), dtype=np.uint8)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as im:
                rgb = im.convert("RGB").resize((size, size), Image.BILINEAR)
        except (OSError, UnidentifiedImageError) as e:
            raise DataError(f"cannot read image {path}: {e}") from e
        table[i] = np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)
    return torch.from_numpy(table)


def _load_features(path: Path, keys: Sequence[str]) -> torch.Tensor:
    keys_file = path.with_suffix(".txt")
    for p in (path, keys_file):
        if not p.is_file():
            raise DataFileNotFoundError(f"image features file not found: {p}")
    try:
        feats = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path} as .npy: {e}") from e
    names = [line.strip().removesuffix(".jpg") for line in keys_file.read_text(encoding="utf-8").splitlines()]
    names = [unicodedata.normalize("NFC", n) for n in names if n]
    if feats.ndim != 2 or not np.issubdtype(feats.dtype, np.number):
        raise DataError(f"{path}: expected a numeric (paintings, dims) array, got {feats.dtype} {feats.shape}")
    if len(names) != len(feats):
        raise DataError(f"{path} has {len(feats)} rows but {keys_file} lists {len(names)} paintings")
    if not np.isfinite(feats).all():
        raise DataError(f"{path} contains NaN or inf")
    row_of = {n: i for i, n in enumerate(names)}
    wanted = [unicodedata.normalize("NFC", k) for k in keys]
    missing = [k for k in wanted if k not in row_of]
    if missing:
        raise DataError(f"{len(missing)} painting(s) have no row in {keys_file}, e.g. {missing[:3]}")
    return torch.from_numpy(feats[[row_of[k] for k in wanted]].astype(np.float32))


def load_artelingo(
    data_dir: str | None = None,
    csv: str = "artelingo.csv",
    image_dir: str = "wikiart",
    image_features: str | None = None,
    image_size: int = 64,
    languages: Sequence[str] | str | None = None,
    transfer_languages: Sequence[str] | str | None = DEFAULT_TRANSFER,
    prompt: str = DEFAULT_PROMPT,
    tokenizer: str = "vocab",
    max_length: int = 64,
    max_vocab: int = DEFAULT_MAX_VOCAB,
    val_fraction: float = 0.1,
    bad_rows: Literal["error", "drop"] = "error",
    seed: int = 0,
) -> DatasetSplits:
    """Load ArtELingo from ``data_dir`` (see the module docstring for the layout, splits and options).

    Args:
        data_dir: the folder holding the CSV and the images or features.
        csv: the CSV file, relative to data_dir.
        image_dir: the WikiArt image folder, relative to data_dir.
        image_features: a .npy of per-painting features (with its .txt of keys) used instead of the images.
        image_size: side of the resized images.
        languages: languages to train and test on (a list or "english,arabic"); default english, arabic, chinese.
        transfer_languages: held-out languages scored as ``extra["transfer"]``; default spanish; None or "" for none.
        prompt: prompt template name or string (data/prompts.py); "none" is the no-prompt ablation.
        tokenizer: "vocab" (built from the train comments), "minilm" or a Hugging Face tokenizer directory.
        max_length: tokens per comment, start token included.
        max_vocab: largest vocabulary of the "vocab" tokenizer.
        val_fraction: share of train paintings moved to val when the CSV has no val rows.
        bad_rows: "error" (default) or "drop".
        seed: seed of the val carve-out.
    """
    if data_dir is None:
        raise DataError("dataset 'artelingo' needs data_dir=... (CLI: --data-dir DIR)")
    if bad_rows not in ("error", "drop"):
        raise ConfigError(f"bad_rows must be 'error' or 'drop', got {bad_rows!r}")
    if image_size < 8:
        raise ConfigError(f"image_size must be >= 8, got {image_size}")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataFileNotFoundError(f"ArtELingo data directory not found: {root}")
    langs = _language_option(languages, DEFAULT_LANGUAGES, "languages")
    transfer = _language_option(transfer_languages or (), (), "transfer_languages")
    overlap = sorted(set(langs) & set(transfer))
    if overlap:
        raise ConfigError(f"languages {overlap} are both trained on and held out for transfer")
    if not langs:
        raise ConfigError("artelingo: no training language selected")

    path = root / csv
    df, dropped = _validate(_read_csv(path), path, bad_rows)
    df = df[df["language"].isin(langs + transfer)].reset_index(drop=True)
    df["key"] = df["art_style"] + "/" + df["painting"]
    is_transfer = df["language"].isin(transfer)
    main = df[~is_transfer].copy()
    split_rule = "the CSV's split column"
    if not (main["split"] == "val").any():
        split_rule = _carve_val(main, val_fraction, seed)
    parts = {s: main[main["split"] == s] for s in ("train", "val", "test")}
    if not is_transfer.any():
        log.info("artelingo: no rows in transfer languages %s; no transfer split", list(transfer))
    else:
        parts["transfer"] = df[is_transfer]
    empty = [s for s, p in parts.items() if len(p) == 0]
    if empty:
        raise DataError(f"{path}: split(s) {empty} have no rows in languages {list(langs)}")

    keys = sorted(set().union(*(p["key"] for p in parts.values())))
    key_index = {k: i for i, k in enumerate(keys)}
    if image_features is not None:
        table = _load_features(root / image_features, keys)
        image_source = f"features {image_features} ({table.shape[1]} dims)"
    else:
        pairs = [tuple(k.split("/", 1)) for k in keys]
        table = _load_images(root / image_dir, pairs, image_size)
        image_source = f"{image_dir}/ images at {image_size}x{image_size}, ImageNet-normalised"

    texts = {
        s: apply_prompt(prompt, p["utterance"].tolist(), p["language"].tolist(), EMOTIONS) for s, p in parts.items()
    }
    ids, tok = tokenize_splits(texts, tokenizer=tokenizer, max_length=max_length, max_vocab=max_vocab)
    label_of = {e: i for i, e in enumerate(EMOTIONS)}
    out = {}
    for s, p in parts.items():
        index = torch.tensor([key_index[k] for k in p["key"]], dtype=torch.long)
        out[s] = MultimodalDataset(
            {"text": ids[s], "image": ImageStore(table, index)},
            torch.tensor([label_of[e] for e in p["emotion"]], dtype=torch.long),
            EMOTIONS,
            name=f"artelingo/{s}",
            meta={
                "language": p["language"].to_numpy(dtype=object),
                "painting": p["key"].to_numpy(dtype=object),
                "utterance": p["utterance"].to_numpy(dtype=object),
                "row": p["row"].to_numpy(),
            },
        )
    info = {
        "description": "ArtELingo: emotions of WikiArt paintings from the image and a comment",
        "csv": str(path),
        "split_rule": split_rule,
        "languages": list(langs),
        "transfer_languages": list(transfer) if "transfer" in parts else [],
        "rows_per_language": {s: p["language"].value_counts().to_dict() for s, p in parts.items()},
        "paintings": len(keys),
        "image_source": image_source,
        "prompt": prompt,
        "tokenizer": tok.describe(),
        # the from-scratch text encoder needs the size of the vocabulary built here
        "encoder_defaults": {"text": {"text": {"vocab_size": tok.vocab_size}}},
        "max_length": max_length,
        "dropped_rows": dropped,
    }
    extra = {"transfer": out.pop("transfer")} if "transfer" in out else {}
    return DatasetSplits(out["train"], out["val"], out["test"], info=info, extra=extra)


__all__ = ["COLUMNS", "load_artelingo"]
