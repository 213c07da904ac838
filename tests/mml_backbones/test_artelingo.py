"""The ArtELingo loader on a small fixture written in the public layout (CSV + wikiart/{style}/{painting}.jpg)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mml_backbones.cli import main
from mml_backbones.data.artelingo import COLUMNS, load_artelingo
from mml_backbones.data.emotions import EMOTIONS
from mml_backbones.data.registry import load_dataset
from mml_backbones.errors import ConfigError, DataError, DataFileNotFoundError

COMMENTS = {
    "english": ["the colours make me feel calm", "a dark and scary scene", "what a funny face"],
    "arabic": ["ألوان هادئة ومريحة", "مشهد مظلم ومخيف", "وجه مضحك جدا"],
    "chinese": ["颜色让我感到平静", "黑暗可怕的场景", "有趣的脸"],
    "spanish": ["colores tranquilos", "una escena oscura"],
}
# (split, number of paintings): every painting gets one comment per language in that split
LAYOUT = (("train", 6), ("val", 2), ("test", 2))


def write_fixture(root: Path, with_val: bool = True) -> Path:
    """A CSV of a few dozen rows in en/ar/zh (+ es for transfer) and one tiny JPEG per painting."""
    rng = np.random.default_rng(0)
    rows = []
    k = 0
    for split, n in LAYOUT:
        for _ in range(n):
            style = ("Impressionism", "Baroque")[k % 2]
            painting = f"artist-{k}_painting-{k}"
            image_dir = root / "wikiart" / style
            image_dir.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(image_dir / f"{painting}.jpg")
            for j, lang in enumerate(("english", "arabic", "chinese")):
                emotion = EMOTIONS[(k + j) % len(EMOTIONS)]
                rows.append((style, painting, emotion, COMMENTS[lang][(k + j) % 3], lang, split))
            if split == "test":
                rows.append((style, painting, "awe", COMMENTS["spanish"][k % 2], "spanish", "test"))
            k += 1
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df.loc[0, "emotion"] = "Other"  # the authors' loader reads "other" as "something else"
    df.loc[1, "language"] = "ar"  # ISO codes are accepted
    if not with_val:
        df.loc[df["split"] == "val", "split"] = "train"
    path = root / "artelingo.csv"
    df.to_csv(path, index=False)
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    write_fixture(tmp_path)
    return tmp_path


def _edit_csv(data_dir: Path, row: int, column: str, value: str) -> None:
    path = data_dir / "artelingo.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[row, column] = value
    df.to_csv(path, index=False)


def test_loads_splits_modalities_and_meta(data_dir: Path) -> None:
    s = load_artelingo(str(data_dir), image_size=16, max_length=20)
    assert s.sizes() == {"train": 18, "val": 6, "test": 6, "transfer": 2}
    assert s.modality_names == ("text", "image") and s.class_names == EMOTIONS
    assert s.train.input_shape("image") == (3, 16, 16) and s.train.input_shape("text") == (20,)
    assert s.train.modalities["text"].dtype == torch.int64
    batch = s.train.batch(torch.arange(4))
    assert batch["image"].dtype == torch.float32 and torch.isfinite(batch["image"]).all()
    assert s.train.labels[0].item() == EMOTIONS.index("something else")
    assert set(s.train.meta["language"]) == {"english", "arabic", "chinese"}
    assert set(s.extra["transfer"].meta["language"]) == {"spanish"}
    assert s.train.meta["language"][1] == "arabic"  # "ar" read as arabic
    assert s.info["split_rule"] == "the CSV's split column"
    assert s.info["tokenizer"]["kind"] == "vocab" and s.info["tokenizer"]["pad_id"] == 0


def test_same_painting_gives_the_same_image_and_prompts_change_the_text(data_dir: Path) -> None:
    s = load_artelingo(str(data_dir), image_size=16)
    paintings = s.train.meta["painting"]
    same = np.flatnonzero(paintings == paintings[0])
    images = s.train.batch(torch.as_tensor(same))["image"]
    assert len(same) == 3 and torch.equal(images[0], images[1])
    plain = load_artelingo(str(data_dir), image_size=16, prompt="none")
    assert (plain.train.modalities["text"] != 0).sum() < (s.train.modalities["text"] != 0).sum()


def test_val_is_carved_from_train_by_painting_when_the_csv_has_none(tmp_path: Path) -> None:
    write_fixture(tmp_path, with_val=False)
    s = load_artelingo(str(tmp_path), image_size=16, val_fraction=0.25)
    train, val = set(s.train.meta["painting"]), set(s.val.meta["painting"])
    assert len(val) == 2 and not train & val
    assert len(s.val) == 6 and "val = 2 of 8 train paintings" in s.info["split_rule"]


def test_language_filter_and_transfer_option(data_dir: Path) -> None:
    s = load_artelingo(str(data_dir), image_size=16, languages="english,zh")
    assert set(s.train.meta["language"]) == {"english", "chinese"}
    assert len(s.extra["transfer"]) == 2
    assert load_artelingo(str(data_dir), image_size=16, transfer_languages=None).extra == {}
    with pytest.raises(ConfigError, match="both trained on and held out"):
        load_artelingo(str(data_dir), languages=["english", "spanish"])
    with pytest.raises(ConfigError, match="unknown language 'hindi'"):
        load_artelingo(str(data_dir), languages="hindi")


def test_precomputed_image_features(data_dir: Path) -> None:
    df = pd.read_csv(data_dir / "artelingo.csv")
    keys = sorted(set(df["art_style"] + "/" + df["painting"]))
    feats = np.arange(len(keys) * 5, dtype=np.float32).reshape(len(keys), 5)
    np.save(data_dir / "clip.npy", feats)
    (data_dir / "clip.txt").write_text("\n".join(f"{k}.jpg" for k in keys))
    s = load_artelingo(str(data_dir), image_features="clip.npy")
    assert s.train.input_shape("image") == (5,)
    first = s.train.batch(torch.tensor([0]))["image"][0]
    assert torch.equal(first, torch.from_numpy(feats[keys.index(s.train.meta["painting"][0])]))
    (data_dir / "clip.txt").write_text("\n".join([*keys[1:], "Other/extra"]))
    with pytest.raises(DataError, match="no row in"):
        load_artelingo(str(data_dir), image_features="clip.npy")


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("language", "klingon", r"unknown language in 1 row\(s\), first at line\(s\) \[5\] \(values \['klingon'\]"),
        ("emotion", "boredom", r"unknown emotion .*line\(s\) \[5\].*'boredom'"),
        ("utterance", "   ", r"empty comment .*line\(s\) \[5\]"),
        ("split", "holdout", r"unknown split value .*'holdout'"),
    ],
)
def test_bad_rows_raise_naming_the_line(data_dir: Path, column: str, value: str, message: str) -> None:
    _edit_csv(data_dir, 3, column, value)
    with pytest.raises(DataError, match=message):
        load_artelingo(str(data_dir), image_size=16)
    s = load_artelingo(str(data_dir), image_size=16, bad_rows="drop")
    assert s.info["dropped_rows"] == 1 and len(s.train) == 17


def test_missing_files_and_columns(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    image = next((data_dir / "wikiart" / "Baroque").glob("*.jpg"))
    image.unlink()
    with pytest.raises(DataFileNotFoundError, match=r"1 image\(s\) missing"):
        load_artelingo(str(data_dir), image_size=16)
    with pytest.raises(DataFileNotFoundError, match="CSV not found"):
        load_artelingo(str(data_dir), csv="nope.csv")
    with pytest.raises(DataError, match="needs data_dir"):
        load_artelingo()
    df = pd.read_csv(data_dir / "artelingo.csv").drop(columns=["split", "emotion"])
    df.to_csv(data_dir / "artelingo.csv", index=False)
    with pytest.raises(DataError, match=r"missing column\(s\) \['emotion', 'split'\]"):
        load_artelingo(str(data_dir))


def test_registered_and_trained_with_ecsp_from_the_cli(data_dir: Path, tmp_path: Path) -> None:
    assert load_dataset("artelingo", data_dir=str(data_dir), image_size=16).sizes()["transfer"] == 2
    out = tmp_path / "run"
    argv = [
        "train",
        "--dataset",
        "artelingo",
        "--data-dir",
        str(data_dir),
        "--method",
        "ecsp",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--dataset-option",
        "image_size=16",
        "--dataset-option",
        "max_length=16",
        "--out",
        str(out),
        "--no-progress",
        "--threads",
        "1",
    ]
    assert main(argv) == 0
    final = json.loads((out / "final.json").read_text())
    assert "f1/english" in final["test"] and "acc/chinese" in final["test"]
    assert "f1/spanish" in final["extra/transfer"]
    assert 0.0 <= final["selected_on_validation"]["text_weight"] <= 1.0
