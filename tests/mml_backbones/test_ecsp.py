"""ECSP: the text + fusion ensemble, weight selection on validation, per-language metrics, TTA, sampling; the
synthetic emotion task it is shown on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mml_backbones.data.dataset import DatasetSplits, MultimodalDataset
from mml_backbones.data.emotion_synthetic import EmotionSyntheticSpec, bayes_accuracy, load_emotion_synthetic
from mml_backbones.data.registry import load_dataset
from mml_backbones.errors import ConfigError
from mml_backbones.methods import Predictions, method_config
from mml_backbones.methods.base import IterationBatch, softmax
from mml_backbones.methods.ecsp import ECSP, ECSPConfig
from mml_backbones.models.model import ModelOutput
from mml_backbones.trainer import Trainer, TrainerConfig

SMALL = {"n_train": 90, "n_val": 45, "n_test": 45}


@pytest.fixture(scope="module")
def small_splits() -> DatasetSplits:
    return load_emotion_synthetic(seed=0, **SMALL)


def _trainer(splits: DatasetSplits, **method_options: object) -> Trainer:
    config = TrainerConfig(method="ecsp", method_options=method_options, epochs=1, batch_size=8, seed=0)
    return Trainer(config, splits)


def test_emotion_synthetic_is_deterministic_in_its_seed(small_splits: DatasetSplits) -> None:
    again = load_emotion_synthetic(seed=0, **SMALL)
    other = load_emotion_synthetic(seed=1, **SMALL)
    assert torch.equal(small_splits.train.modalities["text"], again.train.modalities["text"])
    assert torch.equal(small_splits.test.modalities["image"], again.test.modalities["image"])
    assert not torch.equal(small_splits.train.modalities["image"], other.train.modalities["image"])
    assert small_splits.train.input_shape("image") == (3, 16, 16)
    assert set(small_splits.train.meta["language"]) == {"english", "arabic", "chinese"}
    # the same comments, with and without the prompt
    plain = load_emotion_synthetic(seed=0, prompt="none", **SMALL)
    assert list(plain.train.meta["utterance"]) == list(small_splits.train.meta["utterance"])
    assert (plain.train.modalities["text"] != 0).sum(1).max() < (small_splits.train.modalities["text"] != 0).sum(
        1
    ).min()
    # no painting in two splits
    assert not set(small_splits.train.meta["painting"]) & set(small_splits.test.meta["painting"])


def test_the_language_disambiguates_the_words_by_construction() -> None:
    bayes = bayes_accuracy(EmotionSyntheticSpec())
    assert bayes["text_with_language"]["accuracy"] > bayes["text_without_language"]["accuracy"] + 0.25
    assert bayes["all_with_language"]["accuracy"] > bayes["text_with_language"]["accuracy"] + 0.05
    assert bayes["image"]["accuracy"] < bayes["text_with_language"]["accuracy"]
    assert load_dataset("emotion_synthetic", **SMALL).info["bayes_accuracy"]["image"] == bayes["image"]["accuracy"]


def test_config_is_validated_and_needs_the_text_modality(small_splits: DatasetSplits) -> None:
    with pytest.raises(ConfigError, match="weight_grid"):
        ECSPConfig(weight_grid=(0.5, 1.5))
    with pytest.raises(ConfigError, match="both 0"):
        ECSPConfig(text_loss_weight=0.0, fusion_loss_weight=0.0)
    with pytest.raises(ConfigError, match="tta"):
        method_config("ecsp", {"tta": "rotate"})
    with pytest.raises(ConfigError, match="text_modality 'comment'"):
        _trainer(small_splits, text_modality="comment")
    assert _trainer(small_splits).method.text_modality == "text"
    # without a text modality "auto" falls back to the first modality (ECSP on any data)
    other = TrainerConfig(method="ecsp", epochs=1, dataset_options={"n_train": 64, "n_val": 32, "n_test": 32})
    assert Trainer(other).method.text_modality == "strong"


def _predictions() -> Predictions:
    """Text head right on rows 0-3 only, fusion head right on rows 4-7 only, the other's wrong answer weak."""
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    text = np.full((8, 3), 0.0)
    fused = np.full((8, 3), 0.0)
    for i, y in enumerate(labels):
        strong, weak = (text, fused) if i < 4 else (fused, text)
        strong[i, y] = 3.0
        weak[i, (y + 1) % 3] = 1.0
    lang = np.array(["english"] * 4 + ["arabic"] * 4, dtype=object)
    return Predictions(labels, fused, {"text": text, "image": np.zeros((8, 3))}, {"language": lang})


