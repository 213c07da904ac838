"""DUS in any training loop: a controller that keeps S_t(m) and decides the quantities, plus the batch helpers.

Per iteration of a user's own loop (DESIGN.md, "The user's own loop")::

    q = controller.quantities()                      # n_m per modality; the sampler runs at decision points
    x, y, n_paired = nested_prefixes(inputs, labels, q)  # modality m: first n_m; fusion: first min_m n_m
    ... forward; loss = fusion loss on the paired prefix + sum(unimodal_losses(logits, y, q, B).values()) ...
    controller.update(logits, labels)                # s_t(m) from each modality's logits, then advance

The controller owns the statistics and the iteration counter and knows nothing of models or optimisers, so the
Trainer uses it too (through ``update_scores``, with scores it computes under ``no_grad``). Samplers are resolved
with ``make_sampler``, which finds the heuristic and learned-policy samplers through entry points, so this module
imports nothing from ``agents``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mml_backbones.errors import ConfigError
from mml_backbones.observation import DiscrepancyObservation, ValidationContext
from mml_backbones.quantities import Quantities, QuantityBounds, validate_quantities
from mml_backbones.samplers import Sampler, make_sampler
from mml_backbones.statistics import ModalityStatistics, StatisticsConfig

Labels = torch.Tensor | Mapping[str, torch.Tensor]


class DUSController:
    """Keeps S_t(m) for a training loop and returns each iteration's quantities from a sampler.

    Args:
        modalities: modality names; the order of every per-modality array.
        sampler: a ``Sampler`` or a spec such as ``"uniform"``, ``"heuristic:gamma=2"``, ``"policy:PATH.zip"``.
        batch_size: the nominal batch size B (uniform quantities; the unimodal losses' normaliser).
        decision_interval: iterations between sampler calls; the first call is at iteration 0.
        total_iterations: iterations in the schedule, for the observation's progress (None: progress stays 0).
        statistics: how S_t(m) accumulates s_t(m).
        max_quantity: largest n_m accepted (None: ``QuantityBounds().high`` x B).
        trust_file: a ``"policy:PATH.zip"`` sampler is loaded with SB3's full loader, which unpickles the file
            (logged); off by default, when the file is read as data. Only for a file you trust.
    """

    def __init__(
        self,
        modalities: Sequence[str],
        sampler: Sampler | str | None = "uniform",
        batch_size: int = 64,
        decision_interval: int = 1,
        total_iterations: int | None = None,
        statistics: StatisticsConfig | None = None,
        max_quantity: int | None = None,
        trust_file: bool = False,
    ) -> None:
        self.modalities = tuple(modalities)
        if not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise ConfigError(f"modalities must be distinct names, at least one; got {list(modalities)}")
        for name, value in (("batch_size", batch_size), ("decision_interval", decision_interval)):
            if int(value) != value or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if total_iterations is not None and (int(total_iterations) != total_iterations or total_iterations < 1):
            raise ConfigError(f"total_iterations must be a positive integer or None, got {total_iterations!r}")
        self.batch_size = int(batch_size)
        self.decision_interval = int(decision_interval)
        self.total_iterations = None if total_iterations is None else int(total_iterations)
        self.max_quantity = int(max_quantity) if max_quantity is not None else QuantityBounds().at(self.batch_size)[1]
        if self.max_quantity < 1:
            raise ConfigError(f"max_quantity must be >= 1, got {max_quantity}")
        # modalities= lets a learned policy refuse a run with another number of modalities, here and not later
        self.sampler: Sampler = make_sampler(
            "uniform" if sampler is None else sampler,
            modalities=self.modalities,
            batch_size=self.batch_size,
            trust_file=trust_file,
        )
        if self.total_iterations is None and "progress" in getattr(self.sampler, "features", ()):
            warnings.warn(
                "this sampler observes training progress but total_iterations is not set: progress stays 0",
                stacklevel=2,
            )
        if getattr(self.sampler, "validation_context", None) == "decision":
            warnings.warn(
                "this policy reads the validation context at every decision (DUS-Family-v2): call "
                "record_validation(ValidationContext(...)) before each decision, or its val_* features describe the "
                "last context recorded",
                stacklevel=2,
            )
        # blocks of one decision interval: at each decision the latest block is the interval just run
        self.statistics = ModalityStatistics(self.modalities, statistics, block=self.decision_interval)
        self.iteration = 0
        self.sampler_calls = 0
        #: the quantities in force (None before the first decision)
        self.current: dict[str, int] | None = None
        #: iterations the current quantities still hold for; 0: the next quantities() decides
        self.decision_left = 0
        #: the latest epoch-end validation (the observation's val_* features; None: none yet)
        self.validation: ValidationContext | None = None

    # ------------------------------------------------------------------------------------------- decisions
    @property
    def progress(self) -> float:
        """Fraction of the schedule done (0 when total_iterations is not known)."""
        return 0.0 if self.total_iterations is None else min(1.0, self.iteration / self.total_iterations)

    @property
    def decision_due(self) -> bool:
        """True when the next ``quantities()`` call will ask the sampler."""
        return self.current is None or self.decision_left == 0

    def observation(self) -> DiscrepancyObservation:
        """The cumulative modality discrepancy and how learning is going now, as samplers see it.

        speed and loss come from the statistics' blocks of one decision interval; allocation is the quantities
        in force (the last decision's) as shares, 1/M each before the first decision.
        """
        s = self.statistics
        if self.current is None:
            allocation = np.full(len(self.modalities), 1.0 / len(self.modalities))
        else:
            n = np.array([self.current[m] for m in self.modalities], dtype=float)
            allocation = n / n.sum()
        return DiscrepancyObservation(
            modalities=self.modalities,
            cumulative=s.cumulative.copy(),
            last=s.last.copy(),
            samples=s.samples.copy(),
            progress=self.progress,
            iteration=self.iteration,
            nominal_batch_size=self.batch_size,
            speed=s.speed,
            loss=s.loss,
            allocation=allocation,
            validation=self.validation,
        )

    def record_validation(self, context: ValidationContext) -> None:
        """Make ``context`` (an epoch-end validation) what the observation's val_* features read from now on.

        ``fit`` and the environment do this at every epoch end (``mml_backbones.selection``); a user's own loop
        that validates may call it too.
        """
        self.validation = context

    def validate(self, quantities: Quantities) -> dict[str, int]:
        """Check quantities against the modalities and max_quantity; return them as a dict of ints."""
        return validate_quantities(quantities, self.modalities, self.max_quantity)

    def quantities(self) -> dict[str, int]:
        """The n_m of the next iteration; asks the sampler at decision points and caches its answer."""
        if self.decision_due:
            # validated once per decision, not once per iteration
            self._set(self.validate(self.sampler(self.observation())))
            self.sampler_calls += 1
        assert self.current is not None
        return dict(self.current)

    def set_quantities(self, quantities: Quantities) -> dict[str, int]:
        """Impose quantities for the next decision_interval iterations instead of asking the sampler."""
        q = self.validate(quantities)
        self._set(q)
        return dict(q)

    def _set(self, q: dict[str, int]) -> None:
        self.current = q
        self.decision_left = self.decision_interval

    # ---------------------------------------------------------------------------------------------- updates
    def update_scores(
        self,
        scores: Mapping[str, float],
        quantities: Quantities | None = None,
        losses: Mapping[str, float] | None = None,
    ) -> None:
        """Record one iteration's scores s_t(m) (modalities absent are not scored) and advance the iteration.

        ``losses``: each scored modality's mean unimodal cross-entropy this iteration (the observation's loss
        feature); where one is missing, -log s_t(m) stands in (a lower bound).
        """
        unknown = [m for m in [*scores, *(losses or {})] if m not in self.modalities]
        if unknown:
            raise ConfigError(f"scores name unknown modality {unknown}; modalities are {list(self.modalities)}")
        q = self._used(quantities)
        given = {m: float(v) for m, v in (losses or {}).items() if m in scores}
        self.statistics.update({m: float(s) for m, s in scores.items()}, q, given)
        self.iteration += 1
        self.decision_left = max(0, self.decision_left - 1)

    def update(
        self, logits: Mapping[str, torch.Tensor], labels: Labels, quantities: Quantities | None = None
    ) -> dict[str, float]:
        """Score each modality's unimodal logits (over its first n_m samples) and advance; returns s_t(m).

        ``labels`` is the drawn chunk's labels (modality m's are the first n_m) or one tensor per modality;
        ``quantities`` defaults to those ``quantities()`` returned. Modalities with no logits are not scored.
        Each modality's mean cross-entropy over the same samples is recorded too (the loss feature).
        """
        scores, losses = {}, {}
        for m, x in logits.items():
            if len(x):
                scores[m], losses[m] = score_and_loss(x, _labels_of(labels, m, len(x)))
        self.update_scores(scores, quantities, losses)
        return scores

    def update_probabilities(
        self, probabilities: Mapping[str, torch.Tensor | Sequence[float]], quantities: Quantities | None = None
    ) -> dict[str, float]:
        """Like ``update``, from each modality's per-sample true-class probabilities; returns s_t(m)."""
        scores, losses = {}, {}
        for m, p in probabilities.items():
            p = torch.as_tensor(p).detach().float().reshape(-1)
            if len(p):
                scores[m] = float(p.mean())
                losses[m] = float(-torch.log(p.clamp_min(1e-12)).mean())  # the cross-entropy, exactly
        self.update_scores(scores, quantities, losses)
        return scores

    def _used(self, quantities: Quantities | None) -> Mapping[str, int]:
        if quantities is None:
            if self.current is None:
                raise ConfigError("no quantities for this iteration: call quantities() first or pass quantities=")
            return self.current
        if self.current is not None and quantities == self.current:
            return self.current  # already validated when it was decided
        return self.validate(quantities)

    # ----------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (the sampler is rebuilt by the constructor, not saved)."""
        return {
            "modalities": list(self.modalities),
            "iteration": self.iteration,
            "sampler_calls": self.sampler_calls,
            "quantities": None if self.current is None else dict(self.current),
            "left": self.decision_left,
            "statistics": self.statistics.state_dict(),
            "validation": None if self.validation is None else self.validation.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()``."""
        if tuple(state["modalities"]) != self.modalities:
            raise ConfigError(
                f"controller state is for modalities {list(state['modalities'])}, this one has {list(self.modalities)}"
            )
        self.iteration = int(state["iteration"])
        self.sampler_calls = int(state["sampler_calls"])
        q = state["quantities"]
        self.current = None if q is None else {m: int(q[m]) for m in self.modalities}
        self.decision_left = int(state["left"])
        self.statistics.load_state_dict(state["statistics"])
        v = state.get("validation")  # states written before the validation context existed have none
        self.validation = None if v is None else ValidationContext.from_state(v)

    def __repr__(self) -> str:
        return (
            f"DUSController(modalities={list(self.modalities)}, sampler={self.sampler!r}, "
            f"batch_size={self.batch_size}, decision_interval={self.decision_interval}, iteration={self.iteration})"
        )


# -------------------------------------------------------------------------------------------------- helpers
def true_class_score(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """s_t: the mean softmax probability of the true class (the DUS paper's per-iteration score)."""
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ConfigError(
            f"need logits of shape (n, classes) and n labels; got logits {tuple(logits.shape)}, "
            f"labels {tuple(labels.shape)}"
        )
    if len(logits) == 0:
        raise ConfigError("cannot score an empty batch")
    with torch.no_grad():
        p = torch.softmax(logits.detach().float(), -1)
        return float(p.gather(1, labels.to(p.device).long().reshape(-1, 1)).mean())


def score_and_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """s_t (mean true-class softmax probability) and the mean cross-entropy of one modality's logits."""
    s = true_class_score(logits, labels)  # validates the shapes
    with torch.no_grad():
        ce = F.cross_entropy(logits.detach().float(), labels.to(logits.device).long().reshape(-1))
    return s, float(ce)


def nested_prefixes(
    inputs: Mapping[str, torch.Tensor], labels: torch.Tensor, quantities: Mapping[str, int]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
    """Slice a drawn chunk of max_m n_m samples: modality m takes the first n_m; returns (inputs, labels, n_paired).

    The fusion uses the paired prefix, the first ``n_paired = min_m n_m`` samples of every modality.
    """
    q = validate_quantities(quantities, tuple(inputs))
    k = max(q.values())
    short = {m: len(x) for m, x in inputs.items() if len(x) < k}
    if len(labels) < k:
        short["labels"] = len(labels)
    if short:
        raise ConfigError(
            f"the chunk must hold max_m n_m = {k} samples (quantities {q}); too short: {short}. "
            "Draw max(quantities.values()) samples per iteration."
        )
    return {m: inputs[m][: q[m]] for m in q}, {m: labels[: q[m]] for m in q}, min(q.values())


def unimodal_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Summed cross-entropy over the given samples divided by the nominal batch size B (so n_m sets its weight)."""
    return F.cross_entropy(logits, labels, reduction="sum") / batch_size


def unimodal_losses(
    logits: Mapping[str, torch.Tensor], labels: Labels, quantities: Mapping[str, int] | None, batch_size: int
) -> dict[str, torch.Tensor]:
    """Each modality's summed cross-entropy over its n_m samples divided by the nominal batch size B.

    ``labels`` is the chunk's labels (modality m's are the first n_m) or one tensor per modality (then
    ``quantities`` may be None).
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    out = {}
    for m, x in logits.items():
        if isinstance(labels, Mapping):
            n = len(x)
        else:
            if quantities is None or m not in quantities:
                raise ConfigError(f"no quantity for modality {m!r}: pass quantities or per-modality labels")
            n = int(quantities[m])
        if len(x) != n:
            raise ConfigError(f"modality {m!r}: {len(x)} logits but n_m = {n}; give logits over its first n_m samples")
        out[m] = unimodal_cross_entropy(x, _labels_of(labels, m, n), batch_size)
    return out


def _labels_of(labels: Labels, modality: str, n: int) -> torch.Tensor:
    """Modality ``modality``'s labels: its own tensor, or the first n of the chunk."""
    if isinstance(labels, Mapping):
        if modality not in labels:
            raise ConfigError(f"no labels for modality {modality!r}; labels has {list(labels)}")
        y = labels[modality]
        if len(y) != n:
            raise ConfigError(f"modality {modality!r}: {n} logits but {len(y)} labels")
        return y
    if len(labels) < n:
        raise ConfigError(f"modality {modality!r}: {n} logits but the chunk has only {len(labels)} labels")
    return labels[:n]
