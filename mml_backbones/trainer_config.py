"""The configuration of one training run, and how unset fields take the method's paper defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mml_backbones.config import from_dict, replace
from mml_backbones.device import resolve_device
from mml_backbones.errors import ConfigError
from mml_backbones.metrics import ProbeConfig
from mml_backbones.model_config import ModelConfig
from mml_backbones.observation import DEFAULT_FEATURES, check_features
from mml_backbones.optim import OptimConfig
from mml_backbones.quantities import QuantityBounds
from mml_backbones.statistics import StatisticsConfig

#: when the observation's validation features are refreshed (``TrainerConfig.validation_context``)
VALIDATION_CONTEXTS = ("epoch", "decision")


class ScheduleProgress:
    """``done`` and ``progress`` of a run that counts ``iteration`` up to ``total_iterations``."""

    iteration: int
    total_iterations: int

    @property
    def done(self) -> bool:
        """True when the whole schedule has run."""
        return self.iteration >= self.total_iterations

    @property
    def progress(self) -> float:
        """Fraction of the schedule done."""
        return min(1.0, self.iteration / self.total_iterations)


@dataclass(frozen=True)
class TrainerConfig:
    """Everything that defines a training run (saved, resolved, as config.json in the run directory).

    Attributes:
        dataset: registered dataset name.
        dataset_options: options of the dataset loader (path, preset, seed, ...).
        modalities: train on these modalities only (None: all); one modality gives a unimodal baseline.
        method: registered method name (joint, concat, ogm_ge, ...).
        method_options: overrides of the method config's defaults.
        model: the architecture; its fusion None takes the method's recommended fusion (else concat).
        optim: optimiser and schedule; None takes the optimiser of the method's paper (``Method.paper_optim``).
        batch_size: nominal batch size B.
        epochs: epochs in the schedule.
        iterations_per_epoch: iterations per epoch (None: ceil(N_train / B)).
        decision_interval: iterations between sampler decisions.
        bounds: the range of n_m relative to B; the Trainer refuses quantities above ``bounds.high * B``.
        dus_losses: the DUS plug-in: a fusion-only method (concat, ogm_ge) also gets one unimodal loss per
            modality over its n_m samples, normalised by B. On for a DUS sampler and for its fair uniform control.
        statistics: how S_t(m) accumulates.
        observation_features: the features of the observation vector given to learned samplers.
        eval_batch_size: batch size of evaluation passes.
        val_max_samples: evaluate per-epoch validation on a fixed subset of this size (None: whole split).
        validation_context: when the observation's validation features are refreshed: at every epoch end
            ("epoch", the pass that picks the kept epoch) or also at every decision ("decision": one more
            validation pass per decision in ``fit``, free in the environment, which validates every step), so a
            learned sampler reads a run before its first epoch ends. It never changes which epoch is kept.
        probe: the linear probe used in the final report.
        selection_metric: validation metric that picks the best epoch (fused_acc, macro_f1, map).
        seed: seed of initialisation, data order and noise.
        device: torch device: cpu, cuda, cuda:N, mps, or auto (cuda when available, else cpu; resolved when
            the run is built, and saved resolved).
        num_threads: torch CPU threads (None: leave torch's default).
    """

    dataset: str = "synthetic"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    modalities: tuple[str, ...] | None = None
    method: str = "joint"
    method_options: dict[str, Any] = field(default_factory=dict)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig | None = None
    batch_size: int = 64
    epochs: int = 20
    iterations_per_epoch: int | None = None
    decision_interval: int = 10
    bounds: QuantityBounds = field(default_factory=QuantityBounds)
    dus_losses: bool = False
    statistics: StatisticsConfig = field(default_factory=StatisticsConfig)
    observation_features: tuple[str, ...] = DEFAULT_FEATURES
    eval_batch_size: int = 1024
    val_max_samples: int | None = None
    validation_context: Literal["epoch", "decision"] = "epoch"
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    selection_metric: Literal["fused_acc", "macro_f1", "map"] = "fused_acc"
    seed: int = 0
    device: str = "cpu"
    num_threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs", "decision_interval", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.iterations_per_epoch is not None and self.iterations_per_epoch < 1:
            raise ConfigError(f"iterations_per_epoch must be >= 1, got {self.iterations_per_epoch}")
        if self.selection_metric not in ("fused_acc", "macro_f1", "map"):
            raise ConfigError(f"selection_metric must be fused_acc, macro_f1 or map, got {self.selection_metric!r}")
        if self.validation_context not in VALIDATION_CONTEXTS:
            raise ConfigError(
                f"validation_context must be one of {VALIDATION_CONTEXTS}, got {self.validation_context!r}"
            )
        check_features(self.observation_features)

    @property
    def max_quantity(self) -> int:
        """The largest n_m a run accepts."""
        return self.bounds.at(self.batch_size)[1]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainerConfig:
        """Build from a (JSON) dict, e.g. a run directory's config.json["trainer"]."""
        return from_dict(cls, dict(data))

    def resolved(self) -> TrainerConfig:
        """This config with the fields left unset (optimiser, fusion) filled in from the method's paper, and the
        device resolved (``auto``) and checked against this torch build."""
        from mml_backbones.methods import METHODS  # the methods import the models, which import this package

        cls = METHODS.get(self.method).method_class()
        changes: dict[str, Any] = {}
        if self.optim is None:
            changes["optim"] = from_dict(OptimConfig, dict(cls.paper_optim))
        if self.model.fusion is None:
            changes["model"] = replace(self.model, fusion=cls.recommended_fusion or "concat")
        device = resolve_device(self.device)
        if device != self.device:
            changes["device"] = device
        return replace(self, **changes) if changes else self
