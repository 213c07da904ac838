"""Fusion modules; every one has the signature ``forward(features: dict[str, Tensor]) -> Tensor``.

Additive fusions (concat, sum) also split the fused logits into one additive contribution per modality,
which OGM-GE uses for its discrepancy ratio.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from mml_backbones.errors import ConfigError
from mml_backbones.models.layers import Linear
from mml_backbones.registry import Registry

FUSIONS: Registry[type[nn.Module]] = Registry("fusion")


class Fusion(nn.Module):
    """Base class. ``output_dim`` is the size of the fused representation fed to the fusion head."""

    output_dim: int
    #: True when the module fuses the unimodal heads' logits instead of features (late fusion).
    consumes_logits: bool = False

    def __init__(self, feature_dims: Mapping[str, int]) -> None:
        super().__init__()
        if not feature_dims:
            raise ConfigError("a fusion needs at least one modality")
        self.modalities = tuple(feature_dims)
        self.feature_dims = dict(feature_dims)

    def contributions(self, features: Mapping[str, torch.Tensor], head: nn.Linear) -> dict[str, torch.Tensor] | None:
        """Per-modality additive parts of ``head(self(features))``, or None when the fusion is not additive."""
        return None


@FUSIONS.register("concat")
class ConcatFusion(Fusion):
    """Concatenate the features (the field's default)."""

    def __init__(self, feature_dims: Mapping[str, int]) -> None:
        super().__init__(feature_dims)
        self.output_dim = sum(self.feature_dims.values())

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([features[m] for m in self.modalities], dim=-1)

    def contributions(self, features: Mapping[str, torch.Tensor], head: nn.Linear) -> dict[str, torch.Tensor]:
        out, start = {}, 0
        bias_share = head.bias / len(self.modalities)
        for m in self.modalities:
            d = self.feature_dims[m]
            out[m] = features[m] @ head.weight[:, start : start + d].T + bias_share
            start += d
        return out


@FUSIONS.register("sum")
class SumFusion(Fusion):
    """Project each modality to ``hidden`` units and add."""

    def __init__(self, feature_dims: Mapping[str, int], hidden: int = 128) -> None:
        super().__init__(feature_dims)
        self.output_dim = hidden
        self.proj = nn.ModuleDict({m: Linear(d, hidden) for m, d in self.feature_dims.items()})

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([self.proj[m](features[m]) for m in self.modalities]).sum(0)

    def contributions(self, features: Mapping[str, torch.Tensor], head: nn.Linear) -> dict[str, torch.Tensor]:
        bias_share = head.bias / len(self.modalities)
        return {m: self.proj[m](features[m]) @ head.weight.T + bias_share for m in self.modalities}


@FUSIONS.register("film")
class FiLMFusion(Fusion):
    """FiLM (Perez et al., 2018): the other modalities scale and shift the first one's projection in turn."""

    def __init__(self, feature_dims: Mapping[str, int], hidden: int = 128) -> None:
        super().__init__(feature_dims)
        if len(self.modalities) < 2:
            raise ConfigError("film fusion needs at least two modalities")
        self.output_dim = hidden
        first = self.modalities[0]
        self.base = Linear(self.feature_dims[first], hidden)
        self.film = nn.ModuleDict({m: Linear(self.feature_dims[m], 2 * hidden) for m in self.modalities[1:]})

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        x = self.base(features[self.modalities[0]])
        for m in self.modalities[1:]:
            gamma, beta = self.film[m](features[m]).chunk(2, dim=-1)
            x = gamma * x + beta
        return x


@FUSIONS.register("gated")
class GatedFusion(Fusion):
    """Gated multimodal unit (Arevalo et al., 2017): sigmoid gates from all modalities weight each projection."""

    def __init__(self, feature_dims: Mapping[str, int], hidden: int = 128) -> None:
        super().__init__(feature_dims)
        self.output_dim = hidden
        self.proj = nn.ModuleDict({m: Linear(d, hidden) for m, d in self.feature_dims.items()})
        self.gate = Linear(hidden * len(self.modalities), hidden * len(self.modalities))

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        projected = [torch.tanh(self.proj[m](features[m])) for m in self.modalities]
        gates = torch.sigmoid(self.gate(torch.cat(projected, -1))).chunk(len(projected), dim=-1)
        return sum(g * p for g, p in zip(gates, projected))


@FUSIONS.register("late")
class LateFusion(Fusion):
    """Late fusion: the log of the mean of the unimodal heads' softmax (no fusion head)."""

    consumes_logits = True

    def __init__(self, feature_dims: Mapping[str, int]) -> None:
        super().__init__(feature_dims)
        self.output_dim = 0

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        log_probs = torch.stack([torch.log_softmax(features[m], -1) for m in self.modalities])
        return torch.logsumexp(log_probs, 0) - torch.log(torch.tensor(float(len(self.modalities))))


def build_fusion(name: str, feature_dims: Mapping[str, int], **options: object) -> Fusion:
    """Instantiate the registered fusion ``name``."""
    cls = FUSIONS.get(name)
    try:
        return cls(feature_dims, **options)
    except TypeError as e:
        raise ConfigError(f"fusion {name!r}: bad options {sorted(options)}: {e}") from e
