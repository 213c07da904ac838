"""An instance family as a batched vector environment: K runs of one instance per round, trained in lockstep.

``gymnasium.make_vec("dus_env/DUS-Family-v1", num_envs=K, vectorization_mode="vector_entry_point")`` (and
``dus train-policy --vec batched`` on the family) returns a ``BatchedFamilyEnv``. Runs of different instances
differ in data, model shapes and schedule, so they cannot share a batch; K runs of one instance on K training
seeds can. Every round (the K members' episodes, which end together) draws one instance as ``DUSFamilyEnv`` does
(``sampling="random"`` from the environment's ``np_random``, or ``"round_robin"``) and trains its K runs on the
one episode path with the run axis (``dus_env.batched``). Over many rounds the agent sees the same distribution of
instances as with K separate family environments, in blocks of K episodes per instance.

Member i's episode is the one ``DUSFamilyEnv`` plays for that instance and training seed (to float tolerance
where the runs are vectorised; ``tests/dus_env/test_family_batched.py``). Infos name the round's ``instance``
and ``split``; ``reset(options={"instance": name})`` picks the first round's instance. Seeds are
``BatchedDUSEnv``'s: ``reset(seed=s)`` gives member i the training seed s + i and seeds the instance draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode

from dus_env.batched import BatchedDUSEnv
from dus_env.config import DUSEnvConfig
from dus_env.episodes import Episodes
from dus_env.family import DUSFamilyEnv, Instance, InstanceSet, Sampling


class BatchedFamilyEnv(BatchedDUSEnv):
    """``num_envs`` runs of one instance of a set per round, batched (see the module docstring).

    Args:
        num_envs: K, the runs of each round.
        instance_set, split, sampling, instance, config, overrides: as for ``DUSFamilyEnv``.
        autoreset_mode: as for ``BatchedDUSEnv``.
    """

    def __init__(
        self,
        num_envs: int,
        instance_set: str | Path | dict[str, Any] | InstanceSet = "two_modal",
        split: str = "train",
        sampling: Sampling = "random",
        instance: str | None = None,
        config: DUSEnvConfig | dict[str, Any] | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        **overrides: Any,
    ) -> None:
        #: the single family environment, never reset: instances, their data (loaded once) and the shared spaces
        self.family = DUSFamilyEnv(instance_set, split, sampling, instance, config, **overrides)
        super().__init__(num_envs, autoreset_mode=autoreset_mode, template=self.family.current)
        self.instance: Instance = self.family.instance
        self._episodes: dict[str, Episodes] = {self.instance.name: self.episodes}
        self._chosen: str | None = None

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a round: draw its instance (``options["instance"]`` picks one) and K runs of it."""
        self._chosen = (options or {}).get("instance")
        return super().reset(seed=seed, options=options)

    def begin(self, seeds: Sequence[int | None]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Draw the round's instance and start K runs of it; (obs, infos)."""
        given = [s for s in seeds if s is not None]
        if given:  # the instance draws are seeded with the runs (by the first member's seed)
            self.family.np_random, _ = seeding.np_random(int(given[0]))
        inst = self.family.draw_instance(self._chosen)
        self._chosen = None
        if inst.name != self.instance.name:
            self.episodes.trainer = None  # the finished round's runs are not needed any more
            self.template = self.family.instance_env(inst.name)
            self.config = self.template.config
            self.episodes = self._episodes.get(inst.name) or Episodes(self.config, self.template.splits, vectorise=True)
            self._episodes[inst.name] = self.episodes
            self.splits, self.modalities, self.instance = self.template.splits, self.template.modalities, inst
            self.family.instance, self.family.current = inst, self.template
        obs, infos = super().begin(seeds)
        return obs, [self.family.name_info(info) for info in infos]

    def advance(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Train every run's next decision interval; the infos name the instance."""
        obs, rewards, terminated, infos = super().advance(actions)
        return obs, rewards, terminated, [self.family.name_info(info) for info in infos]

    @property
    def episode_length(self) -> int:
        """Steps of the longest episode among the instances drawn from."""
        return self.family.episode_length


def make_batched_family(num_envs: int = 1, **kwargs: Any) -> BatchedFamilyEnv:
    """The family's ``vector_entry_point``: a BatchedFamilyEnv of ``num_envs`` runs per round."""
    return BatchedFamilyEnv(num_envs, **kwargs)
