"""The CREMA-D loader on tiny files written in the OGM-GE / BalanceBenchmark layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mml_backbones import cli
from mml_backbones.data import crema_d
from mml_backbones.data.crema_d import CLASS_NAMES, load_crema_d
from mml_backbones.data.dataset import ModalitySource
from mml_backbones.data.images import IMAGENET_MEAN, IMAGENET_STD, ImageStore
from mml_backbones.data.registry import load_dataset
from mml_backbones.errors import ConfigError, DataError, DataFileNotFoundError
from mml_backbones.models.model import ModelConfig
from mml_backbones.trainer import Trainer, TrainerConfig

ACTORS = (1001, 1002, 1003, 1004, 1005, 1006)
SENTENCES = ("DFA", "IEO", "IOM", "ITH", "ITS", "TAI")
FREQ = 16
SIZE = 16  # image_size used in the tests


def frame_colour(label: int, index: int) -> tuple[int, int, int]:
    """A flat colour that encodes the clip's class and the frame's position (JPEG keeps flat colours)."""
    return (40 * index + 20, 30 * label + 10, 200)


def make_crema_d(root: Path, fmt: str = "npy") -> dict[str, list[tuple[str, int]]]:
    """36 clips (6 actors x 6 emotions) in the preprocessed layout; returns the rows of train.csv and test.csv."""
    rows: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    rng = np.random.default_rng(0)
    (root / "audio").mkdir(parents=True)
    for a, actor in enumerate(ACTORS):
        for label, emotion in enumerate(CLASS_NAMES):
            clip = f"{actor}_{SENTENCES[(a + label) % 6]}_{emotion}_XX"
            split = "test" if (a + label) % 3 == 0 else "train"
            rows[split].append((clip, label))
            length = 24 if (a + label) % 4 else 20  # most clips 24 frames long, some shorter
            spec = (rng.normal(size=(FREQ, length)) + label).astype(np.float32)
            if fmt == "npy":
                np.save(root / "audio" / f"{clip}.npy", spec)
            else:
                torch.save(torch.from_numpy(spec.T.copy()), root / "audio" / f"{clip}.pt")  # (time, mel)
            folder = root / "visual" / clip
            folder.mkdir(parents=True)
            for i in range(3 if a % 2 else 2):  # 3 frames for some actors, 2 for the others
                Image.new("RGB", (20, 12), frame_colour(label, i)).save(folder / f"{30 * i:05d}.jpg", quality=95)
    for split, split_rows in rows.items():
        (root / f"{split}.csv").write_text("".join(f"{c},{CLASS_NAMES[y]}\n" for c, y in split_rows))
    return rows


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, dict[str, list[tuple[str, int]]]]:
    root = tmp_path / "CREMA-D"
    return root, make_crema_d(root)


def load(root: Path, **options: object):
    opts = {"image_size": SIZE, "val_fraction": 0.25, "cache": False, **options}
    return load_crema_d(str(root), **opts)


def test_shapes_dtypes_and_labels(data) -> None:
    root, rows = data
    s = load(root)
    assert s.class_names == CLASS_NAMES
    assert s.modality_names == ("audio", "visual")
    assert s.train.input_shape("audio") == (1, FREQ, 24)  # 24 is the most common train length
    assert s.train.input_shape("visual") == (1, 3, SIZE, SIZE)
    assert isinstance(s.train.modalities["visual"], ImageStore)
    assert isinstance(s.train.modalities["visual"], ModalitySource)
    for _, split in s.items():
        batch = split.batch(torch.arange(len(split)))
        assert batch["audio"].dtype == torch.float32 and batch["visual"].dtype == torch.float32
        assert batch["visual"].shape == (len(split), 1, 3, SIZE, SIZE)
    listed = dict(rows["train"] + rows["test"])
    for _, split in s.items():
        assert [listed[c] for c in split.meta["clip"]] == split.labels.tolist()
    assert s.sizes() == {"train": 18, "val": 6, "test": 12}
    # the audio carries the label as an offset, so after standardisation the class means still rise with the label
    x = s.train.modalities["audio"].mean(dim=(1, 2, 3))
    class_means = [float(x[s.train.labels == k].mean()) for k in range(6)]
    assert class_means == sorted(class_means)
    assert abs(float(s.train.modalities["audio"].mean())) < 1e-4
    assert s.info["options"]["frames"] == 1 and s.info["class_counts"]["val"] == [1] * 6


def test_registry_and_missing_data_dir_option() -> None:
    with pytest.raises(DataError, match="needs data_dir"):
        load_dataset("crema_d")
    with pytest.raises(ConfigError, match="no option"):
        load_dataset("crema_d", data_dir="x", fps=2)


def test_pt_filterbanks_are_read_as_mel_by_time(tmp_path: Path) -> None:
    npy, pt = tmp_path / "a", tmp_path / "b"
    make_crema_d(npy, "npy")
    make_crema_d(pt, "pt")
    a = load(npy, audio_standardise=False)
    b = load(pt, audio_standardise=False)
    assert b.train.input_shape("audio") == (1, FREQ, 24)
    assert torch.equal(a.test.modalities["audio"], b.test.modalities["audio"])
    assert ".pt files" in b.info["audio"]


def test_splits_disjoint_and_val_stratified(data) -> None:
    root, rows = data
    s = load(root)
    clips = {name: set(split.meta["clip"]) for name, split in s.items()}
    assert not clips["train"] & clips["val"] and not clips["train"] & clips["test"] and not clips["val"] & clips["test"]
    assert clips["train"] | clips["val"] == {c for c, _ in rows["train"]}
    assert clips["test"] == {c for c, _ in rows["test"]}
    assert s.val.class_counts().tolist() == [1] * 6  # 25% of the 4 train clips of each class
    again = load(root)
    assert list(again.val.meta["clip"]) == list(s.val.meta["clip"])
    other = load(root, seed=1)
    assert set(other.val.meta["clip"]) != clips["val"]
    assert "each class" in s.info["split_rule"]


def test_actor_split_is_speaker_disjoint(data) -> None:
    root, _ = data
    s = load(root, val_split="actor")
    train_actors, val_actors = set(s.train.meta["actor"]), set(s.val.meta["actor"])
    assert not train_actors & val_actors
    assert sorted(val_actors) == s.info["val_actors"]
    assert len(val_actors) == 2  # round(0.25 * 6)
    assert train_actors | val_actors == set(ACTORS)


def test_frames_evenly_spaced_deterministic_and_normalised(data) -> None:
    root, _ = data
    s = load(root, frames=2)
    visual = s.test.modalities["visual"]
    assert visual.sample_shape == (2, 3, SIZE, SIZE)
    raw = visual.stored(torch.arange(len(visual))).float()
    for i, (label, actor) in enumerate(zip(s.test.labels.tolist(), s.test.meta["actor"])):
        n = 3 if ACTORS.index(actor) % 2 else 2
        picked = [0, 2] if n == 3 else [0, 1]  # centres of 2 segments of 3 frames: 0 and 2; of 2 frames: 0 and 1
        for j, frame in enumerate(picked):
            colour = torch.tensor(frame_colour(label, frame), dtype=torch.float32)
            assert torch.allclose(raw[i, j].mean(dim=(1, 2)), colour, atol=3), (i, j)
    x = visual[torch.arange(len(visual))]
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(x, (raw / 255 - mean) / std, atol=1e-5)
    assert torch.equal(
        load(root, frames=2).test.modalities["visual"].stored(torch.arange(3)), visual.stored(torch.arange(3))
    )
    middle = load(root, frames=1).test.modalities["visual"].stored(torch.arange(len(visual))).float()
    for i, (label, actor) in enumerate(zip(s.test.labels.tolist(), s.test.meta["actor"])):
        frame = 1  # the middle of 3 frames is 1; of 2 frames, (2 * 0 + 1) * 2 // 2 = 1
        colour = torch.tensor(frame_colour(label, frame), dtype=torch.float32)
        assert torch.allclose(middle[i, 0].mean(dim=(1, 2)), colour, atol=3), (i, actor)


def test_subset_shares_frames_and_keeps_rows(data) -> None:
    root, _ = data
    s = load(root)
    sub = s.train.subset([5, 0, 3], name="part")
    visual = sub.modalities["visual"]
    assert isinstance(visual, ImageStore) and visual.table is s.train.modalities["visual"].table
    assert torch.equal(sub.batch(torch.arange(3))["visual"], s.train.batch(torch.tensor([5, 0, 3]))["visual"])
    assert list(sub.meta["clip"]) == [s.train.meta["clip"][i] for i in (5, 0, 3)]
    assert visual[torch.tensor(1)].shape == (1, 3, SIZE, SIZE)  # a single index gives one sample
    assert visual[torch.tensor([], dtype=torch.long)].shape == (0, 1, 3, SIZE, SIZE)


def test_audio_length_and_padding(data) -> None:
    root, _ = data
    s = load(root, audio_length=30, audio_pad="zeros", audio_standardise=False)
    assert s.train.input_shape("audio") == (1, FREQ, 30)
    audio = s.train.modalities["audio"]
    assert torch.all(audio[:, :, :, 24:] == 0)
    r = load(root, audio_length=30, audio_pad="repeat", audio_standardise=False).train.modalities["audio"]
    lengths = (audio != 0).any(dim=2).sum(dim=-1).flatten().tolist()
    assert sorted(set(lengths)) == [20, 24]
    for i, length in enumerate(lengths):  # the clip wraps around
        assert torch.equal(r[i, :, :, length:30], r[i, :, :, : 30 - length])
    short = load(root, audio_length=8, audio_standardise=False).train.modalities["audio"]
    assert torch.equal(short, r[:, :, :, :8])  # cropping keeps the first frames


def test_ogm_ge_folder_names_and_absolute_dirs(data, tmp_path: Path) -> None:
    root, _ = data
    (root / "visual").rename(root / "Image-01-FPS")
    (root / "audio").rename(tmp_path / "specs")
    with pytest.raises(
        DataFileNotFoundError, match=r"no CREMA-D audio directory .* looked for \['audio', 'audio_spec'\]"
    ):
        load(root)
    s = load(root, audio_dir=str(tmp_path / "specs"))
    assert s.info["paths"]["visual_dir"] == str(root / "Image-01-FPS")
    assert s.info["paths"]["audio_dir"] == str(tmp_path / "specs")
    (root / "visual").mkdir()
    (root / "Image-01-FPS").rename(root / "visual" / "Image-01-FPS")  # OGM-GE: visual_path/Image-01-FPS/<clip>
    assert load(root, audio_dir=str(tmp_path / "specs")).info["paths"]["visual_dir"].endswith("visual/Image-01-FPS")


def test_bom_header_and_lowercase_labels(data) -> None:
    root, rows = data
    text = (root / "train.csv").read_text()
    (root / "train.csv").write_text("\ufeffclip_id,label\n" + text.replace(",ANG", ",ang"), encoding="utf-8")
    s = load(root)
    assert len(s.train) + len(s.val) == len(rows["train"])


def corrupt(root: Path, rows: dict[str, list[tuple[str, int]]], case: str) -> None:
    clip = rows["train"][0][0]
    if case == "no_csv":
        (root / "test.csv").unlink()
    elif case == "unknown_label":
        with (root / "train.csv").open("a") as f:
            f.write("1001_XXX_ANG_XX,ANGRY\n")
    elif case == "malformed_row":
        with (root / "train.csv").open("a") as f:
            f.write("1001_XXX_ANG_XX\n")
    elif case == "bad_npy":
        (root / "audio" / f"{clip}.npy").write_bytes(b"not a numpy file")
    elif case == "torn_npy":
        path = root / "audio" / f"{clip}.npy"
        path.write_bytes(path.read_bytes()[:200])
    elif case == "freq_mismatch":
        np.save(root / "audio" / f"{clip}.npy", np.zeros((FREQ + 1, 24), dtype=np.float32))
    elif case == "waveform":
        np.save(root / "audio" / f"{clip}.npy", np.zeros(100, dtype=np.float32))
    elif case == "nan":
        np.save(root / "audio" / f"{clip}.npy", np.full((FREQ, 24), np.nan, dtype=np.float32))
    elif case == "bad_jpg":
        (root / "visual" / clip / "00030.jpg").write_bytes(b"\xff\xd8 broken")  # the middle frame, the one read
    elif case == "empty_dir":
        for f in (root / "visual" / clip).iterdir():
            f.unlink()
    elif case == "no_audio":
        (root / "audio" / f"{clip}.npy").unlink()
    elif case == "both_formats":
        torch.save(torch.zeros(24, FREQ), root / "audio" / f"{clip}.pt")
    elif case == "wav_only":
        for f in (root / "audio").iterdir():
            f.rename(f.with_suffix(".wav"))
    elif case == "overlap":
        with (root / "test.csv").open("a") as f:
            f.write(f"{clip},{CLASS_NAMES[rows['train'][0][1]]}\n")


ERRORS = {
    "no_csv": (DataFileNotFoundError, r"list file not found: .*test\.csv"),
    "unknown_label": (DataError, r"train\.csv, line 25: unknown label 'ANGRY'"),
    "malformed_row": (DataError, r"train\.csv, line 25: expected 'clip_id,LABEL'"),
    "bad_npy": (DataError, r"^[^:]*\.npy is not a \.npy file \(no NUMPY header\)"),
    "torn_npy": (DataError, r"cannot read spectrogram .*\.npy"),
    "freq_mismatch": (DataError, r"frequency sizes differ \(35 with 16, 1 with 17 bins\); e\.g\. \[.*\.npy'\]"),
    "waveform": (DataError, r"expected a 2-D spectrogram .* got shape \(100,\)"),
    "nan": (DataError, r"contains NaN"),
    "bad_jpg": (DataError, r"cannot read frame .*00030\.jpg"),
    "empty_dir": (DataError, r"1 of 36 listed clips lack data \(1 whose frame folder has no frames"),
    "no_audio": (DataError, r"1 of 36 listed clips lack data \(1 without a spectrogram file\); first: .*\.npy"),
    "both_formats": (DataError, r"both \.npy \(36\) and \.pt \(1\)"),
    "wav_only": (DataError, r"no spectrograms .* found 36 \.wav\. Raw audio is not read"),
    "overlap": (DataError, r"1 clip\(s\) listed in both train and test"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors_name_the_problem(data, case: str) -> None:
    root, rows = data
    corrupt(root, rows, case)
    error, message = ERRORS[case]
    with pytest.raises(error, match=message):
        load(root)


def test_other_errors(tmp_path: Path, data) -> None:
    root, rows = data
    with pytest.raises(DataFileNotFoundError, match="data_dir not found"):
        load(tmp_path / "nowhere")
    with pytest.raises(DataFileNotFoundError, match="visual directory not found"):
        load(root, visual_dir="frames")
    with pytest.raises(ConfigError, match="val_split must be one of"):
        load(root, val_split="random")
    with pytest.raises(ConfigError, match="frames must be a positive integer"):
        load(root, frames=0)
    with pytest.raises(ConfigError, match="skip_missing must be true or false, got 'False'"):
        load(root, skip_missing="False")  # e.g. --dataset-option skip_missing=False (JSON spells it false)
    with pytest.raises(DataError, match="leaves 24 train and 0 val clips"):
        load(root, val_fraction=0.05)
    pt = tmp_path / "pt"
    make_crema_d(pt, "pt")
    torch.save({"fbank": torch.zeros(3)}, pt / "audio" / f"{rows['train'][0][0]}.pt")
    with pytest.raises(DataError, match=r"^[^:]*\.pt: expected a tensor, found a dict$"):
        load(pt)
    (pt / "audio" / f"{rows['train'][0][0]}.pt").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"cannot read spectrogram .*\.pt"):
        load(pt)


def test_skip_missing_counts_what_it_skips(data) -> None:
    root, rows = data
    corrupt(root, rows, "no_audio")
    test_clip = rows["test"][0][0]
    for f in (root / "visual" / test_clip).iterdir():
        f.unlink()
    s = load(root, skip_missing=True)
    assert len(s.train) + len(s.val) == len(rows["train"]) - 1 and len(s.test) == len(rows["test"]) - 1
    assert s.info["skipped"]["train"] == {"no_audio": 1, "no_frame_dir": 0, "no_frames": 0}
    assert s.info["skipped"]["test"] == {"no_audio": 0, "no_frame_dir": 0, "no_frames": 1}
    assert rows["train"][0][0] not in set(s.train.meta["clip"]) | set(s.val.meta["clip"])


def test_cache_is_used_and_a_torn_file_is_rebuilt(data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = data
    first = load(root, cache=True)
    files = list((tmp_path / "cache").glob("crema_d_*.npz"))
    assert len(files) == 1

    def fail(*args: object) -> None:
        raise AssertionError("frames were decoded again although the cache holds them")

    with monkeypatch.context() as m:
        m.setattr(crema_d, "read_frame", fail)
        cached = load(root, cache=True)
    assert torch.equal(cached.test.batch(torch.arange(4))["visual"], first.test.batch(torch.arange(4))["visual"])
    assert torch.equal(cached.test.modalities["audio"], first.test.modalities["audio"])
    files[0].write_bytes(files[0].read_bytes()[:1000])  # torn
    rebuilt = load(root, cache=True)
    assert torch.equal(rebuilt.test.modalities["audio"], first.test.modalities["audio"])
    assert files[0].stat().st_size > 1000
    load(root, cache=True, image_size=8)  # other options, other file
    assert len(list((tmp_path / "cache").glob("crema_d_*.npz"))) == 2


def test_trainer_fits_and_evaluates(data) -> None:
    root, _ = data
    config = TrainerConfig(
        dataset="crema_d",
        dataset_options={"data_dir": str(root), "image_size": SIZE, "val_fraction": 0.25, "frames": 2, "cache": False},
        method="ogm_ge",
        epochs=1,
        batch_size=8,
        model=ModelConfig(encoder_options={"*": {"width": 4}}, feature_dim=16),
    )
    trainer = Trainer(config)
    result = trainer.fit(progress=False)
    assert 0.0 <= result.test["fused_acc"] <= 1.0 and "acc/visual" in result.val
    assert trainer.iterations_per_epoch == 3  # ceil(18 / 8)


def test_cli_train(data, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = data
    argv = ["train", "--dataset", "crema_d", "--data-dir", str(root), "--method", "ogm_ge", "--epochs", "1"]
    argv += ["--batch-size", "8", "--feature-dim", "16", "--no-progress", "--out", str(tmp_path / "run")]
    argv += ["--dataset-option", f"image_size={SIZE}", "--dataset-option", "val_fraction=0.25"]
    assert cli.main(argv) == 0
    assert "fused_acc" in capsys.readouterr().out
    written = json.loads((tmp_path / "run" / "config.json").read_text())["dataset"]  # info must be JSON
    assert written["sizes"] == {"train": 18, "val": 6, "test": 12} and written["options"]["data_dir"] == str(root)
    argv[argv.index("--data-dir") + 1] = str(tmp_path / "nowhere")
    argv[argv.index("--out") + 1] = str(tmp_path / "run2")
    assert cli.main(argv) == 2
    assert "data_dir not found" in capsys.readouterr().err
