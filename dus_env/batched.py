"""K DUS environments trained in lockstep in one process on stacked parameters (DESIGN.md "Batched runs").

``gymnasium.make_vec("dus_env/DUS-v1", num_envs=K, vectorization_mode="vector_entry_point")`` returns a
``BatchedDUSEnv``: member i is the episode ``gymnasium.make("dus_env/DUS-v1")`` would run with the same training
seed and actions, but the K runs (and, with ``reference=True``, the K uniform reference runs of the paired
rewards, K more members of the same batch) train as one ``mml_backbones.batched_model.BatchedTrainer``: stacked
weights, one ``baddbmm`` per layer for all runs, per-run quantities as masks over a common draw, per-run data
streams and statistics. Observations, rewards and infos are those of ``DUSEnv`` member by member (to float
tolerance; tests/dus_env/test_batched.py).

Episodes have one fixed length, so the members end together; autoreset follows Gymnasium 1.x: ``next_step``
(default; the step after the terminal one resets every member, ignores its actions and returns reward 0) or
``same_step`` (the terminal step returns the new episodes' observations, with ``final_obs`` / ``final_info``).

Seeds: ``reset(seed=s)`` gives member i the training seed s + i (a list gives one per member), and later
episodes draw from member i's generator as ``DUSEnv`` does; a first reset without a seed uses ``config.seed + i``
(not ``config.seed`` for all, which would train K copies of one run).

The kept epoch's score of the ``*_selected_*`` rewards is read at step ends, so a batched environment needs every
epoch end to be a step end (the decision interval divides an epoch, as in the v1 synthetic worlds) and
``selection_metric="fused_acc"``; the validation-context observation features are not batched.

Outside the batched scope (``mml_backbones.batched_model.unsupported_reason``, and the above) ``make_batched``
falls back to ``gymnasium.vector.SyncVectorEnv`` of ordinary ``DUSEnv``s with a warning that says why.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from dus_env.config import DUSEnvConfig, make_config
from dus_env.env import DUSEnv
from dus_env.rewards import compute_reward
from mml_backbones.batched_model import BatchedTrainer, OutOfScopeError, unsupported_reason
from mml_backbones.observation import VALIDATION_FEATURES, DiscrepancyObservation

Metrics = dict[str, float]


class BatchedDUSEnv(VectorEnv):
    """``num_envs`` DUS environments as one batched training run (see the module docstring).

    Args:
        num_envs: K, the environments (agent runs).
        config: a DUSEnvConfig or a dict of its fields (None: the defaults), then ``overrides`` as for ``DUSEnv``.
        autoreset_mode: ``AutoresetMode.NEXT_STEP`` (default) or ``SAME_STEP`` (or their values as strings).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}  # noqa: RUF012 - Gymnasium's convention

    def __init__(
        self,
        num_envs: int,
        config: DUSEnvConfig | dict[str, Any] | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        **overrides: Any,
    ) -> None:
        if int(num_envs) != num_envs or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self.config = make_config(config, **overrides)
        # the single environment, never reset: it loads the data once and defines spaces and action mapping
        self.template = DUSEnv(self.config)
        self.splits = self.template.splits
        reason = unsupported_reason(self.config.trainer, self.splits) or self._selection_reason()
        if reason is not None:
            raise OutOfScopeError(f"not batched: {reason}")
        self.modalities = self.template.modalities
        self.autoreset_mode = _autoreset_mode(autoreset_mode)
        if self.autoreset_mode is AutoresetMode.DISABLED:
            raise ValueError("BatchedDUSEnv autoresets (next_step or same_step): its members end together")
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.single_observation_space = self.template.observation_space
        self.single_action_space = self.template.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.trainer: BatchedTrainer | None = None
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._started = [False] * self.num_envs
        self._train_seeds: list[int] = []
        self._val: list[Metrics] = []
        self._ref_val: list[Metrics] | None = None
        self._autoreset = False
        # per member (agents, then references): the kept epoch's score (DUSEnv's ScoredRun, at step ends)
        self._initial = np.zeros(0)
        self._best = np.zeros(0)
        self._best_epoch = np.zeros(0, dtype=np.int64)

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
        self.trainer = None

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
        self._train_seeds = train_seeds
        # the reference runs of the paired rewards are the agents' runs again (same config and seed): K more members
        members = train_seeds * (2 if c.reference else 1)
        self.trainer = BatchedTrainer([c.trainer_config(s) for s in members], splits=self.splits)
        self._split(self._scored(self.trainer.evaluate_val(), start=True))
        return self._observations(), self._infos(None, None)

    def advance(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Train every member's next decision interval; (obs, rewards, terminated, infos) with no autoreset."""
        t = self.trainer
        if t is None:
            raise RuntimeError("call reset() before step()")
        if t.done:
            raise RuntimeError("the episodes have ended; call reset()")
        b = self.config.trainer.batch_size
        acts = np.asarray(actions)
        if len(acts) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions (one per environment), got {len(acts)}")
        q = np.array([self.template.mapper.action_to_quantities(a, b) for a in acts], dtype=np.int64)
        if self.config.reference:  # the reference runs take the uniform equal-budget quantities, B each
            q = np.concatenate([q, np.full_like(q, b)])
        t.decide(q)
        t.run_iterations(self.config.trainer.decision_interval)
        before, ref_before = self._val, self._ref_val
        self._split(self._scored(t.evaluate_val()))
        obs_list = t.observations()[: self.num_envs]
        terminated = np.full(self.num_envs, t.done)
        rewards = np.array([self._reward(i, before, ref_before, obs_list[i]) for i in range(self.num_envs)])
        return self._observations(obs_list), rewards, terminated, self._infos(q, t.pop_train_losses())

    # ------------------------------------------------------------------------------------------- internals
    def _selection_reason(self) -> str | None:
        """Why the kept epoch's score cannot be followed here (it is read at step ends only), or None."""
        t = self.config.trainer
        if t.selection_metric != "fused_acc":
            return f"selection_metric {t.selection_metric!r} (batched runs select on fused_acc)"
        per_epoch = t.iterations_per_epoch or -(-len(self.splits.train) // t.batch_size)
        if per_epoch % t.decision_interval:
            return (
                f"decision_interval {t.decision_interval} does not divide the {per_epoch} iterations of an epoch "
                "(batched runs read the kept epoch's score at step ends)"
            )
        needs = [f for f in t.observation_features if f in VALIDATION_FEATURES]
        return f"observation features {needs} (batched runs have no epoch-end validation context)" if needs else None

    def _scored(self, metrics: list[Metrics], start: bool = False) -> list[Metrics]:
        """``metrics`` with each member's ``selected`` score and ``selected_epoch``, as ``ScoredRun`` adds them."""
        t = self.trainer
        assert t is not None
        acc = np.array([m["fused_acc"] for m in metrics])
        if start:
            self._initial, self._best = acc.copy(), np.full(len(acc), -np.inf)
            self._best_epoch = np.zeros(len(acc), dtype=np.int64)
        elif t.iteration % t.iterations_per_epoch == 0:  # an epoch end (every one is a step end here)
            better = acc > self._best
            self._best = np.where(better, acc, self._best)
            self._best_epoch = np.where(better, t.epoch, self._best_epoch)
        kept = np.where(self._best_epoch > 0, self._best, self._initial)
        return [
            {**m, "selected": float(k), "selected_epoch": float(e)} for m, k, e in zip(metrics, kept, self._best_epoch)
        ]

    def _split(self, metrics: list[Metrics]) -> None:
        """Agent members' metrics first, then the reference members'."""
        self._val = metrics[: self.num_envs]
        self._ref_val = metrics[self.num_envs :] if self.config.reference else None

    def _observations(self, observations: list[DiscrepancyObservation] | None = None) -> np.ndarray:
        assert self.trainer is not None
        obs = observations if observations is not None else self.trainer.observations()[: self.num_envs]
        return np.stack([o.vector(self.config.trainer.observation_features) for o in obs])

    def _reward(
        self, i: int, before: list[Metrics], ref_before: list[Metrics] | None, obs: DiscrepancyObservation
    ) -> float:
        """Member i's reward, from the same RewardInput DUSEnv.step_quantities builds."""
        c = self.config
        val, prev = self._val[i], before[i]
        ref = None if self._ref_val is None else self._ref_val[i]
        ref_prev = None if ref_before is None else ref_before[i]
        terminal = bool(self.trainer is not None and self.trainer.done)
        return compute_reward(c.reward, val, prev, obs.ratio, terminal, c.reward_scale, c.balance_weight, ref, ref_prev)

    def _infos(self, q: np.ndarray | None, losses: list[dict[str, float]] | None) -> list[dict[str, Any]]:
        """Each member's info, with DUSEnv's keys."""
        t = self.trainer
        assert t is not None
        s, mods = t.statistics, self.modalities
        out = []
        for i in range(self.num_envs):
            info: dict[str, Any] = {f"val/{k}": v for k, v in self._val[i].items()}
            if self._ref_val is not None:
                info.update({f"reference/val/{k}": v for k, v in self._ref_val[i].items()})
            info.update(
                {
                    "quantities": None if q is None else dict(zip(mods, q[i].tolist())),
                    "samples": dict(zip(mods, s.samples[i].tolist())),
                    "cumulative": dict(zip(mods, s.cumulative[i].tolist())),
                    "last": dict(zip(mods, s.last[i].tolist())),
                    "iteration": t.iteration,
                    "epoch": t.epoch,
                    "train_seed": self._train_seeds[i],
                }
            )
            if losses is not None:
                info["train_losses"] = losses[i]
            out.append(info)
        return out

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


def make_batched(num_envs: int = 1, **kwargs: Any) -> VectorEnv:
    """The ``vector_entry_point``: a BatchedDUSEnv, or, outside its scope, a SyncVectorEnv of DUSEnv with a warning."""
    config = make_config(None, **kwargs)
    try:
        return BatchedDUSEnv(num_envs, config)
    except OutOfScopeError as e:
        warnings.warn(
            f"dus_env: {e}; falling back to gymnasium.vector.SyncVectorEnv of {num_envs} DUSEnv (one run at a time)",
            stacklevel=2,
        )
        return gym.vector.SyncVectorEnv([partial(DUSEnv, config) for _ in range(num_envs)])
