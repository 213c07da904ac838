"""The multimodal model: one encoder and one unimodal head per modality, a fusion module and a fusion head."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mml_backbones.data.dataset import MultimodalDataset
from mml_backbones.errors import ConfigError
from mml_backbones.model_config import ModelConfig
from mml_backbones.models.encoders import build_encoder, default_encoder_name
from mml_backbones.models.fusion import Fusion, build_fusion
from mml_backbones.models.layers import Linear


@dataclass
class ModelOutput:
    """What one forward pass returns.

    Attributes:
        fused_logits: (n_paired, K) logits of the fusion head on the paired prefix; None when n_paired is 0.
        unimodal_logits: per modality, (n_m, K) logits of its own head on all of its samples.
        features: per modality, (n_m, D) encoder features.
    """

    fused_logits: torch.Tensor | None
    unimodal_logits: dict[str, torch.Tensor]
    features: dict[str, torch.Tensor]


class MultimodalModel(nn.Module):
    """Encoders, unimodal heads and a fusion head; modalities may come with different batch sizes."""

    def __init__(self, encoders: Mapping[str, nn.Module], num_classes: int, fusion: Fusion) -> None:
        super().__init__()
        self.modalities = tuple(encoders)
        self.num_classes = num_classes
        self.encoders = nn.ModuleDict(encoders)
        self.heads = nn.ModuleDict({m: Linear(e.feature_dim, num_classes) for m, e in encoders.items()})
        self.fusion = fusion
        self.fusion_head = None if fusion.consumes_logits else Linear(fusion.output_dim, num_classes)

    def encode(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Features of each modality present in ``inputs``."""
        unknown = [m for m in inputs if m not in self.encoders]
        if unknown:
            raise ConfigError(f"unknown modality {unknown}; the model has {list(self.modalities)}")
        return {m: self.encoders[m](x) for m, x in inputs.items()}

    def fuse(self, features: Mapping[str, torch.Tensor], unimodal_logits: Mapping[str, torch.Tensor], n: int):
        """Fused logits of the first ``n`` samples (the paired prefix)."""
        if self.fusion.consumes_logits:
            return self.fusion({m: unimodal_logits[m][:n] for m in self.modalities})
        return self.fusion_head(self.fusion({m: features[m][:n] for m in self.modalities}))

    def forward(
        self,
        inputs: Mapping[str, torch.Tensor],
        n_paired: int | None = None,
        detach_unimodal: bool = False,
    ) -> ModelOutput:
        """Encode every modality, apply its head, and fuse the first ``n_paired`` samples of all modalities.

        Args:
            inputs: modality -> (n_m, *shape); the first n_paired rows of every modality are the same samples.
            n_paired: size of the paired prefix; defaults to the smallest batch.
            detach_unimodal: train the unimodal heads without sending their gradient into the encoders
                (monitor heads for methods that use the fusion loss only).
        """
        features = self.encode(inputs)
        unimodal = {m: self.heads[m](f.detach() if detach_unimodal else f) for m, f in features.items()}
        missing = [m for m in self.modalities if m not in features]
        smallest = min(len(f) for f in features.values())
        n = smallest if n_paired is None else n_paired
        if n > smallest:
            raise ValueError(f"n_paired={n} exceeds the smallest modality batch ({smallest})")
        fused = None
        if n > 0 and not missing:
            fused = self.fuse(features, unimodal, n)
        return ModelOutput(fused, unimodal, features)

    def contributions(self, features: Mapping[str, torch.Tensor], n: int) -> dict[str, torch.Tensor] | None:
        """Per-modality additive parts of the fused logits of the first ``n`` samples, if the fusion is additive."""
        if self.fusion_head is None:
            return None
        return self.fusion.contributions({m: features[m][:n] for m in self.modalities}, self.fusion_head)


def build_model(
    config: ModelConfig,
    dataset: MultimodalDataset,
    encoder_defaults: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> MultimodalModel:
    """Build the model described by ``config`` for the modalities and classes of ``dataset``.

    ``encoder_defaults`` (modality -> encoder name -> options) are options a loader knows the encoders need,
    such as the vocabulary size of the tokenizer it built; they apply when that encoder is chosen, under the
    options of ``config``.
    """
    unknown = sorted(set(config.encoders) - set(dataset.modality_names))
    unknown += sorted(set(config.encoder_options) - set(dataset.modality_names) - {"*"})
    if unknown:
        raise ConfigError(f"model config names unknown modalities {unknown}; data has {list(dataset.modality_names)}")
    encoders = {}
    for m in dataset.modality_names:
        shape = dataset.input_shape(m)
        dtype = dataset.modalities[m].dtype
        name = config.encoders.get(m) or config.encoder or default_encoder_name(shape, dtype)
        options = {
            **(encoder_defaults or {}).get(m, {}).get(name, {}),
            **config.encoder_options.get("*", {}),
            **config.encoder_options.get(m, {}),
        }
        try:
            encoders[m] = build_encoder(name, shape, config.feature_dim, **options)
        except ConfigError as e:  # an encoder that cannot take this shape: name the modality and the way out
            chosen = "chosen by its shape" if name == default_encoder_name(shape, dtype) else "as configured"
            raise ConfigError(
                f"modality {m!r} (sample shape {tuple(shape)}) cannot use encoder {name!r}, {chosen}: {e}; use "
                f"--encoder mlp (every modality) or --encoders {m}=mlp"
            ) from None
    fusion = build_fusion(
        config.fusion or "concat", {m: e.feature_dim for m, e in encoders.items()}, **config.fusion_options
    )
    return MultimodalModel(encoders, dataset.num_classes, fusion)
