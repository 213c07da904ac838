"""Flat-direction projections (IGM/MIE backward phase): input covariances of Linear layers and the matrices P.

For a Linear layer with inputs x (batch, in), the uncentred covariance of its batch-mean inputs over a pass is
C = sum_b xbar_b^T xbar_b with xbar_b the mean input of batch b. With C = V diag(l) V^T,
s_i = exp(-tau (l_i - l_min) / (l_max - l_min)) and P = V diag(s) V^T, a weight gradient G (out, in) becomes G P:
the input directions the layer relied on most (large l) are damped by up to exp(-tau), the flat ones (l = l_min,
e.g. C's null space) pass unchanged. P is symmetric with eigenvalues in [exp(-tau), 1]; when all eigenvalues are
equal (C = 0 or isotropic) no direction is preferred and P = I.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Literal

import torch
from torch import nn

from mml_backbones.errors import ConfigError

LayerMatching = Literal["aligned", "shape"]


def linear_layers(*modules: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The nn.Linear layers of ``modules`` in module order, named ``"<module index>.<qualified name>"``."""
    out = []
    for i, module in enumerate(modules):
        for name, m in module.named_modules():
            if isinstance(m, nn.Linear):
                out.append((f"{i}.{name}" if name else str(i), m))
    return out


class InputCovariance:
    """Accumulates C = sum_b xbar_b^T xbar_b (float64) of every given Linear layer while the context is open.

    xbar_b is the mean of the layer's input over all axes but the last, one row per forward call.
    """

    def __init__(self, layers: Sequence[tuple[str, nn.Linear]]) -> None:
        self.layers = list(layers)
        self.covariance: dict[str, torch.Tensor] = {}
        self.batches: dict[str, int] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            x = inputs[0].detach()
            mean = x.reshape(-1, x.shape[-1]).to(torch.float64).mean(0, keepdim=True)
            outer = mean.T @ mean
            self.covariance[name] = self.covariance[name] + outer if name in self.covariance else outer
            self.batches[name] = self.batches.get(name, 0) + 1

        return hook

    def __enter__(self) -> InputCovariance:
        for name, layer in self.layers:
            self._handles.append(layer.register_forward_hook(self._hook(name)))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def flat_projection(covariance: torch.Tensor, tau: float) -> torch.Tensor:
    """P = V diag(exp(-tau (l - l_min) / (l_max - l_min))) V^T of the symmetric ``covariance`` (float64)."""
    if covariance.ndim != 2 or covariance.shape[0] != covariance.shape[1]:
        raise ValueError(f"covariance must be a square matrix, got shape {tuple(covariance.shape)}")
    if tau < 0:
        raise ConfigError(f"tau must be >= 0, got {tau}")
    c = covariance.to(torch.float64)
    c = (c + c.T) / 2  # eigh reads one triangle; symmetrise against accumulated rounding
    eigenvalues, vectors = torch.linalg.eigh(c)
    span = eigenvalues[-1] - eigenvalues[0]
    if not torch.isfinite(span):
        raise ValueError("covariance has non-finite entries")
    if span <= 0:
        return torch.eye(c.shape[0], dtype=torch.float64, device=c.device)
    scale = torch.exp(-tau * (eigenvalues - eigenvalues[0]) / span)
    return (vectors * scale) @ vectors.T


def match_layers(
    current: Sequence[tuple[str, nn.Linear]], previous: Sequence[tuple[str, nn.Linear]], rule: LayerMatching
) -> dict[str, list[str]]:
    """Which layers of the previous modality modify each layer of the current one (by name).

    Args:
        current: Linear layers of the modality being trained (encoder first, head last).
        previous: Linear layers of the modality of the previous stage, in the same order.
        rule: "aligned": layers are paired by position counted from the output end (head with head, the last
            encoder Linear with the last encoder Linear, ...), and a pair is used only when the input sizes agree
            (what G P needs); "shape": every previous layer with the same weight shape, applied one after the
            other, as the authors' code does.
    """
    if rule == "aligned":
        out = {}
        for (name, layer), (prev_name, prev) in zip(reversed(current), reversed(previous)):
            if layer.in_features == prev.in_features:
                out[name] = [prev_name]
        return out
    if rule == "shape":
        out = {}
        for name, layer in current:
            hits = [prev_name for prev_name, prev in previous if prev.weight.shape == layer.weight.shape]
            if hits:
                out[name] = hits
        return out
    raise ConfigError(f"layer matching must be 'aligned' or 'shape', got {rule!r}")
