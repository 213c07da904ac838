"""Data Remixing: each sample trains the modality it is least confident in, alone (Ma, Chen and Deng, ICML 2025).

"Improving Multimodal Learning Balance and Sufficiency through Data Remixing"; code MatthewMaxy/Remix_ICML2025
(train.py, models/models.py, scripts/run_train.sh).

Algorithm, as the released code does it:

1. Warm-up (``warmup_epochs``, 10): joint training, L = L_fused + 0.5 L_a + 0.5 L_v (``--alpha``, ``--beta``).
2. Decoupling: afterwards every sample is assigned to the modality whose own head is least confident on it, the lowest
   KL(p_m || uniform) (released: ``KL_audio < KL_video`` picks audio). With M modalities: the argmin over them.
3. Reassembling: the samples of modality m are trained in batches of m alone: m's features go to the fusion head with
   every other modality's features zeroed (the released ``mode``), and L = L_fused + gamma L_m, gamma 1
   (``--gamma1``, ``--gamma2``). No step mixes two modalities' inputs, which is the point (no "modality clash").

How it runs in the one loop (deliberate departures):

- The released code reassigns once per epoch, over the training split in eval mode without augmentation, then runs
  the video subset's batches and then the audio subset's. IterationBatch carries no sample indices, so per-sample
  assignments from an epoch-level sweep cannot be matched to the Trainer's batches; instead the assignment is made per
  iteration, for the batch's own samples, by an eval-mode, no-gradient forward with the current weights (fresher than
  the released once-an-epoch assignment). Each step then holds every modality's unimodal group side by side, each with
  its own fusion pass with the others zeroed, so no fused input mixes modalities; what differs from the released
  separate batches is only that the groups share one optimiser step. Each group's terms are summed over its samples
  and divided by B, so the groups together weigh like one batch's mean.
- Modality m's encoder runs in training mode on all of its n_m samples (one BatchNorm batch, no tiny groups), and only
  its assigned rows enter the losses; the unassigned rows feed only the DUS statistic (the heads' training-mode logits
  on every sample, as for the other methods).
- KL uses the natural log (released: log2; the argmin is the same); ties go to the first modality.

Under a DUS sampler (quantities n_m, nested prefixes): sample i can go to modality m only if i < n_m; a sample that
only one modality has (beyond the paired prefix) goes to that one. So n_m bounds how many samples m may take and a
larger n_m gives m more candidates; the assignment then gives every sample to the modality that is least sure of it.
In the warm-up the fusion loss is on the paired prefix and each unimodal loss on its n_m samples, divided by B.

The released script keeps the epoch that scores best on the test set (its "val" loader reads test.csv); the Trainer
selects on validation. Optimiser: the released defaults (Adam, lr 5e-5, weight decay 1e-4, StepLR(30, 0.1), 60 epochs
of batches of 64).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from mml_backbones.errors import ConfigError
from mml_backbones.methods.base import IterationBatch, Method, StepResult, fused_loss, unimodal_loss
from mml_backbones.methods.valuation import fuse_subset
from mml_backbones.models.model import ModelOutput
from mml_backbones.optim import ADAM_5E5_STEP30


@dataclass(frozen=True)
class RemixConfig:
    """Data Remixing settings (defaults from the released train.py and scripts/run_train.sh).

    Attributes:
        warmup_epochs: epochs of joint training before remixing (``--warmup 10``).
        warmup_unimodal_weight: weight of each unimodal loss in the warm-up (``--alpha``, ``--beta`` 0.5).
        unimodal_weight: gamma, weight of modality m's head loss on its assigned samples (``--gamma1/2`` 1).
    """

    warmup_epochs: int = 10
    warmup_unimodal_weight: float = 0.5
    unimodal_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.warmup_epochs < 0:
            raise ConfigError(f"remix: warmup_epochs must be >= 0, got {self.warmup_epochs}")
        for name in ("warmup_unimodal_weight", "unimodal_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"remix: {name} must be >= 0, got {getattr(self, name)}")


def kl_from_uniform(logits: torch.Tensor) -> torch.Tensor:
    """(N,) KL(softmax(logits) || uniform) = log K - entropy, probabilities clipped at 1e-9 as released."""
    p = torch.softmax(logits.float(), -1).clamp_min(1e-9)
    return (p * (p.log() + math.log(logits.shape[-1]))).sum(-1)


def remix_assignment(logits: Mapping[str, torch.Tensor], n_total: int) -> torch.Tensor:
    """(n_total,) index, in the order of ``logits``, of the modality each sample trains.

    ``logits[m]`` holds modality m's head logits on its first n_m samples (nested prefixes); a sample goes to the
    modality with the lowest KL from uniform among those that have it.
    """
    kl = torch.full((len(logits), n_total), math.inf)
    for i, z in enumerate(logits.values()):
        kl[i, : len(z)] = kl_from_uniform(z).cpu()
    return kl.argmin(0)


class Remix(Method):
    """Joint warm-up, then per-sample assignment to the least confident modality, trained alone (ICML 2025)."""

    Config = RemixConfig
    reference = (
        "Ma, Chen and Deng, Improving Multimodal Learning Balance and Sufficiency through Data Remixing, ICML 2025; "
        "code MatthewMaxy/Remix_ICML2025"
    )
    recommended_fusion = "concat"
    #: the released optimiser (train.py defaults): Adam, StepLR(30, 0.1), 60 epochs of batches of 64
    paper_optim: ClassVar[dict[str, Any]] = ADAM_5E5_STEP30

    def losses(self, output: ModelOutput, batch: IterationBatch) -> dict[str, torch.Tensor]:
        """The warm-up's joint loss: fusion + ``warmup_unimodal_weight`` x each unimodal loss."""
        out = {"fused": fused_loss(output, batch)}
        for m in self.context.modalities:
            out[f"unimodal/{m}"] = self.config.warmup_unimodal_weight * unimodal_loss(output, batch, m)
        return out

    @torch.no_grad()
    def assign(self, batch: IterationBatch) -> torch.Tensor:
        """The modality index of every sample of the chunk, from an eval-mode forward with the current weights."""
        was_training = self.model.training
        self.model.eval()
        try:
            logits = {m: self.model.heads[m](self.model.encoders[m](batch.inputs[m])) for m in self.context.modalities}
        finally:
            self.model.train(was_training)
        return remix_assignment(logits, len(batch.labels)).to(batch.labels.device)

    def train_step(self, batch: IterationBatch) -> StepResult:
        if batch.epoch < self.config.warmup_epochs:
            return super().train_step(batch)
        owner = self.assign(batch)
        features = self.model.encode(batch.inputs)
        unimodal = {m: self.model.heads[m](f) for m, f in features.items()}
        scale = batch.nominal_batch_size
        losses: dict[str, torch.Tensor] = {}
        extras = {}
        for i, m in enumerate(self.context.modalities):
            rows = (owner[: batch.quantities[m]] == i).nonzero().squeeze(1)
            extras[f"remix/share/{m}"] = len(rows) / len(owner)
            if len(rows) == 0:
                continue
            y = batch.labels[rows]
            fused = fuse_subset(self.model, {m: features[m][rows]}, len(rows))
            losses[f"fused/{m}"] = F.cross_entropy(fused, y, reduction="sum") / scale
            uni = F.cross_entropy(unimodal[m][rows], y, reduction="sum") / scale
            losses[f"unimodal/{m}"] = self.config.unimodal_weight * uni
        sum(losses.values()).backward()
        output = ModelOutput(None, {m: z.detach() for m, z in unimodal.items()}, {})
        return StepResult({k: float(v.detach()) for k, v in losses.items()}, output, extras)
