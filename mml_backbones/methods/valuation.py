"""Sample-level modality valuation with re-sampling (Wei, Feng, Wang and Hu, CVPR 2024).

"Enhancing Multimodal Cooperation via Sample-level Modality Valuation"; code
GeWu-Lab/Valuate-and-Enhance-Multimodal-Cooperation (code/sample_level.py, code/datasets/dataloader.py).

Algorithm, as the released sample-level method does it:

1. Valuation. For every training sample the fused prediction is made from each subset S of the modalities, the
   others' encoder features replaced by zeros (the released ``exec_drop``); the value is v(S) = |S| when that
   prediction is right, else 0, and v(empty) = 0. A modality's contribution phi_m is its exact Shapley value. For two
   modalities this is the released (v({a}) + v({a, v}) - v({v})) / 2; with M modalities all 2^M - 1 subsets are
   scored (encoders run once, only the fusion and its head per subset; M <= 8). Eval mode, no gradient, the whole
   training split.
2. Re-sampling. A sample gets one extra copy for modality m per threshold of (0.9, 0.4, -0.1) above phi_m: for two
   modalities phi in {1.5, 1} -> 0 copies, 0.5 -> 1, 0 -> 2, -0.5 -> 3 (the released rule; the gap 1 - phi sets the
   count). A copy for m keeps m only: every other modality's features are zeros (two modalities: the other dropped).
3. Schedule: plain fusion training for ``warmup_epochs`` (5); then the valuation is redone every ``interval_epochs``
   (every epoch, as released) with the weights at the end of the previous epoch.
4. Loss: the fusion cross-entropy (the released loss; the unimodal heads are detached monitors) plus the copies'.

How it runs in the one loop (a deliberate departure): the released code trains each epoch on an enlarged dataset, the
N originals and the C copies shuffled together. Here the Trainer's stream supplies the originals, and IterationBatch
carries no sample indices, so the copies cannot be tied to the batch's own samples. The method keeps the copies as its
own pool instead: shuffled each epoch by a generator seeded with (seed, epoch), split evenly over the epoch's
iterations; iteration j reads its slice's kept modality from the training split and adds sum CE / B of the fused
prediction with the other modalities zeroed. Each copy is seen once an epoch with weight 1/B, like every original, so
an epoch holds the released epoch's samples and weights, in the Trainer's N / B steps instead of (N + C) / B. The
copies for m and the batch's own samples of m pass m's encoder together (one BatchNorm batch, as the mixed batches).

Under a DUS sampler: the valuation ignores the quantities and the copies term does not scale with n_m; the fusion loss
uses the paired prefix (min n_m) and modality m's other samples reach only its monitor head (and the plug-in's
unimodal loss). Per-sample valuation and per-modality DUS quantities add up here; they are not integrated.

Other departures: the valuation reads the training split as stored (the released sweep re-reads it with training
augmentations); for M > 2 the thresholds apply to phi_m unchanged (the full share is still 1 per modality, v(N) = M).
The released script keeps the epoch that scores best on the test set; the Trainer selects on validation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from mml_backbones.errors import ConfigError
from mml_backbones.methods.base import IterationBatch, Method, MethodContext, StepResult, fused_loss
from mml_backbones.models.model import ModelOutput, MultimodalModel
from mml_backbones.optim import ADAM_5E5_STEP30

MAX_MODALITIES = 8


@dataclass(frozen=True)
class ValuationConfig:
    """Sample-level valuation settings (defaults from the released code/sample_level.py).

    Attributes:
        warmup_epochs: epochs of plain fusion training before re-sampling starts (``--warmup`` 5).
        interval_epochs: epochs between two valuations; the copies are reshuffled every epoch (released: 1).
        thresholds: one extra copy for modality m per threshold above phi_m (released: 0.9, 0.4, -0.1).
        copies_weight: weight of the copies' loss (1: each copy counts as one more sample, as released).
    """

    warmup_epochs: int = 5
    interval_epochs: int = 1
    thresholds: tuple[float, ...] = (0.9, 0.4, -0.1)
    copies_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.warmup_epochs < 0 or self.interval_epochs < 1:
            raise ConfigError(f"valuation: need warmup_epochs >= 0 and interval_epochs >= 1, got {self}")
        if self.copies_weight < 0:
            raise ConfigError(f"valuation: copies_weight must be >= 0, got {self.copies_weight}")


def fuse_subset(model: MultimodalModel, present: Mapping[str, torch.Tensor], n: int) -> torch.Tensor:
    """Fused logits of ``n`` samples from the modalities in ``present``; the others' features are zeros.

    A fusion of logits (late) gets zero logits, a uniform prediction, for the absent modalities.
    """
    ref = next(iter(present.values()))
    feats = {m: present.get(m, ref.new_zeros(n, model.encoders[m].feature_dim)) for m in model.modalities}
    logits = {}
    if model.fusion.consumes_logits:
        logits = {
            m: model.heads[m](present[m]) if m in present else ref.new_zeros(n, model.num_classes)
            for m in model.modalities
        }
    return model.fuse(feats, logits, n)


def shapley_contributions(
    predict: Callable[[tuple[str, ...]], torch.Tensor], labels: torch.Tensor, modalities: Sequence[str]
) -> torch.Tensor:
    """(N, M) exact Shapley values of v(S) = |S| * [predict(S) == label], v(empty) = 0.

    ``predict(S)`` returns the (N,) predicted classes from the modalities of S alone (the others zeroed).
    """
    m_count = len(modalities)
    value = {(): torch.zeros(len(labels), dtype=torch.float64)}
    for size in range(1, m_count + 1):
        for subset in itertools.combinations(modalities, size):
            value[subset] = size * (predict(subset) == labels).double()
    phi = torch.zeros(len(labels), m_count, dtype=torch.float64)
    for i, m in enumerate(modalities):
        others = [k for k in modalities if k != m]
        for size in range(m_count):
            weight = math.factorial(size) * math.factorial(m_count - size - 1) / math.factorial(m_count)
            for subset in itertools.combinations(others, size):
                with_m = tuple(k for k in modalities if k in subset or k == m)  # keep the modality order
                phi[:, i] += weight * (value[with_m] - value[subset])
    return phi


def resample_counts(contributions: torch.Tensor, thresholds: Sequence[float]) -> torch.Tensor:
    """Extra copies per sample and modality: how many thresholds lie strictly above each contribution."""
    t = torch.as_tensor(list(thresholds), dtype=contributions.dtype)
    return (contributions.unsqueeze(-1) < t).sum(-1)


class Valuation(Method):
    """Fusion loss plus unimodal copies of the samples whose modality contributes little (CVPR 2024)."""

    Config = ValuationConfig
    reference = (
        "Wei, Feng, Wang and Hu, Enhancing Multimodal Cooperation via Sample-level Modality Valuation, CVPR 2024; "
        "code GeWu-Lab/Valuate-and-Enhance-Multimodal-Cooperation"
    )
    recommended_fusion = "concat"
    #: the released optimiser (code/sample_level.py): Adam, StepLR(30, 0.1), 60 epochs of batches of 64
    paper_optim: ClassVar[dict[str, Any]] = ADAM_5E5_STEP30

    def __init__(self, config: ValuationConfig, model: MultimodalModel, context: MethodContext) -> None:
        super().__init__(config, model, context)
        if len(context.modalities) > MAX_MODALITIES:
            raise ConfigError(f"valuation: exact Shapley values need <= {MAX_MODALITIES} modalities")
        self.counts: torch.Tensor | None = None  # (N, M) extra copies, from the last valuation
        self.contribution: dict[str, float] = {}
        self.valued_epoch = -1
        self.pool: np.ndarray = np.zeros((0, 2), dtype=np.int64)  # rows (sample, modality index)
        self.pool_epoch = -1

    @property
    def fusion_only(self) -> bool:
        return True

    @property
    def detach_unimodal(self) -> bool:
        # monitors, unless the DUS plug-in makes the unimodal losses real (MethodContext.dus_losses, when present)
        return not getattr(self.context, "dus_losses", False)

    # --------------------------------------------------------------------------------------- valuation
    @torch.no_grad()
    def valuate(self) -> torch.Tensor:
        """(N, M) contributions of every modality to every training sample (eval mode, no gradient)."""
        data, device = self.context.train_data, self.context.device
        modalities = self.context.modalities
        was_training = self.model.training
        self.model.eval()
        parts = []
        try:
            for start in range(0, len(data), self.context.nominal_batch_size):
                idx = torch.arange(start, min(start + self.context.nominal_batch_size, len(data)))
                inputs = {m: x.to(device) for m, x in data.batch(idx, modalities).items()}
                feats = self.model.encode(inputs)
                n = len(idx)

                def predict(subset: tuple[str, ...], feats=feats, n=n) -> torch.Tensor:
                    return fuse_subset(self.model, {m: feats[m] for m in subset}, n).argmax(-1).cpu()

                parts.append(shapley_contributions(predict, data.labels[idx], modalities))
        finally:
            self.model.train(was_training)
        return torch.cat(parts)

    def _prepare(self, epoch: int) -> None:
        """Value (every ``interval_epochs`` from the warm-up's end) and shuffle this epoch's copies."""
        cfg = self.config
        due = (epoch - cfg.warmup_epochs) % cfg.interval_epochs == 0 and epoch != self.valued_epoch
        if self.counts is None or due:
            phi = self.valuate()
            self.counts = resample_counts(phi, cfg.thresholds)
            self.contribution = {m: float(phi[:, i].mean()) for i, m in enumerate(self.context.modalities)}
            self.valued_epoch = epoch
        self.pool = self.build_pool(self.counts, epoch)
        self.pool_epoch = epoch

    def build_pool(self, counts: torch.Tensor, epoch: int) -> np.ndarray:
        """Rows (sample, modality index), one per copy, shuffled by a generator seeded with (seed, epoch)."""
        flat = counts.numpy().astype(np.int64)
        samples, modality = np.nonzero(flat)
        reps = flat[samples, modality]
        pool = np.stack([np.repeat(samples, reps), np.repeat(modality, reps)], axis=1)
        return pool[np.random.default_rng([self.context.seed, 5, epoch]).permutation(len(pool))]

    def copies_of(self, batch: IterationBatch) -> np.ndarray:
        """This iteration's slice of the epoch's pool (an even split over the epoch's iterations)."""
        ipe = self.context.iterations_per_epoch
        j, c = batch.iteration % ipe, len(self.pool)
        return self.pool[j * c // ipe : (j + 1) * c // ipe]

    # ---------------------------------------------------------------------------------------- training
    def train_step(self, batch: IterationBatch) -> StepResult:
        active = batch.epoch >= self.config.warmup_epochs and self.config.copies_weight > 0
        if active and self.pool_epoch != batch.epoch:
            self._prepare(batch.epoch)
        copies = self.copies_of(batch) if active else self.pool[:0]
        data, device, modalities = self.context.train_data, self.context.device, self.context.modalities
        features, unimodal, copy_feats, copy_rows = {}, {}, {}, {}
        for i, m in enumerate(modalities):
            x, n_m = batch.inputs[m], batch.quantities[m]
            rows = copies[copies[:, 1] == i, 0]
            if len(rows):  # the copies of m share m's encoder call with the batch's own samples
                x = torch.cat([x, data.batch(torch.from_numpy(rows), [m])[m].to(device)])
            f = self.model.encoders[m](x)
            features[m], copy_feats[m], copy_rows[m] = f[:n_m], f[n_m:], rows
            unimodal[m] = self.model.heads[m](features[m].detach() if self.detach_unimodal else features[m])
        n = batch.n_paired
        fused = self.model.fuse(features, unimodal, n) if n > 0 else None
        output = ModelOutput(fused, unimodal, features)
        losses = {"fused": fused_loss(output, batch)}
        prefix = "monitor" if self.detach_unimodal else "dus"
        for m in modalities:
            head_ce = F.cross_entropy(unimodal[m], batch.labels_of(m), reduction="sum")
            losses[f"{prefix}/{m}"] = head_ce / batch.nominal_batch_size
            rows = copy_rows[m]
            if len(rows):
                logits = fuse_subset(self.model, {m: copy_feats[m]}, len(rows))
                y = data.labels[torch.from_numpy(rows)].to(device)
                ce = F.cross_entropy(logits, y, reduction="sum") / batch.nominal_batch_size
                losses[f"copies/{m}"] = self.config.copies_weight * ce
        total = sum(losses.values())
        if isinstance(total, torch.Tensor) and total.requires_grad:
            total.backward()
        extras = {f"valuation/copies/{m}": float(len(copy_rows[m])) for m in modalities}
        extras.update({f"valuation/contribution/{m}": v for m, v in self.contribution.items()})
        detached = ModelOutput(None, {m: z.detach() for m, z in unimodal.items()}, {})
        return StepResult({k: float(v.detach()) for k, v in losses.items()}, detached, extras)

    # ------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The copy counts of the last valuation and when they and the pool were made (the pool is rebuilt)."""
        counts = None if self.counts is None else self.counts.clone()
        return {
            "counts": counts,
            "contribution": dict(self.contribution),
            "valued_epoch": self.valued_epoch,
            "pool_epoch": self.pool_epoch,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.counts = None if state["counts"] is None else torch.as_tensor(state["counts"])
        self.contribution = dict(state["contribution"])
        self.valued_epoch = int(state["valued_epoch"])
        self.pool_epoch = int(state["pool_epoch"])
        if self.counts is not None and self.pool_epoch >= 0:
            self.pool = self.build_pool(self.counts, self.pool_epoch)
