"""OGM-GE: on-the-fly gradient modulation with generalisation enhancement (Peng et al., CVPR 2022).

As the authors' code (GeWu-Lab/OGM-GE_CVPR2022, main.py) does it, per iteration:
1. score_m = sum over the paired batch of softmax(out_m)[y], where out_m is modality m's additive part of the
   fused logits (its slice of the fusion head plus 1/M of the bias); for fusions that are not additive
   (film, gated) the modality's own head gives out_m instead.
2. For M > 2 modalities each modality is compared with the weakest: rho_m = score_m / min_k score_k.
   (For two modalities this is exactly the authors' ratio.)
3. k_m = 1 - tanh(alpha * rho_m) when rho_m > 1, else 1; relu(rho) = rho since scores are positive.
4. Every weight tensor of modality m's encoder: grad <- grad * k_m + N(0, std(grad)) (OGM-GE), or grad * k_m
   (OGM). The authors add the noise to the 4-D conv kernels of both encoders, ours are not all convolutional,
   so ``noise_params = "weights"`` (default) takes every encoder weight with >= 2 dims; "conv" keeps 4-D only.
5. Only between epochs ``modulation_starts`` and ``modulation_ends`` (inclusive), 0 and 50 in their code.
The loss is the fusion cross-entropy only, as theirs; unimodal heads are detached monitors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from mml_backbones.errors import ConfigError
from mml_backbones.methods.base import IterationBatch, Method, fused_loss, unimodal_loss
from mml_backbones.models.model import ModelOutput


@dataclass(frozen=True)
class OGMGEConfig:
    """OGM-GE settings (defaults from the authors' code; alpha 0.8 as used for CREMA-D).

    Attributes:
        alpha: modulation strength in k = 1 - tanh(alpha * rho).
        modulation: "OGM_GE" (scaling + Gaussian noise) or "OGM" (scaling only).
        modulation_starts: first epoch with modulation.
        modulation_ends: last epoch with modulation.
        score_source: "auto" (fusion-head slices when the fusion is additive, else unimodal heads),
            "fusion" or "heads".
        noise_params: "weights" (every encoder tensor with >= 2 dims) or "conv" (4-D kernels, the authors').
    """

    alpha: float = 0.8
    modulation: Literal["OGM_GE", "OGM"] = "OGM_GE"
    modulation_starts: int = 0
    modulation_ends: int = 50
    score_source: Literal["auto", "fusion", "heads"] = "auto"
    noise_params: Literal["weights", "conv"] = "weights"

    def __post_init__(self) -> None:
        if self.modulation not in ("OGM_GE", "OGM"):
            raise ConfigError(f"ogm_ge: modulation must be 'OGM_GE' or 'OGM', got {self.modulation!r}")
        if self.score_source not in ("auto", "fusion", "heads"):
            raise ConfigError(f"ogm_ge: score_source must be auto, fusion or heads, got {self.score_source!r}")
        if self.noise_params not in ("weights", "conv"):
            raise ConfigError(f"ogm_ge: noise_params must be weights or conv, got {self.noise_params!r}")
        if self.alpha < 0:
            raise ConfigError(f"ogm_ge: alpha must be >= 0, got {self.alpha}")


def modulation_coefficients(scores: dict[str, float], alpha: float) -> dict[str, float]:
    """k_m = 1 - tanh(alpha * rho_m) for modalities above the weakest (rho_m = score_m / min score), else 1."""
    weakest = min(scores.values())
    out = {}
    for m, s in scores.items():
        rho = s / weakest if weakest > 0 else math.inf
        out[m] = 1.0 - math.tanh(alpha * rho) if rho > 1 else 1.0
    return out


class OGMGE(Method):
    """Fusion loss with on-the-fly gradient modulation of the dominant modalities' encoders."""

    Config = OGMGEConfig
    reference = "Peng et al., Balanced Multimodal Learning via On-the-fly Gradient Modulation, CVPR 2022"

    #: the authors' main.py: SGD, lr 1e-3, momentum 0.9, weight decay 1e-4, lr x 0.1 every 70 epochs
    paper_optim: ClassVar[dict[str, Any]] = {
        "name": "sgd",
        "lr": 1e-3,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "schedule": "step",
        "step_size": 70,
        "gamma": 0.1,
    }

    @property
    def fusion_only(self) -> bool:
        return True

    def losses(self, output: ModelOutput, batch: IterationBatch) -> dict[str, torch.Tensor]:
        out = {"fused": fused_loss(output, batch)}
        for m in self.context.modalities:
            out[f"monitor/{m}"] = unimodal_loss(output, batch, m)
        return out

    def scores(self, output: ModelOutput, batch: IterationBatch) -> dict[str, float]:
        """Summed true-class softmax score of each modality on the paired batch."""
        n = batch.n_paired
        parts = None
        if self.config.score_source in ("auto", "fusion"):
            parts = self.model.contributions(output.features, n)
            if parts is None and self.config.score_source == "fusion":
                raise ConfigError("ogm_ge: score_source='fusion' needs an additive fusion (concat or sum)")
        if parts is None:
            parts = {m: output.unimodal_logits[m][:n] for m in self.context.modalities}
        y = batch.paired_labels
        with torch.no_grad():
            return {
                m: float(torch.softmax(logits.detach(), -1).gather(1, y[:, None]).sum()) for m, logits in parts.items()
            }

    def after_backward(self, output: ModelOutput, batch: IterationBatch) -> dict[str, float]:
        if batch.n_paired == 0:
            return {}
        coeffs = modulation_coefficients(self.scores(output, batch), self.config.alpha)
        extras = {f"ogm_coeff/{m}": k for m, k in coeffs.items()}
        if not self.config.modulation_starts <= batch.epoch <= self.config.modulation_ends:
            return extras
        min_dims = 4 if self.config.noise_params == "conv" else 2
        with torch.no_grad():
            for m, k in coeffs.items():
                for p in self.model.encoders[m].parameters():
                    if p.grad is None or p.grad.dim() < min_dims:
                        continue
                    if self.config.modulation == "OGM_GE":
                        noise = torch.randn_like(p.grad) * (p.grad.std() + 1e-8)
                        p.grad.mul_(k).add_(noise)
                    else:
                        p.grad.mul_(k)
        return extras
