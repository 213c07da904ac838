"""MLA: alternating unimodal learning with a shared head and orthogonal gradient projection.

Zhang, Yang, Yao et al., "Multimodal Representation Learning by Alternating Unimodal Adaptation", CVPR 2024; code
Cecile-hi/Multimodal-Learning-with-Alternating-Unimodal-Adaptation (main.py with --gs_flag, utils.py GSPlugin).

- Shared head: MLA classifies every modality's features with one head. Our model has a head per modality, so MLA
  ties them when it is built: ``model.heads[m]`` becomes the first modality's head for every m (the Trainer builds
  its optimiser after the method, so it sees the shared parameters once; the checkpoint stores the shared tensors
  under every modality's key). The unimodal logits, the DUS statistic and the head accuracies are then those of
  the shared head on each modality. All encoders need the same feature size (``ModelConfig.feature_dim``).
- Alternation: one modality per iteration, cycling (``alternating.py`` with stages of one iteration). The released
  code makes one optimiser step per modality inside every batch; the Trainer makes one step per iteration, so here
  consecutive iterations (each with fresh data) go to the modalities in turn.
- Loss: the active modality's cross-entropy through its encoder and the shared head, summed over its n_m samples
  and divided by B (DESIGN.md).
- Projection (GSPlugin): the shared head's weight gradient G becomes G P^T with P updated before every step but
  the run's first by the recursive least-squares rule of orthogonal weight modification, with r the batch mean of
  the head's input: k = P r^T, P <- P - k k^T / (alpha + r k), then P <- P / ||P||_F (``normalise``), and
  alpha = ``alpha_decay`` ** (1 + position of the iteration in its epoch). The head's response to the feature
  directions already seen is kept while it learns from the next modality. P never resets, as released.
- Prediction: with late fusion (recommended) the released fixed-weight rule, softmax(sum_m w_m logits_m), equal
  weights by default (their av_alpha = 0.5 for two modalities); their entropy-gated variant (--dynamic) is not
  offered. With a feature fusion the fusion module and head are trained as a read-out on detached features
  (``readout.py``) and predict as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from mml_backbones.errors import ConfigError
from mml_backbones.methods.alternating import StageSchedule
from mml_backbones.methods.base import IterationBatch, Method, MethodContext, Predictions, StepResult, softmax
from mml_backbones.methods.readout import train_fusion_readout
from mml_backbones.models.model import ModelOutput, MultimodalModel


@dataclass(frozen=True)
class MLAConfig:
    """MLA settings (defaults from the authors' code).

    Attributes:
        projection: project the shared head's gradient (their --gs_flag); False: plain alternating training.
        alpha_decay: alpha = alpha_decay ** (1 + position in epoch) in the projection update (GSPlugin: 0.1).
        normalise: divide P by its Frobenius norm after every update (GSPlugin does).
        modality_weights: weights of the modalities' logits in the prediction, in modality order (None: equal, their
            av_alpha 0.5 for two modalities).
        fusion_weight: weight of the read-out loss of a feature fusion (no effect with late fusion).
    """

    projection: bool = True
    alpha_decay: float = 0.1
    normalise: bool = True
    modality_weights: tuple[float, ...] | None = None
    fusion_weight: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha_decay <= 1.0:
            raise ConfigError(f"mla: alpha_decay must be in (0, 1], got {self.alpha_decay}")
        if self.fusion_weight < 0:
            raise ConfigError(f"mla: fusion_weight must be >= 0, got {self.fusion_weight}")
        if self.modality_weights is not None and any(w < 0 for w in self.modality_weights):
            raise ConfigError(f"mla: modality_weights must be >= 0, got {self.modality_weights}")


class OrthogonalProjector:
    """The recursive least-squares projector of orthogonal weight modification (float64)."""

    def __init__(self, dim: int, device: torch.device | None = None) -> None:
        self.matrix = torch.eye(dim, dtype=torch.float64, device=device)

    def update(self, mean_input: torch.Tensor, alpha: float, normalise: bool = True) -> None:
        """Shrink P along ``mean_input`` r: P <- P - P r^T r P / (alpha + r P r^T), then optionally P / ||P||_F."""
        r = mean_input.detach().reshape(1, -1).to(self.matrix)
        k = self.matrix @ r.T
        self.matrix = self.matrix - (k @ k.T) / (alpha + r @ k)
        if normalise:
            self.matrix = self.matrix / torch.linalg.matrix_norm(self.matrix)

    def project(self, grad: torch.Tensor) -> torch.Tensor:
        """G P^T for a weight gradient G of shape (out, dim)."""
        return grad @ self.matrix.T.to(grad.dtype)


class MLA(Method):
    """Alternating unimodal training through one shared head with orthogonal gradient projection (CVPR 2024)."""

    Config = MLAConfig
    reference = (
        "Zhang et al., Multimodal Representation Learning by Alternating Unimodal Adaptation, CVPR 2024; "
        "code Cecile-hi/Multimodal-Learning-with-Alternating-Unimodal-Adaptation"
    )
    recommended_fusion = "late"
    #: the group's released training scripts (OGM-GE lineage): SGD, lr 1e-3, momentum 0.9, weight decay 1e-4
    paper_optim: ClassVar[dict[str, Any]] = {"name": "sgd", "lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4}

    def __init__(self, config: MLAConfig, model: MultimodalModel, context: MethodContext) -> None:
        super().__init__(config, model, context)
        modalities = context.modalities
        if config.modality_weights is not None and len(config.modality_weights) != len(modalities):
            raise ConfigError(
                f"mla: modality_weights has {len(config.modality_weights)} values for {len(modalities)} modalities"
            )
        self.head = model.heads[modalities[0]]
        sizes = {m: model.heads[m].in_features for m in modalities}
        if len(set(sizes.values())) > 1:
            raise ConfigError(f"mla: a shared head needs equal feature sizes, got {sizes}")
        for m in modalities:  # the tie: every modality's head is the first one's
            model.heads[m] = self.head
        self.schedule = StageSchedule(modalities, (1,))
        self.projector = OrthogonalProjector(self.head.in_features, context.device)
        self.steps = 0

    def train_step(self, batch: IterationBatch) -> StepResult:
        m = self.schedule.stage_at(batch.iteration).modality
        features = self.model.encoders[m](batch.inputs[m])
        logits = self.head(features)
        loss = F.cross_entropy(logits, batch.labels_of(m), reduction="sum") / batch.nominal_batch_size
        loss.backward()
        if self.config.projection and self.steps > 0 and self.head.weight.grad is not None:
            ipe = self.context.iterations_per_epoch
            alpha = self.config.alpha_decay ** (1 + (batch.iteration % ipe) / ipe)
            self.projector.update(features.detach().mean(0), alpha, self.config.normalise)
            with torch.no_grad():
                self.head.weight.grad.copy_(self.projector.project(self.head.weight.grad))
        self.steps += 1
        losses = {"mla": float(loss.detach())}
        fused = train_fusion_readout(self.model, batch, self.config.fusion_weight)
        if fused is not None:
            losses["fused"] = fused
        return StepResult(losses, ModelOutput(None, {m: logits.detach()}, {m: features.detach()}))

    def fused_scores(self, predictions: Predictions) -> np.ndarray:
        if self.model.fusion_head is not None:  # a feature fusion trained as a read-out
            return super().fused_scores(predictions)
        modalities = self.context.modalities
        weights = self.config.modality_weights or (1.0 / len(modalities),) * len(modalities)
        logits = sum(w * predictions.unimodal_logits[m] for w, m in zip(weights, modalities))
        return softmax(np.asarray(logits))

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "projector": self.projector.matrix.detach().cpu().clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.projector.matrix = torch.as_tensor(state["projector"]).to(self.context.device, torch.float64)
