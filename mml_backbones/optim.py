"""Optimisers and learning-rate schedules, by name: the config, the registries and the builders.

Each method names the optimiser of its paper or released code (``Method.paper_optim``); a run whose
``TrainerConfig.optim`` is None takes it (see ``trainer_config.resolve``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mml_backbones.errors import ConfigError
from mml_backbones.registry import Registry

if TYPE_CHECKING:  # torch is imported by the factories: OptimConfig is read by ``dus train --help``, torch-free
    import torch


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and learning-rate schedule.

    Attributes:
        name: registered optimiser ("sgd", "adam", "adamw").
        lr: learning rate.
        weight_decay: L2 (SGD, Adam) or decoupled (AdamW) weight decay.
        momentum: SGD momentum.
        schedule: registered schedule: "none", "step" (multiply by ``gamma`` every ``step_size`` epochs) or
            "cosine" (over the run's epochs).
        step_size: epochs between steps of the "step" schedule.
        gamma: factor of the "step" schedule.
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        scale_lr_by_quantity: give each modality's encoder and head their own parameter group whose learning
            rate is multiplied by n_m / B at every decision, so the allocation survives adaptive optimisers
            (Adam normalises the n_m / B scaling of the loss away). Off in the papers.
    """

    name: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: Literal["none", "step", "cosine"] = "none"
    step_size: int = 30
    gamma: float = 0.1
    grad_clip: float | None = None
    scale_lr_by_quantity: bool = False

    def __post_init__(self) -> None:
        OPTIMIZERS.get(self.name)
        SCHEDULES.get(self.schedule)
        if self.lr <= 0:
            raise ConfigError(f"learning rate must be > 0, got {self.lr}")


#: the optimiser of the Remix and sample-level valuation released code: Adam 5e-5, wd 1e-4, x0.1 every 30 epochs
ADAM_5E5_STEP30: dict[str, Any] = {
    "name": "adam",
    "lr": 5e-5,
    "weight_decay": 1e-4,
    "schedule": "step",
    "step_size": 30,
    "gamma": 0.1,
}

OptimizerFactory = Callable[..., "torch.optim.Optimizer"]
ScheduleFactory = Callable[["torch.optim.Optimizer", OptimConfig, int], "torch.optim.lr_scheduler.LRScheduler | None"]

OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")
SCHEDULES: Registry[ScheduleFactory] = Registry("lr schedule")


@OPTIMIZERS.register("sgd")
def _sgd(params: Iterable[Any], o: OptimConfig, **options: Any) -> torch.optim.Optimizer:
    import torch

    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, **options)


@OPTIMIZERS.register("adam")
def _adam(params: Iterable[Any], o: OptimConfig, **options: Any) -> torch.optim.Optimizer:
    import torch

    return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay, **options)


@OPTIMIZERS.register("adamw")
def _adamw(params: Iterable[Any], o: OptimConfig, **options: Any) -> torch.optim.Optimizer:
    import torch

    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay, **options)


SCHEDULES.register("none", lambda opt, o, epochs: None)


@SCHEDULES.register("step")
def _step(opt: torch.optim.Optimizer, o: OptimConfig, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
    import torch

    return torch.optim.lr_scheduler.StepLR(opt, o.step_size, o.gamma)


@SCHEDULES.register("cosine")
def _cosine(opt: torch.optim.Optimizer, o: OptimConfig, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
    import torch

    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)


def param_groups(model: torch.nn.Module, config: OptimConfig) -> list[dict[str, Any]]:
    """All trainable parameters as one group, or, for ``scale_lr_by_quantity``, one per modality and the rest.

    A modality's group holds its encoder and its head (``model.encoders[m]``, ``model.heads[m]``); the last group
    (fusion and everything shared) keeps the scheduled learning rate.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not config.scale_lr_by_quantity:
        return [{"params": trainable}]
    groups, seen = [], set()
    for m in model.encoders:
        own = [p for p in (*model.encoders[m].parameters(), *model.heads[m].parameters()) if p.requires_grad]
        seen |= {id(p) for p in own}
        groups.append({"params": own, "modality": m})
    groups.append({"params": [p for p in trainable if id(p) not in seen], "modality": None})
    return groups


def scale_learning_rates(optimizer: torch.optim.Optimizer, quantities: Mapping[str, int], batch_size: int) -> None:
    """Set each modality group's learning rate to the shared group's times n_m / B (``scale_lr_by_quantity``)."""
    scheduled = optimizer.param_groups[-1]["lr"]
    for g in optimizer.param_groups[:-1]:
        g["lr"] = scheduled * quantities[g["modality"]] / batch_size


def build_optimizer(params: Iterable[Any], config: OptimConfig, fused: bool = False) -> torch.optim.Optimizer:
    """The optimiser ``config`` names, over ``params`` (tensors or parameter-group dicts).

    ``fused``: torch's fused kernel where the optimiser has one (one pass over parameters, gradients and state;
    results equal to the default implementation up to rounding), for the stacked tensors of many runs.
    """
    factory = OPTIMIZERS.get(config.name)
    if fused:
        params = list(params)
        try:
            return factory(params, config, fused=True)
        except (RuntimeError, TypeError, ValueError):  # an optimiser without a fused kernel
            pass
    return factory(params, config)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: OptimConfig, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-epoch learning-rate schedule ``config`` names (None for "none")."""
    return SCHEDULES.get(config.schedule)(optimizer, config, epochs)
