"""The imitation generalist's settings (apart from ``agents.imitation``, so that ``dus --help`` imports no pandas)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImitationConfig:
    """How the imitation generalist is trained (defaults: the committed policy's).

    Attributes:
        instance_set: the instance set whose train split is imitated.
        seeds: training seeds per instance and behaviour for the first round.
        rounds: DAgger rounds after the first fit (each plays ``seeds`` episodes per instance).
        epochs: passes over the data per fit.
        batch_size: minibatch size of the fit.
        lr: Adam's learning rate.
        weight_decay: Adam's weight decay.
        seed: the network's initialisation and minibatch order.
        workers: processes that play the episodes.
        augment: also fit each observation with its two modalities listed the other way round (label mirrored);
            two-modality sets only. Off in the committed policy (docs/instances.md, "The imitation generalist").
    """

    instance_set: str = "two_modal"
    seeds: int = 3
    rounds: int = 1
    epochs: int = 200
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    workers: int = 1
    augment: bool = False
