"""MMPareto: conflict-free integration of the multimodal and unimodal gradients (Wei and Hu, ICML 2024).

"MMPareto: Boosting Multimodal Learning with Innocent Unimodal Assistance"; code GeWu-Lab/MMPareto_ICML2024
(code/MMPareto.py, code/min_norm_solvers.py, code/script/mmpareto.sh).

Losses: the fusion cross-entropy plus each modality's head loss, all with weight 1 (the released ``loss_mm + loss_a +
loss_v``). Per iteration, for the encoder of every modality m (the parameters two objectives share):

1. g_mm and g_m, the gradients of the fusion loss and of m's own loss over m's encoder, are computed apart
   (``torch.autograd.grad``); no other loss reaches that encoder.
2. If they do not conflict (cosine >= 0) the weights are (1/2, 1/2); if they do, the min-norm (MGDA) weights of the
   pair, in closed form (Frank-Wolfe on the Gram matrix for more than two gradients, which our model never has).
3. g = 2 (w_mm g_mm + w_m g_m): equal weights give the plain sum; conflicting ones a direction common to both.
4. Magnitude: per parameter tensor, g is scaled up to the norm of the plain sum g_mm + g_m when it is shorter, then
   multiplied by 1.5 (the released hard-coded ``gamma``, the paper's "enhanced magnitude" for generalisation).
The heads and the fusion module keep the gradient of the plain sum of the losses.

Departures: the released rule is ``cos > 0`` for equal weights; here ``cos >= 0``, so a zero gradient (no paired
sample, or a loss already at rest) counts as no conflict: the released solver would put all the weight on the zero
gradient and then divide by its zero norm. A min-norm point of zero (exactly opposite gradients) is left at zero
instead of the released division by zero. The released script keeps the epoch that scores best on the test set
(``valid`` on the test loader); the Trainer selects on validation.

Under a DUS sampler: the fusion loss is the mean over the paired prefix (min n_m) and m's own loss is summed over its
n_m samples and divided by B (DESIGN.md), so n_m sets the size of g_m against g_mm: a larger n_m makes the unimodal
gradient longer, which moves the min-norm weights towards the fusion gradient when the two conflict and lengthens the
plain sum that sets the final magnitude. Meaningful, and it runs with any quantities.

Optimiser: the released defaults (SGD, lr 0.002, momentum 0.9, weight decay 1e-4, StepLR(30, 0.1), 50 epochs of
batches of 64, CREMA-D).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from mml_backbones.errors import ConfigError
from mml_backbones.methods.base import IterationBatch, Method, StepResult, fused_loss, unimodal_loss


@dataclass(frozen=True)
class MMParetoConfig:
    """MMPareto settings (defaults from the released code/MMPareto.py).

    Attributes:
        magnitude_scale: factor on the integrated gradient after its norm is restored (the released ``gamma`` 1.5).
        rescale: "tensor" restores the norm per parameter tensor (released) or "encoder" over the whole encoder.
    """

    magnitude_scale: float = 1.5
    rescale: Literal["tensor", "encoder"] = "tensor"

    def __post_init__(self) -> None:
        if self.magnitude_scale <= 0:
            raise ConfigError(f"mmpareto: magnitude_scale must be > 0, got {self.magnitude_scale}")
        if self.rescale not in ("tensor", "encoder"):
            raise ConfigError(f"mmpareto: rescale must be 'tensor' or 'encoder', got {self.rescale!r}")


@dataclass(frozen=True)
class ParetoCombination:
    """The integrated gradient of several objectives.

    Attributes:
        grad: the flat combined gradient.
        weights: the weights of the objectives (summing to 1) before the factor k.
        cosine: the smallest pairwise cosine of the gradients (0 for a zero gradient).
    """

    grad: torch.Tensor
    weights: torch.Tensor
    cosine: float


def _segment_min(a: float, b: float, c: float) -> float:
    """t in [0, 1] minimising |(1 - t) x + t y|^2 given a = x.x, b = x.y, c = y.y."""
    denom = a + c - 2 * b
    return 0.0 if denom <= 0 else min(1.0, max(0.0, (a - b) / denom))


def min_norm_weights(grads: Sequence[torch.Tensor], iterations: int = 250, tol: float = 1e-6) -> torch.Tensor:
    """Simplex weights of the minimum-norm point of the convex hull of ``grads`` (MGDA)."""
    g = torch.stack([x.detach().double().flatten() for x in grads])
    gram = g @ g.T
    k = len(grads)
    if k == 1:
        return torch.ones(1, dtype=torch.float64)
    if k == 2:
        t = _segment_min(float(gram[0, 0]), float(gram[0, 1]), float(gram[1, 1]))
        return torch.tensor([1 - t, t], dtype=torch.float64)
    best = None  # start from the best pair (the 2-task solution), as MGDA's solver does
    for i in range(k):
        for j in range(i + 1, k):
            t = _segment_min(float(gram[i, i]), float(gram[i, j]), float(gram[j, j]))
            norm = (1 - t) ** 2 * gram[i, i] + 2 * t * (1 - t) * gram[i, j] + t**2 * gram[j, j]
            if best is None or norm < best[0]:
                best = (float(norm), i, j, t)
    w = torch.zeros(k, dtype=torch.float64)
    w[best[1]], w[best[2]] = 1 - best[3], best[3]
    for _ in range(iterations):  # Frank-Wolfe with exact line search towards the best vertex
        j = int(torch.argmin(gram @ w))
        t = _segment_min(float(w @ gram @ w), float(w @ gram[:, j]), float(gram[j, j]))
        step = -t * w
        step[j] += t
        w = w + step
        if float(step.abs().sum()) < tol:
            break
    return w


def pareto_combine(
    grads: Sequence[torch.Tensor], magnitude_scale: float = 1.5, sizes: Sequence[int] | None = None
) -> ParetoCombination:
    """MMPareto's integration of flat gradients of k objectives over the same parameters.

    Equal weights when no pair conflicts (cosine >= 0), else the min-norm weights; g = k sum_i w_i g_i; then each
    section of ``sizes`` (the parameter tensors; None: the whole vector) is scaled up to the norm of the plain sum
    where it is shorter, and all of it by ``magnitude_scale``.
    """
    k = len(grads)
    stacked = torch.stack([x.flatten() for x in grads])
    norms = stacked.double().norm(dim=1)
    cosine = 1.0
    for i in range(k):
        for j in range(i + 1, k):
            denom = float(norms[i] * norms[j])
            c = 0.0 if denom == 0 else float(stacked[i].double() @ stacked[j].double()) / denom
            cosine = min(cosine, c)
    no_conflict = k == 1 or cosine >= 0
    weights = torch.full((k,), 1.0 / k, dtype=torch.float64) if no_conflict else min_norm_weights(grads)
    combined = k * (weights.to(stacked.dtype)[:, None] * stacked).sum(0)
    plain = stacked.sum(0)
    sections = list(sizes) if sizes is not None else [combined.numel()]
    out = []
    for part, ref in zip(combined.split(sections), plain.split(sections)):
        new_norm, ref_norm = part.norm(), ref.norm()
        if new_norm > 0 and ref_norm > new_norm:
            part = part * (ref_norm / new_norm)
        out.append(part)
    return ParetoCombination(torch.cat(out) * magnitude_scale, weights, cosine)


def _grads(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    """d loss / d params, zeros where the loss does not reach (keeps the graph)."""
    if not loss.requires_grad:
        return [torch.zeros_like(p) for p in params]
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


class MMPareto(Method):
    """Fusion + unimodal losses, the encoders' gradients integrated without conflict (ICML 2024)."""

    Config = MMParetoConfig
    reference = (
        "Wei and Hu, MMPareto: Boosting Multimodal Learning with Innocent Unimodal Assistance, ICML 2024; "
        "code GeWu-Lab/MMPareto_ICML2024"
    )
    recommended_fusion = "concat"
    #: the released optimiser (code/MMPareto.py defaults)
    paper_optim: ClassVar[dict[str, Any]] = {
        "name": "sgd",
        "lr": 0.002,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "schedule": "step",
        "step_size": 30,
        "gamma": 0.1,
    }

    def train_step(self, batch: IterationBatch) -> StepResult:
        output = self.forward(batch)
        fused = fused_loss(output, batch)
        uni = {m: unimodal_loss(output, batch, m) for m in self.context.modalities}
        params = {m: [p for p in self.model.encoders[m].parameters() if p.requires_grad] for m in uni}
        every = [p for m in uni for p in params[m]]
        g_fused = dict(zip(map(id, every), _grads(fused, every)))
        combined, extras = {}, {}
        for m, loss in uni.items():
            g_m = _grads(loss, params[m])
            flat_fused = torch.cat([g_fused[id(p)].flatten() for p in params[m]])
            flat_m = torch.cat([g.flatten() for g in g_m])
            sizes = [p.numel() for p in params[m]] if self.config.rescale == "tensor" else None
            result = pareto_combine([flat_fused, flat_m], self.config.magnitude_scale, sizes)
            combined[m] = result.grad
            extras[f"mmpareto/cos/{m}"] = result.cosine
            extras[f"mmpareto/fusion_weight/{m}"] = float(result.weights[0])
        total = fused + sum(uni.values())
        if total.requires_grad:
            total.backward()  # the heads' and the fusion's gradients; the encoders' are replaced below
        with torch.no_grad():
            for m, flat in combined.items():
                for p, g in zip(params[m], flat.split([p.numel() for p in params[m]])):
                    p.grad = g.view_as(p).clone()
        losses = {"fused": float(fused.detach()), **{f"unimodal/{m}": float(v.detach()) for m, v in uni.items()}}
        return StepResult(losses, output, extras)
