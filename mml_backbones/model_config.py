"""The architecture of a MultimodalModel as a config (torch-free, so that the command line reads it cheaply)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a MultimodalModel.

    Attributes:
        encoder: encoder for every modality; None picks one by input shape (mlp for vectors, cnn1d for
            (channels, time), resnet2d for images, spectrograms and frame clips, text for token ids).
        encoders: per-modality encoder names, overriding ``encoder``.
        encoder_options: keyword options for the encoders, per modality name or under "*" for all.
        feature_dim: size of every encoder's output features.
        fusion: fusion module name (concat, sum, film, gated, late); None: the method's recommended fusion
            (resolved by ``TrainerConfig.resolved``), else concat.
        fusion_options: keyword options for the fusion module.
    """

    encoder: str | None = None
    encoders: dict[str, str] = field(default_factory=dict)
    encoder_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    feature_dim: int = 128
    fusion: str | None = None
    fusion_options: dict[str, Any] = field(default_factory=dict)
