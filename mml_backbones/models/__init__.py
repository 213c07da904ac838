"""Encoders, fusion modules and the multimodal model."""

from mml_backbones.models.encoders import ENCODERS, Encoder, build_encoder
from mml_backbones.models.fusion import FUSIONS, Fusion, build_fusion
from mml_backbones.models.model import ModelConfig, ModelOutput, MultimodalModel, build_model

__all__ = [
    "ENCODERS",
    "FUSIONS",
    "Encoder",
    "Fusion",
    "ModelConfig",
    "ModelOutput",
    "MultimodalModel",
    "build_encoder",
    "build_fusion",
    "build_model",
]
