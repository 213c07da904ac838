"""Joint training: fusion cross-entropy plus, optionally, each modality's own head loss.

With ``unimodal_weight = 0`` it is the field's "Concat" baseline (fusion loss only; the unimodal heads are then
trained on detached features, as monitors that feed the DUS statistic without touching the encoders). With the
unimodal terms on and the uniform sampler it is the control that every DUS sampler has to beat: the same losses,
equal quantities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mml_backbones.methods.base import IterationBatch, Method, fused_loss, unimodal_loss
from mml_backbones.models.model import ModelOutput


@dataclass(frozen=True)
class JointConfig:
    """Weights of the loss terms.

    Attributes:
        fusion_weight: weight of the fusion cross-entropy.
        unimodal_weight: weight of each modality's head loss (summed over its n_m samples / B);
            0 gives the Concat baseline.
    """

    fusion_weight: float = 1.0
    unimodal_weight: float = 1.0


class Joint(Method):
    """Fusion loss + weighted unimodal losses."""

    Config = JointConfig
    reference = "standard joint training; unimodal terms as in the DUS paper's per-modality heads"
    vectorizable = True

    @property
    def fusion_only(self) -> bool:
        return self.config.unimodal_weight == 0

    def losses(self, output: ModelOutput, batch: IterationBatch) -> dict[str, torch.Tensor]:
        out = {"fused": self.config.fusion_weight * fused_loss(output, batch)}
        for m in self.context.modalities:
            term = unimodal_loss(output, batch, m)
            if self.fusion_only:
                out[f"monitor/{m}"] = term
            else:
                out[f"unimodal/{m}"] = self.config.unimodal_weight * term
        return out
