"""The imitation generalist's settings (apart from ``agents.imitation``, so that ``dus --help`` imports no pandas)."""

from __future__ import annotations

from dataclasses import dataclass

LOSSES = ("mse", "grid_gain")
#: the family environments a generalist can imitate in (v2 refreshes the validation context at every decision)
FAMILY_ENV_IDS = ("dus_env/DUS-Family-v1", "dus_env/DUS-Family-v2")


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
            two-modality sets only.
        loss: "mse" fits the action mean to the label; "grid_gain" maximises the instance's gate-seed gain at
            the share the action plays (its oracle curve, interpolated; positives set to 0 where the oracle has no
            headroom), plus mse_weight times the MSE; two-modality sets only.
        mse_weight: the MSE's weight in the "grid_gain" loss.
        env: the family environment whose observations the policy is trained on and reads when it plays;
            ``dus_env/DUS-Family-v2`` refreshes the validation context at every decision, and a policy trained
            there asks ``fit`` for it too (``PolicySampler.validation_context``).

    The committed generalist uses ``augment=True, loss="grid_gain"``, chosen by the leave-one-instance-out check
    of ``benchmarks.imitation_loo`` on train instances (docs/instances.md, "The imitation generalist").
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
    loss: str = "mse"
    mse_weight: float = 0.1
    env: str = FAMILY_ENV_IDS[0]

    def __post_init__(self) -> None:
        from mml_backbones.errors import ConfigError

        if self.loss not in LOSSES:
            raise ConfigError(f"unknown imitation loss {self.loss!r}; valid: {', '.join(LOSSES)}")
        if self.env not in FAMILY_ENV_IDS:
            raise ConfigError(f"unknown family environment {self.env!r}; valid: {', '.join(FAMILY_ENV_IDS)}")
        if self.mse_weight < 0:
            raise ConfigError(f"mse_weight must be >= 0, got {self.mse_weight}")
