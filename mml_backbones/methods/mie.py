"""MIE / IGM: alternating unimodal training with a sharpness-aware forward phase and flat gradient modification.

Jiang, Chi and Yang, "Multimodal Classification via Modal-Aware Interactive Enhancement" (arXiv 2407.04587), published
as IGM, "Interactive Multimodal Learning via Flat Gradient Modification" (IJCAI 2025); code njustkmg/IJCAI25-IGM.

Per iteration only the stage's modality m trains (encoder and its own head):

1. Stages (``alternating.py``): stage k trains modality k mod M for ``stage_lengths[k mod L]`` epochs or iterations.
2. Loss: cross-entropy of m's head on its n_m samples (the sampler's quantity), summed and divided by the nominal
   batch size B (DESIGN.md), so n_m sets both the data and the update share; with mixup (the authors' recipe,
   alpha 1.0) the inputs of m are mixed within the batch and the loss is lam CE(y) + (1 - lam) CE(y[perm]).
   Integer inputs (token ids) are not mixed.
3. Forward phase (``sam.py``): g = grad L(w) over m's encoder and head, eps = rho g / ||g|| with the global norm,
   the gradient is (1 - beta) grad L(w) + beta grad L(w + eps); weights and BatchNorm buffers are restored bit for bit.
4. Backward phase (``flat_projection.py``): when a stage of m' ends, C = sum_b xbar_b^T xbar_b of the input of
   every nn.Linear of m' (encoder, then head) is collected over the training set (encoder in eval mode, no mixup,
   batches of B from a permutation seeded by the run's seed and the stage, at most ``covariance_batches`` of them),
   and P = V diag(exp(-tau (l - l_min) / (l_max - l_min))) V^T. While the next modality m trains, the weight
   gradient G of each Linear of m matched to a Linear of m' becomes G P (biases are left alone). Matching
   (``layer_matching``): "aligned" pairs layers by position from the output end (head with head, last encoder
   Linear with last encoder Linear, ...) and uses a pair only when the input sizes agree; "shape" is the authors'
   rule (every layer of m' with the same weight shape). For the authors' models (ResNet encoders without Linear
   layers, identical three-layer heads) both give the same pairs. P always comes from the stage just before, so
   with M > 2 modalities each one is shaped by its predecessor in the cycle; the first stage is unmodified.
5. Prediction: late fusion (the log of the mean of the heads' softmax), the authors' prediction. With a feature
   fusion (concat, sum, film, gated) the fusion module and fusion head are trained every iteration as a read-out
   (``readout.py``): the fusion cross-entropy on the paired prefix, on features computed without gradient in eval
   mode, weighted by ``fusion_weight``; it never changes the encoders, so MIE's updates stay unimodal.

The Trainer's DUS statistic is fed only the active modality's logits (computed on the mixed inputs when mixup is
on); the other modalities keep their statistic until their stage.

Where this differs from the released code, on purpose:

- SAM: the released code normalises the perturbation per tensor, uses rho = 1e-10 (``noise_ratio``), takes the
  perturbed loss through the head only (the encoder features are reused from before the perturbation), with the
  un-mixed labels, and never removes the perturbation; at 1e-10 this is a no-op, so their forward phase is plain
  training with the loss counted twice. Here SAM is real: the global norm, rho 0.05 by default (Foret et al.'s
  default), the same mixed loss recomputed through encoder and head at w + eps, and the weights restored.
- Schedule: the released ``epoch_list`` is (25, 50, 25, 50, ...) epochs, and every stage restarts from the best
  checkpoint so far (chosen on the test set) with a fresh optimiser. Here the run is one Trainer run: no reload,
  the Trainer's optimiser goes on (Adam keeps each modality's moments across stages), and the default stages
  (1, 2) epochs keep the released 1:2 ratio at the length of short runs; ``stage_lengths=(25, 50)`` gives theirs.
- Covariance: the released code sweeps the whole training loader (batches of 12) after every stage and also
  computes (unused) covariances of convolutions; here batches are of size B, ``covariance_batches`` caps the sweep
  (None: the whole training set, as theirs; set a cap when stages are counted in a few iterations), and only
  Linear layers are collected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from mml_backbones.errors import ConfigError
from mml_backbones.methods.alternating import Stage, StageSchedule, StageUnit
from mml_backbones.methods.base import IterationBatch, Method, MethodContext, StepResult
from mml_backbones.methods.flat_projection import (
    InputCovariance,
    LayerMatching,
    flat_projection,
    linear_layers,
    match_layers,
)
from mml_backbones.methods.readout import train_fusion_readout
from mml_backbones.methods.sam import sharpness_aware_backward
from mml_backbones.models.model import ModelOutput, MultimodalModel


@dataclass(frozen=True)
class MIEConfig:
    """MIE settings; defaults from the released IGM code (configs/crema.json) unless said otherwise.

    Attributes:
        beta: weight of the perturbed (flat) loss, L = (1 - beta) L_ori + beta L_flat (``flat_ratio`` 0.3).
        rho: SAM radius; 0.05 is Foret et al.'s default (the released 1e-10 makes SAM a no-op).
        tau: temperature of the flat projection, s_i = exp(-tau * normalised eigenvalue) (``temperature1`` 0.4).
        stage_lengths: stage lengths, cycled; stage k trains modality k mod M. Released: (25, 50) epochs;
            default (1, 2) epochs, the same 1:2 ratio for short runs.
        stage_unit: "epochs" or "iterations" (``stage_lengths=(1,), stage_unit="iterations"``: MLA's turns).
        mixup_alpha: Beta(alpha, alpha) mixup of the active modality's inputs (``mixup_alpha`` 1.0); 0 disables.
        gradient_modification: apply the backward phase (G -> G P); False leaves alternating SAM training.
        layer_matching: "aligned" (by position from the output end, equal input sizes) or "shape" (the released
            rule: equal weight shapes).
        covariance_batches: batches of size B swept to collect C after a stage (None: the whole training set,
            as released).
        fusion_weight: weight of the read-out loss that trains a feature fusion's module and head on detached
            features (no effect with late fusion, which has no parameters).
    """

    beta: float = 0.3
    rho: float = 0.05
    tau: float = 0.4
    stage_lengths: tuple[int, ...] = (1, 2)
    stage_unit: StageUnit = "epochs"
    mixup_alpha: float = 1.0
    gradient_modification: bool = True
    layer_matching: LayerMatching = "aligned"
    covariance_batches: int | None = None
    fusion_weight: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta <= 1.0:
            raise ConfigError(f"mie: beta must be in [0, 1], got {self.beta}")
        for name in ("rho", "tau", "mixup_alpha", "fusion_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"mie: {name} must be >= 0, got {getattr(self, name)}")
        if not self.stage_lengths or any(int(n) != n or n < 1 for n in self.stage_lengths):
            raise ConfigError(f"mie: stage_lengths must be positive integers, got {self.stage_lengths}")
        if self.stage_unit not in ("epochs", "iterations"):
            raise ConfigError(f"mie: stage_unit must be 'epochs' or 'iterations', got {self.stage_unit!r}")
        if self.layer_matching not in ("aligned", "shape"):
            raise ConfigError(f"mie: layer_matching must be 'aligned' or 'shape', got {self.layer_matching!r}")
        if self.covariance_batches is not None and self.covariance_batches < 1:
            raise ConfigError(f"mie: covariance_batches must be >= 1 or None, got {self.covariance_batches}")


def mix_inputs(x: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup within the batch: (lam x + (1 - lam) x[perm], perm, lam), drawn from torch's global RNG."""
    lam = float(torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha))).sample())
    perm = torch.randperm(len(x)).to(x.device)
    return lam * x + (1 - lam) * x[perm], perm, lam


