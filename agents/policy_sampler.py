"""A learned sampler: an SB3 policy that maps the discrepancy observation to quantities, deterministically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.policy_io import load_policy
from dus_env.actions import ActionMapper
from mml_backbones.errors import ConfigError, DataError
from mml_backbones.observation import DiscrepancyObservation, feature_bounds

#: the repository's root (the committed policies' paths are relative to it)
REPO_ROOT = Path(__file__).resolve().parents[1]
#: the instance-set generalist, ``policy:generalist``: ``dus imitate --set two_modal_plus --env dus_env/DUS-Family-v2
#: --augment --loss grid_gain``
#: (docs/instances.md)
COMMITTED_GENERALIST = "benchmarks/results/policies_family/two_modal_plus_v2_imitation_aug_seed0/policy.zip"


class PolicySampler:
    """Runs a policy trained in the DUS environment as a sampler of any run with the same number of modalities.

    The observation is rebuilt with the policy's own features, and the action is mapped with its own mapping;
    quantities scale with the run's nominal batch size, so the policy transfers across datasets. The file is
    loaded without unpickling (``agents.policy_io``); ``trust_file=True`` uses SB3's full loader (logged), only
    for a file one trusts.

    ``decision_interval`` is the number of iterations between decisions the policy was trained with (from its
    metadata's ``env_config``; None for a policy saved without it). ``dus train --sampler policy:...`` runs with
    it unless ``--decision-interval`` is given, and says which one it used. ``validation_context`` is when the
    policy's training refreshed the observation's validation features; ``fit`` honours a policy's "decision"
    (``DUS-Family-v2``) by validating before every decision.
    """

    def __init__(self, path: str | Path, device: str = "cpu", trust_file: bool = False) -> None:
        self.path = Path(path)
        self.model, self.metadata = load_policy(self.path, device, trust_file=trust_file)
        meta = self.metadata
        self.features = tuple(meta["observation_features"])
        self.num_modalities = len(meta["modalities"])
        self.mapper = ActionMapper.from_metadata(meta["action"], self.num_modalities)
        low, _ = feature_bounds(self.features, self.num_modalities)
        trainer = (meta.get("env_config") or {}).get("trainer") or {}
        self.decision_interval: int | None = trainer.get("decision_interval")
        #: "decision" for a policy trained on DUS-Family-v2: fit then refreshes its validation context every decision
        self.validation_context: str = trainer.get("validation_context", "epoch")
        shape = getattr(self.model.observation_space, "shape", None)
        if shape != low.shape:
            raise DataError(
                f"{self.path}: the policy's observation space {shape} does not match its metadata "
                f"({len(low)} entries for features {list(self.features)})"
            )

    def check_modalities(self, modalities: Sequence[str]) -> None:
        """Refuse a run whose number of modalities is not the policy's."""
        if len(modalities) != self.num_modalities:
            raise ConfigError(
                f"policy {self.path.name} was trained for {self.num_modalities} modalities "
                f"({', '.join(self.metadata['modalities'])}); this run has {len(modalities)} ({', '.join(modalities)})"
            )

    def action(self, observation: DiscrepancyObservation) -> np.ndarray:
        """The policy's deterministic action for ``observation``."""
        self.check_modalities(observation.modalities)
        action, _ = self.model.predict(observation.vector(self.features), deterministic=True)
        return np.asarray(action)

    def __call__(self, observation: DiscrepancyObservation) -> dict[str, int]:
        q = self.mapper.action_to_quantities(self.action(observation), observation.nominal_batch_size)
        return dict(zip(observation.modalities, (int(n) for n in q)))

    @classmethod
    def from_spec(cls, arg: str | None = None, **context: Any) -> PolicySampler:
        """``policy:PATH.zip``, or ``policy:generalist`` (the committed generalist); checks the number of modalities
        against the run's when it is known.

        ``context["trust_file"]`` (``--trust-file``) loads the file with SB3's full loader, which unpickles it.
        """
        if not arg:
            raise ConfigError("the policy sampler needs a file: --sampler policy:PATH.zip (or policy:generalist)")
        if arg == "generalist":
            arg = str(REPO_ROOT / COMMITTED_GENERALIST)
        sampler = cls(arg, trust_file=bool(context.get("trust_file", False)))
        if context.get("modalities") is not None:
            sampler.check_modalities(context["modalities"])
        return sampler

    def __repr__(self) -> str:
        return f"PolicySampler({str(self.path)!r}, algo={self.metadata['algo']})"
