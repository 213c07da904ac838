"""Encoders, fusion modules and the multimodal model."""

from mml_backbones.models.encoders import ENCODERS, Encoder, build_encoder
from mml_backbones.models.fusion import FUSIONS, Fusion, build_fusion
from mml_backbones.models.model import ModelConfig, ModelOutput, MultimodalModel, build_model
from mml_backbones.models.text import HFTextEncoder, MiniLMEncoder, TransformerTextEncoder  # registers text encoders

__all__ = [
    "ENCODERS",
    "FUSIONS",
    "Encoder",
    "Fusion",
    "HFTextEncoder",
    "MiniLMEncoder",
    "ModelConfig",
    "ModelOutput",
    "MultimodalModel",
    "TransformerTextEncoder",
    "build_encoder",
    "build_fusion",
    "build_model",
]