class MIE(Method):
    """Alternating unimodal training with SAM and flat-direction gradient modification (IGM, IJCAI 2025)."""

    Config = MIEConfig
    reference = (
        "Jiang, Chi and Yang, Interactive Multimodal Learning via Flat Gradient Modification, IJCAI 2025 "
        "(MIE, arXiv 2407.04587); code njustkmg/IJCAI25-IGM"
    )
    recommended_fusion = "late"
    #: IGM/MIE released code: SGD, lr 1e-2, momentum 0.9, weight decay 1e-4
    paper_optim: ClassVar[dict[str, Any]] = {"name": "sgd", "lr": 1e-2, "momentum": 0.9, "weight_decay": 1e-4}

    def __init__(self, config: MIEConfig, model: MultimodalModel, context: MethodContext) -> None:
        super().__init__(config, model, context)
        self.schedule = StageSchedule.from_config(
            context.modalities, config.stage_lengths, config.stage_unit, context.iterations_per_epoch
        )
        self.stage_index = -1
        self.source: str | None = None
        self.projections: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------------------------------- training
    def train_step(self, batch: IterationBatch) -> StepResult:
        stage = self.schedule.stage_at(batch.iteration)
        if stage.index != self.stage_index:
            self._enter(stage)
        m = stage.modality
        encoder, head = self.model.encoders[m], self.model.heads[m]
        x, y = batch.inputs[m], batch.labels_of(m)
        y_mix, lam = y, 1.0
        if self.config.mixup_alpha > 0 and x.is_floating_point():
            x, perm, lam = mix_inputs(x, self.config.mixup_alpha)
            y_mix = y[perm]
        scale = batch.nominal_batch_size

        def closure() -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
            features = encoder(x)
            logits = head(features)
            loss = lam * F.cross_entropy(logits, y, reduction="sum")
            if lam < 1.0:
                loss = loss + (1 - lam) * F.cross_entropy(logits, y_mix, reduction="sum")
            return loss / scale, (features, logits)

        params = [p for module in (encoder, head) for p in module.parameters() if p.requires_grad]
        buffers = [b for module in (encoder, head) for b in module.buffers()]
        step = sharpness_aware_backward(params, closure, self.config.rho, self.config.beta, buffers)
        self._modify_gradients(m)
        features, logits = step.output
        beta = self.config.beta
        losses = {
            "mie": float((1 - beta) * step.loss + beta * step.flat_loss),
            "mie/ori": float(step.loss),
            "mie/flat": float(step.flat_loss),
        }
        fused = train_fusion_readout(self.model, batch, self.config.fusion_weight)
        if fused is not None:
            losses["fused"] = fused
        output = ModelOutput(None, {m: logits.detach()}, {m: features.detach()})
        return StepResult(losses, output, {"mie/grad_norm": step.grad_norm})

    # -------------------------------------------------------------------------------------- backward phase
    def layers(self, modality: str) -> list[tuple[str, torch.nn.Linear]]:
        """The Linear layers of ``modality`` (its encoder's in module order, then its head)."""
        return linear_layers(self.model.encoders[modality], self.model.heads[modality])

    def _enter(self, stage: Stage) -> None:
        """Start ``stage``: compute the projections of the stage before it (if another modality trained there)."""
        previous = self.schedule.previous(stage)
        self.source, self.projections = None, {}
        if self.config.gradient_modification and previous is not None and previous.modality != stage.modality:
            self.projections = self.collect_projections(previous.modality, stage.index)
            self.source = previous.modality
        self.stage_index = stage.index

    def collect_projections(self, modality: str, salt: int = 0) -> dict[str, torch.Tensor]:
        """P of every Linear layer of ``modality`` from its input covariance over the training set."""
        data = self.context.train_data
        n, b = len(data), self.context.nominal_batch_size
        order = np.random.default_rng([self.context.seed, 4, salt]).permutation(n)
        starts = list(range(0, n - b + 1, b)) if n >= b else [0]  # full batches only, as the released loader
        if self.config.covariance_batches is not None:
            starts = starts[: self.config.covariance_batches]
        encoder, head = self.model.encoders[modality], self.model.heads[modality]
        layers = self.layers(modality)
        was_training = encoder.training, head.training
        encoder.eval()
        head.eval()
        try:
            with torch.no_grad(), InputCovariance(layers) as cov:
                for s in starts:
                    idx = torch.from_numpy(order[s : s + b])
                    x = data.batch(idx, [modality])[modality].to(self.context.device)
                    head(encoder(x))
        finally:
            encoder.train(was_training[0])
            head.train(was_training[1])
        out = {}
        for name, layer in layers:
            if name in cov.covariance:
                out[name] = flat_projection(cov.covariance[name], self.config.tau).to(layer.weight.dtype)
        return out

    def _modify_gradients(self, modality: str) -> None:
        if not self.projections or self.source is None:
            return
        pairs = match_layers(self.layers(modality), self.layers(self.source), self.config.layer_matching)
        current = dict(self.layers(modality))
        with torch.no_grad():
            for name, sources in pairs.items():
                weight = current[name].weight
                if weight.grad is None:
                    continue
                grad = weight.grad
                for src in sources:
                    if src in self.projections:
                        grad = grad @ self.projections[src]
                weight.grad.copy_(grad)

    # ----------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Stage index, the projections' source modality and the P matrices.

        The covariances exist only inside the ``train_step`` that opens a stage, so they need no saving; the
        collection batches are drawn from (seed, stage), so a resumed run recomputes nothing differently.
        """
        return {
            "stage_index": self.stage_index,
            "source": self.source,
            "projections": {k: v.detach().cpu().clone() for k, v in self.projections.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.stage_index = int(state["stage_index"])
        self.source = state["source"]
        self.projections = {k: torch.as_tensor(v).to(self.context.device) for k, v in state["projections"].items()}
