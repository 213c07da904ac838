"""ECSP: single-multi modal ensemble with emotion-cultural specific prompts (Xu, Chi, Yang, WECIA 2023).

The published solution (arXiv 2403.17683, first in the WECIA Emotion Prediction Competition on ArtELingo:
macro-F1 0.627, accuracy 0.741 on the final test) trains a text-only model (XLM-R) and an image + text model
(X^2-VLM) and combines their predictions, because the comment carries more signal than the image; every comment
is wrapped in a prompt naming the annotator's language/culture and the emotion vocabulary. The template and the
ensemble weights were not published; ours are documented here and in data/prompts.py.

Here both branches live in one MultimodalModel and train together, each with its own loss:
    text branch    the text modality's own head, ``heads[text_modality]``, cross-entropy on its n_text samples
                   (summed, divided by the nominal batch size B, as every unimodal loss) x ``text_loss_weight``;
    fusion branch  the fusion head on all modalities, cross-entropy on the paired prefix x ``fusion_loss_weight``.
The other modalities' heads are detached monitors (they feed the DUS statistics without training the encoders)
unless ``other_loss_weight`` > 0. Under any sampler the text branch sees n_text samples, the image encoder
n_image, the fusion branch the min of the two, as the default nested-prefix batches give them.

Prediction: ``w * softmax(text head) + (1 - w) * softmax(fusion head)``. ``w`` starts at ``text_weight`` and,
with ``select_weight``, is re-chosen on the validation predictions (every epoch and before the final report)
as the value of ``weight_grid`` with the best ``selection_metric``; ties go to the value nearest ``text_weight``.

Test-time augmentation (``tta="hflip"``, off by default): at evaluation every image encoder's features are the
mean of those of the image and of its horizontal mirror. With linear heads on concat or sum fusion this is the
mean of the logits over the two views. The published solution used TTA without saying which; this is ours.

Not reproduced: the retrieval-based pseudo-labels of the published solution, and its separate pretrained models
(use the ``hf_text`` encoder for XLM-R and precomputed image features for the vision side).

Extra metrics: the branches' own macro-F1 and accuracy (``text_branch/...``, ``fusion_branch/...``), the chosen
weight (``ecsp/text_weight``) and, when the split's meta has a ``language`` column, the ensemble's macro-F1 and
accuracy per language (``f1/<language>``, ``acc/<language>``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from mml_backbones.errors import ConfigError
from mml_backbones.methods.base import (
    IterationBatch,
    Method,
    MethodContext,
    Predictions,
    fused_loss,
    softmax,
    unimodal_loss,
)
from mml_backbones.metrics import accuracy, macro_f1
from mml_backbones.models.model import ModelOutput, MultimodalModel

DEFAULT_GRID = tuple(round(0.1 * k, 1) for k in range(11))


@dataclass(frozen=True)
class ECSPConfig:
    """ECSP settings (the paper published none of these numbers; the defaults are ours).

    Attributes:
        text_modality: the modality of the single-modal branch (the comment); "auto" takes "text" when there
            is one, else the first modality of token ids, else the first modality.
        text_loss_weight: weight of the text branch's loss (0: its head becomes a detached monitor).
        fusion_loss_weight: weight of the fusion branch's loss.
        other_loss_weight: weight of the other modalities' own head losses (0: detached monitors).
        text_weight: ensemble weight w of the text branch before (or without) selection on validation.
        weight_grid: the values of w tried on validation.
        select_weight: choose w on validation; False keeps ``text_weight``.
        selection_metric: what w maximises on validation: "macro_f1" (the competition's score) or "accuracy".
        tta: test-time augmentation: "none" or "hflip" (image features averaged over the mirror image).
        language_key: the meta column that per-language metrics group by.
    """

    text_modality: str = "auto"
    text_loss_weight: float = 1.0
    fusion_loss_weight: float = 1.0
    other_loss_weight: float = 0.0
    text_weight: float = 0.5
    weight_grid: tuple[float, ...] = DEFAULT_GRID
    select_weight: bool = True
    selection_metric: Literal["macro_f1", "accuracy"] = "macro_f1"
    tta: Literal["none", "hflip"] = "none"
    language_key: str = "language"

    def __post_init__(self) -> None:
        for name in ("text_loss_weight", "fusion_loss_weight", "other_loss_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"ecsp: {name} must be >= 0, got {getattr(self, name)}")
        if self.text_loss_weight == 0 and self.fusion_loss_weight == 0:
            raise ConfigError("ecsp: text_loss_weight and fusion_loss_weight are both 0; nothing would train")
        if not self.weight_grid or any(not 0.0 <= w <= 1.0 for w in self.weight_grid):
            raise ConfigError(f"ecsp: weight_grid must be non-empty with values in [0, 1], got {self.weight_grid}")
        if not 0.0 <= self.text_weight <= 1.0:
            raise ConfigError(f"ecsp: text_weight must be in [0, 1], got {self.text_weight}")
        if self.selection_metric not in ("macro_f1", "accuracy"):
            raise ConfigError(f"ecsp: selection_metric must be macro_f1 or accuracy, got {self.selection_metric!r}")
        if self.tta not in ("none", "hflip"):
            raise ConfigError(f"ecsp: tta must be 'none' or 'hflip', got {self.tta!r}")


def _hflip_average(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor | None:
    """Forward hook: in eval mode, average the features of the input and of its horizontal mirror."""
    if module.training:
        return None
    # module.forward skips the hooks, so this does not recurse
    return (output + module.forward(torch.flip(args[0], dims=(-1,)))) / 2


def resolve_text_modality(name: str, context: MethodContext) -> str:
    """The single-modal branch's modality: ``name``, or for "auto" "text", the first token-id modality, the first."""
    modalities = context.modalities
    if name != "auto":
        if name not in modalities:
            raise ConfigError(
                f"ecsp: text_modality {name!r} is not among the modalities {list(modalities)}; "
                "set --method-option text_modality=<name> or auto"
            )
        return name
    if "text" in modalities:
        return "text"
    data = context.train_data.modalities
    integer = [m for m in modalities if data[m].dtype in (torch.int64, torch.int32)]
    return integer[0] if integer else modalities[0]


def per_group_metrics(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Macro-F1 and accuracy of ``scores`` within each value of ``groups`` (e.g. each language)."""
    y_hat = scores.argmax(1)
    out = {}
    for g in sorted({str(v) for v in groups}):
        rows = np.asarray([str(v) == g for v in groups])
        out[f"f1/{g}"] = macro_f1(labels[rows], y_hat[rows], scores.shape[1])
        out[f"acc/{g}"] = accuracy(labels[rows], y_hat[rows])
    return out


class ECSP(Method):
    """Text-only head + fusion head trained together; their softmax mixed with a weight chosen on validation."""

    Config = ECSPConfig
    reference = (
        "Xu, Chi, Yang, Solution for Emotion Prediction Competition of Workshop on Emotionally and Culturally "
        "Intelligent AI (ECSP), arXiv 2403.17683"
    )
    #: the paper names no optimiser; Adam 1e-3 is ours (the setting of benchmarks/ecsp_prompts.py)
    paper_optim: ClassVar[dict[str, Any]] = {"name": "adam", "lr": 1e-3}

    def __init__(self, config: ECSPConfig, model: MultimodalModel, context: MethodContext) -> None:
        super().__init__(config, model, context)
        self.text_modality = resolve_text_modality(config.text_modality, context)
        self.weight = float(config.text_weight)
        self._hooks: list[RemovableHandle] = []
        if config.tta == "hflip":
            images = [
                m
                for m in context.modalities
                if m != self.text_modality and len(context.train_data.input_shape(m)) in (3, 4)
            ]
            if not images:
                raise ConfigError("ecsp: tta='hflip' needs an image modality of shape (C, H, W) or (T, C, H, W)")
            self._hooks = [model.encoders[m].register_forward_hook(_hflip_average) for m in images]

    def _trains_head(self, modality: str) -> bool:
        if modality == self.text_modality:
            return self.config.text_loss_weight > 0
        return self.config.other_loss_weight > 0

    def forward(self, batch: IterationBatch) -> ModelOutput:
        """Encode every modality; only the heads that have a loss send gradient into their encoders."""
        features = self.model.encode(batch.inputs)
        unimodal = {m: self.model.heads[m](f if self._trains_head(m) else f.detach()) for m, f in features.items()}
        fused = None
        if batch.n_paired > 0 and all(m in features for m in self.model.modalities):
            fused = self.model.fuse(features, unimodal, batch.n_paired)
        return ModelOutput(fused, unimodal, features)

    def losses(self, output: ModelOutput, batch: IterationBatch) -> dict[str, torch.Tensor]:
        """Fusion-branch and text-branch cross-entropies (and the other heads' monitor terms)."""
        cfg = self.config
        out = {"fused": cfg.fusion_loss_weight * fused_loss(output, batch)}
        for m in self.context.modalities:
            term = unimodal_loss(output, batch, m)
            weight = cfg.text_loss_weight if m == self.text_modality else cfg.other_loss_weight
            if self._trains_head(m):
                out[f"unimodal/{m}"] = weight * term
            else:
                out[f"monitor/{m}"] = term
        return out

    def branch_probabilities(self, predictions: Predictions) -> tuple[np.ndarray, np.ndarray]:
        """Softmax of the text head and of the fusion head."""
        return softmax(predictions.unimodal_logits[self.text_modality]), softmax(predictions.fused_logits)

    def mix(self, predictions: Predictions, weight: float) -> np.ndarray:
        """``weight * p_text + (1 - weight) * p_fused``."""
        p_text, p_fused = self.branch_probabilities(predictions)
        return weight * p_text + (1.0 - weight) * p_fused

    def fused_scores(self, predictions: Predictions) -> np.ndarray:
        """The ensemble's class probabilities with the current weight."""
        return self.mix(predictions, self.weight)

    def _score(self, labels: np.ndarray, scores: np.ndarray) -> float:
        y_hat = scores.argmax(1)
        if self.config.selection_metric == "accuracy":
            return accuracy(labels, y_hat)
        return macro_f1(labels, y_hat, scores.shape[1])

    def select_on_validation(self, predictions: Predictions) -> dict[str, float]:
        """Choose the text weight on validation predictions; returns it and its validation score."""
        if not self.config.select_weight:
            return {"text_weight": self.weight}
        p_text, p_fused = self.branch_probabilities(predictions)
        results = [
            (self._score(predictions.labels, w * p_text + (1 - w) * p_fused), w) for w in self.config.weight_grid
        ]
        best = max(score for score, _ in results)
        ties = [w for score, w in results if score == best]
        self.weight = float(min(ties, key=lambda w: abs(w - self.config.text_weight)))
        return {"text_weight": self.weight, f"val_{self.config.selection_metric}": best}

    def extra_metrics(self, predictions: Predictions, scores: np.ndarray) -> dict[str, float]:
        """Each branch's macro-F1 and accuracy, the weight, and the ensemble's per-language scores."""
        labels = predictions.labels
        k = scores.shape[1]
        out = {"ecsp/text_weight": self.weight}
        for branch, probs in zip(("text_branch", "fusion_branch"), self.branch_probabilities(predictions)):
            out[f"{branch}/macro_f1"] = macro_f1(labels, probs.argmax(1), k)
            out[f"{branch}/acc"] = accuracy(labels, probs.argmax(1))
        groups = predictions.meta.get(self.config.language_key)
        if groups is not None:
            out.update(per_group_metrics(labels, scores, np.asarray(groups)))
        return out

    def state_dict(self) -> dict[str, Any]:
        """The chosen text weight."""
        return {"text_weight": self.weight}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the chosen text weight."""
        self.weight = float(state.get("text_weight", self.config.text_weight))
