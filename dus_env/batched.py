"""K DUS environments trained in lockstep in one process on stacked parameters (DESIGN.md "Batched runs").

``gymnasium.make_vec("dus_env/DUS-v1", num_envs=K, vectorization_mode="vector_entry_point")`` returns a
``BatchedDUSEnv``: member i is the episode ``gymnasium.make("dus_env/DUS-v1")`` would run with the same training
seed and actions, on the same episode path (``dus_env.episodes``) with K members: the K runs (and, with
``reference=True``, the uniform reference runs of the paired rewards that are not cached, more members of the
same batch) train on one ``mml_backbones.Trainer`` with the run axis, vectorised where the method and model allow
(``mml_backbones.core``), each run with its own data stream and statistics. Observations, rewards and infos are
those of ``DUSEnv`` member by member (to float tolerance where vectorised, exactly otherwise;
tests/dus_env/test_batched.py). Every method, encoder and dataset runs here.

Episodes have one fixed length, so the members end together; autoreset follows Gymnasium 1.x: ``next_step``
(default; the step after the terminal one resets every member, ignores its actions and returns reward 0) or
``same_step`` (the terminal step returns the new episodes' observations, with ``final_obs`` / ``final_info``).

Seeds: ``reset(seed=s)`` gives member i the training seed s + i (a list gives one per member), and later
episodes draw from member i's generator as ``DUSEnv`` does; a first reset without a seed uses ``config.seed + i``
(not ``config.seed`` for all, which would train K copies of one run).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from dus_env.config import DUSEnvConfig, make_config
from dus_env.env import DUSEnv
from dus_env.episodes import Episodes


class BatchedDUSEnv(VectorEnv):
    """``num_envs`` DUS environments as one batched training run (see the module docstring).

    Args:
        num_envs: K, the environments (agent runs).
        config: a DUSEnvConfig or a dict of its fields (None: the defaults), then ``overrides`` as for ``DUSEnv``.
        autoreset_mode: ``AutoresetMode.NEXT_STEP`` (default) or ``SAME_STEP`` (or their values as strings).
        template: a ``DUSEnv`` (never reset) whose config, data and spaces to use instead of building one.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}  # noqa: RUF012 - Gymnasium's convention

    def __init__(
        self,
        num_envs: int,
        config: DUSEnvConfig | dict[str, Any] | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        template: DUSEnv | None = None,
        **overrides: Any,
    ) -> None:
        if int(num_envs) != num_envs or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self.config = template.config if template is not None else make_config(config, **overrides)
        # the single environment, never reset: it loads the data once and defines spaces and action mapping
        self.template = template if template is not None else DUSEnv(self.config)
        self.splits = self.template.splits
        self.episodes = Episodes(self.config, self.splits, vectorise=True)
        self.modalities = self.template.modalities
        self.autoreset_mode = _autoreset_mode(autoreset_mode)
        if self.autoreset_mode is AutoresetMode.DISABLED:
            raise ValueError("BatchedDUSEnv autoresets (next_step or same_step): its members end together")
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.single_observation_space = self.template.observation_space
        self.single_action_space = self.template.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._started = [False] * self.num_envs
        self._autoreset = False

    # ------------------------------------------------------------------------------------------ Gymnasium
    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start K new runs: member i's training seed is ``seed + i`` (or ``seed[i]``), else drawn as DUSEnv does."""
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, int | np.integer):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"expected {self.num_envs} seeds, got {len(seeds)}")
        obs, infos = self.begin(seeds)
        self._autoreset = False
        return obs, self._vector_info(infos)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Train every member's next decision interval with its action (autoreset as ``autoreset_mode`` says)."""
        k = self.num_envs
        no = np.zeros(k, dtype=np.bool_)
        if self._autoreset:  # next_step: the step after the terminal one starts the new episodes
            obs, infos = self.begin([None] * k)
            self._autoreset = False
            return obs, np.zeros(k), no, no.copy(), self._vector_info(infos)
        obs, rewards, terminated, infos = self.advance(actions)
        vector_info: dict[str, Any] = {}
        if terminated.all() and self.autoreset_mode is AutoresetMode.SAME_STEP:
            final_obs, final_infos = obs, infos
            obs, infos = self.begin([None] * k)
            for i in range(k):  # as SyncVectorEnv: the final observation and info beside the reset info
                vector_info = self._add_info(vector_info, {"final_obs": final_obs[i], "final_info": final_infos[i]}, i)
        else:
            self._autoreset = bool(terminated.all())
        for i, info in enumerate(infos):
            vector_info = self._add_info(vector_info, info, i)
        return obs, rewards, terminated, no.copy(), vector_info

    def close_extras(self, **kwargs: Any) -> None:
        """Drop the runs."""
        self.episodes.trainer = None

    # ---------------------------------------------------------------------------- the members, one list each
    def begin(self, seeds: Sequence[int | None]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Start new runs for every member (seed None: drawn from the member's generator); (obs, infos)."""
        c = self.config
        train_seeds = []
        for i, s in enumerate(seeds):
            if s is not None:
                self._rngs[i], _ = seeding.np_random(int(s))
                train_seeds.append(int(s))
            elif not self._started[i]:
                train_seeds.append(c.seed + i)
            else:
                if self._rngs[i] is None:
                    self._rngs[i], _ = seeding.np_random()
                train_seeds.append(int(self._rngs[i].integers(*c.train_seed_range)))
            self._started[i] = True
        return self.episodes.begin(train_seeds)

    def advance(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Train every member's next decision interval; (obs, rewards, terminated, infos) with no autoreset."""
        if self.episodes.trainer is None:
            raise RuntimeError("call reset() before step()")
        acts = np.asarray(actions)
        if len(acts) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions (one per environment), got {len(acts)}")
        return self.episodes.advance([self.episodes.action_to_quantities(a) for a in acts])

    def _vector_info(self, infos: list[dict[str, Any]]) -> dict[str, Any]:
        vector_info: dict[str, Any] = {}
        for i, info in enumerate(infos):
            vector_info = self._add_info(vector_info, info, i)
        return vector_info

    @property
    def episode_length(self) -> int:
        """Steps in one episode (every member's)."""
        return self.template.episode_length


def _autoreset_mode(value: AutoresetMode | str) -> AutoresetMode:
    """An AutoresetMode from itself, its value ("SameStep") or its name in any case ("same_step")."""
    if isinstance(value, AutoresetMode):
        return value
    try:
        return AutoresetMode(value)
    except ValueError:
        try:
            return AutoresetMode[str(value).upper()]
        except KeyError:
            raise ValueError(f"unknown autoreset mode {value!r}; valid: next_step, same_step") from None


def make_batched(num_envs: int = 1, **kwargs: Any) -> BatchedDUSEnv:
    """The ``vector_entry_point``: a BatchedDUSEnv of ``num_envs`` members."""
    return BatchedDUSEnv(num_envs, make_config(None, **kwargs))