def test_weight_is_chosen_on_validation_and_used_for_the_scores(small_splits: DatasetSplits) -> None:
    method = _trainer(small_splits, text_weight=0.9).method
    assert isinstance(method, ECSP)
    pred = _predictions()
    assert method.fused_scores(pred).argmax(1).tolist() != pred.labels.tolist()  # w = 0.9 trusts the text
    chosen = method.select_on_validation(pred)
    # each branch alone gets half right; every w in [0.3, 0.7] gets all right; the one nearest 0.9 wins
    assert chosen["text_weight"] == 0.7 and chosen["val_macro_f1"] == 1.0
    scores = method.fused_scores(pred)
    expected = 0.7 * softmax(pred.unimodal_logits["text"]) + 0.3 * softmax(pred.fused_logits)
    np.testing.assert_allclose(scores, expected)
    assert scores.argmax(1).tolist() == pred.labels.tolist()
    assert method.state_dict() == {"text_weight": 0.7}
    fixed = _trainer(small_splits, select_weight=False, text_weight=0.0).method
    assert fixed.select_on_validation(pred) == {"text_weight": 0.0}
    np.testing.assert_allclose(fixed.fused_scores(pred), softmax(pred.fused_logits))


def test_extra_metrics_give_branches_and_languages(small_splits: DatasetSplits) -> None:
    method = _trainer(small_splits, select_weight=False, text_weight=1.0).method
    pred = _predictions()
    metrics = method.extra_metrics(pred, method.fused_scores(pred))
    assert metrics["acc/english"] == 1.0 and metrics["acc/arabic"] == 0.0  # the text head alone
    assert metrics["text_branch/acc"] == 0.5 and metrics["fusion_branch/acc"] == 0.5
    assert metrics["ecsp/text_weight"] == 1.0


def test_runs_under_non_uniform_quantities_with_its_own_losses(small_splits: DatasetSplits) -> None:
    trainer = _trainer(small_splits)
    seen = {}
    original = trainer.method.losses

    def spy(output: ModelOutput, batch: IterationBatch) -> dict[str, torch.Tensor]:
        seen["rows"] = {m: len(v) for m, v in output.unimodal_logits.items()}
        seen["fused"] = len(output.fused_logits)
        return original(output, batch)

    trainer.method.losses = spy
    trainer.run_iterations(3, {"text": 5, "image": 13})
    assert seen == {"rows": {"text": 5, "image": 13}, "fused": 5}
    losses = trainer.pop_train_losses()
    assert set(losses) == {"fused", "unimodal/text", "monitor/image"}
    assert all(np.isfinite(v) for v in losses.values())
    assert trainer.statistics.samples.tolist() == [15, 39]


def test_image_encoder_learns_through_the_fusion_branch_only(small_splits: DatasetSplits) -> None:
    trainer = _trainer(small_splits, fusion_loss_weight=0.0)
    trainer.run_iterations(1, {"text": 8, "image": 8})
    image_grads = [p.grad for p in trainer.model.encoders["image"].parameters()]
    assert all(g is None or not g.any() for g in image_grads)  # the image head is a detached monitor
    assert any(p.grad is not None and p.grad.any() for p in trainer.model.encoders["text"].parameters())


def test_hflip_tta_averages_the_mirror_at_evaluation(small_splits: DatasetSplits) -> None:
    trainer = _trainer(small_splits, tta="hflip")
    encoder = trainer.model.encoders["image"].eval()
    x = small_splits.val.batch(torch.arange(4))["image"]
    with torch.no_grad():
        expected = (encoder.forward(x) + encoder.forward(torch.flip(x, dims=(-1,)))) / 2
        np.testing.assert_allclose(encoder(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
        encoder.train()
        assert encoder(x).shape == expected.shape
    flat = DatasetSplits(
        *(
            MultimodalDataset(
                {"text": d.modalities["text"], "image": d.modalities["image"].flatten(1)}, d.labels, d.class_names
            )
            for d in (small_splits.train, small_splits.val, small_splits.test)
        )
    )
    with pytest.raises(ConfigError, match="hflip"):
        _trainer(flat, tta="hflip")


def test_fit_reports_the_weight_and_per_language_metrics(small_splits: DatasetSplits) -> None:
    result = _trainer(small_splits).fit(progress=False)
    assert 0.0 <= result.selected["text_weight"] <= 1.0
    assert {"f1/english", "acc/arabic", "text_branch/macro_f1", "fusion_branch/macro_f1"} <= set(result.test)
    assert result.test["ecsp/text_weight"] == result.selected["text_weight"]
