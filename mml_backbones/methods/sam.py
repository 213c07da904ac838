"""Sharpness-aware gradients (Foret et al., ICLR 2021) as IGM/MIE's forward phase combines them.

With g = grad L(w) over a parameter set and the global norm ||g|| over that set, the perturbation is
eps = rho * g / ||g||; the loss is taken again at w + eps and the gradient left in ``.grad`` is
(1 - beta) grad L(w) + beta grad L(w + eps), the gradient of L = (1 - beta) L_ori + beta L_flat.
The weights (and the given buffers, e.g. BatchNorm running statistics) are copied before the perturbation and
copied back afterwards, so they come back bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class SamStep:
    """What one sharpness-aware gradient computation saw.

    Attributes:
        loss: L(w), detached.
        flat_loss: L(w + eps), detached (equal to ``loss`` when the perturbed pass was skipped).
        grad_norm: ||grad L(w)|| over the parameter set.
        perturbation_norm: ||eps|| actually applied (rho, or 0 when skipped).
        output: what the closure returned besides the loss on the unperturbed pass.
    """

    loss: torch.Tensor
    flat_loss: torch.Tensor
    grad_norm: float
    perturbation_norm: float
    output: Any


LossClosure = Callable[[], tuple[torch.Tensor, Any]]


def sharpness_aware_backward(
    params: Sequence[torch.nn.Parameter],
    closure: LossClosure,
    rho: float,
    beta: float,
    buffers: Sequence[torch.Tensor] = (),
    on_perturbed: Callable[[], None] | None = None,
) -> SamStep:
    """Add (1 - beta) grad L(w) + beta grad L(w + eps) to the ``.grad`` of ``params``.

    Args:
        params: the perturbed parameter set (its global gradient norm defines eps).
        closure: computes (loss, anything) at the current weights; called once, or twice when beta > 0, rho > 0
            and the gradient is non-zero.
        rho: radius of the perturbation.
        beta: weight of the perturbed loss (0: plain gradient, no second pass).
        buffers: tensors the forward pass updates in place (BatchNorm statistics), restored after the second pass.
        on_perturbed: called while the weights are perturbed, right before the second pass (for inspection).
    """
    params = list(params)
    loss, output = closure()
    grads = _grads(loss, params)
    with torch.no_grad():
        norm = (
            torch.sqrt(sum((g.double() ** 2).sum() for g in grads)) if grads else torch.zeros((), dtype=torch.float64)
        )
    grad_norm = float(norm)
    flat_loss = loss.detach()
    applied = 0.0
    combined = grads
    if beta > 0 and rho > 0 and grad_norm > 0:
        saved_params = [p.detach().clone() for p in params]
        saved_buffers = [b.detach().clone() for b in buffers]
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.add_(g * (rho / grad_norm))
        applied = rho
        try:
            if on_perturbed is not None:
                on_perturbed()
            perturbed_loss, _ = closure()
            perturbed_grads = _grads(perturbed_loss, params)
        finally:
            with torch.no_grad():
                for p, saved in zip(params, saved_params):
                    p.copy_(saved)
                for b, saved in zip(buffers, saved_buffers):
                    b.copy_(saved)
        flat_loss = perturbed_loss.detach()
        combined = [(1 - beta) * g + beta * h for g, h in zip(grads, perturbed_grads)]
    for p, g in zip(params, combined):
        if p.grad is None:
            p.grad = g.detach().clone()
        else:
            p.grad.add_(g)
    return SamStep(loss.detach(), flat_loss, grad_norm, applied, output)


def _grads(loss: torch.Tensor, params: Sequence[torch.nn.Parameter]) -> list[torch.Tensor]:
    if not loss.requires_grad:
        return [torch.zeros_like(p) for p in params]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]
