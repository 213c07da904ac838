"""A fusion read-out for methods that train the modalities apart (MIE, MLA).

Such methods never back-propagate a fusion loss into the encoders, so with a feature fusion (concat, sum, film,
gated) the fusion module and its head would stay at their initialisation. The read-out trains them alone: the fusion
cross-entropy on the paired prefix, on encoder features computed without gradient and in eval mode (no BatchNorm
update, no dropout), so it changes nothing but the fusion parameters. Late fusion has no parameters: nothing to do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mml_backbones.methods.base import IterationBatch
from mml_backbones.models.model import MultimodalModel


def fusion_parameters(model: MultimodalModel) -> list[torch.nn.Parameter]:
    """The trainable parameters of the fusion module and the fusion head (empty for late fusion)."""
    params = [p for p in model.fusion.parameters() if p.requires_grad]
    if model.fusion_head is not None:
        params += [p for p in model.fusion_head.parameters() if p.requires_grad]
    return params


def train_fusion_readout(model: MultimodalModel, batch: IterationBatch, weight: float = 1.0) -> float | None:
    """Back-propagate ``weight`` x the fusion cross-entropy into the fusion parameters only; return the loss.

    Returns None (and does nothing) when the fusion has no parameters, ``weight`` is 0 or nothing is paired.
    """
    if weight == 0 or batch.n_paired == 0 or not fusion_parameters(model):
        return None
    n = batch.n_paired
    modes = {m: encoder.training for m, encoder in model.encoders.items()}
    model.encoders.eval()
    try:
        with torch.no_grad():
            features = {m: model.encoders[m](batch.inputs[m][:n]) for m in model.modalities}
    finally:
        for m, mode in modes.items():
            model.encoders[m].train(mode)
    loss = F.cross_entropy(model.fuse(features, {}, n), batch.paired_labels)
    (weight * loss).backward()
    return float(loss.detach())
