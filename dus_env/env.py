"""The DUS environment: one multimodal training run as a Gymnasium episode."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dus_env.config import DUSEnvConfig, make_config
from dus_env.rewards import REWARDS, RewardInput
from mml_backbones.data.dataset import DatasetSplits
from mml_backbones.data.registry import load_dataset
from mml_backbones.observation import DiscrepancyObservation, feature_bounds
from mml_backbones.quantities import Quantities
from mml_backbones.trainer import Trainer


class DUSEnv(gym.Env):
    """A training run of a multimodal model, where the agent decides how many samples each modality gets.

    ## Description

    Each episode builds a fresh ``mml_backbones.Trainer`` run (model, optimiser, data order drawn from the
    episode's seed) and each step lets it train for ``decision_interval`` iterations with the quantities the
    action sets: every modality m takes the first n_m samples of the next max_m n_m training indices, the
    fusion loss uses the paired prefix and each unimodal loss is normalised by the nominal batch size B. The
    environment is a thin adapter over ``Trainer.run_decision``: it never trains on its own.

    ## Action Space

    ``box`` (default): ``Box(-1, 1, (M,), float32)``, one entry per modality mapped to n_m in [n_min, n_max]
    on a log scale (``action_scale="linear"`` for linear); values outside [-1, 1] are clipped.
    ``multidiscrete``: ``MultiDiscrete([bins] * M)``; ``discrete``: ``Discrete(bins ** M)`` (for DQN).
    NaN, inf, a wrong shape or an out-of-range discrete value raise ``ValueError``. See ``dus_env.actions``.

    ## Observation Space

    ``Box(low, high, (D,), float32)``, the cumulative modality discrepancy and training progress, as
    ``observation_features`` selects (default ``("cumulative", "ratio", "progress")``):

    | feature    | entries | meaning                                             | range  |
    |------------|---------|-----------------------------------------------------|--------|
    | cumulative | M       | S_t(m): running mean of the head's true-class prob. | [0, 1] |
    | ratio      | M       | S_t(m) / mean_k S_t(k)                              | [0, M] |
    | last       | M       | s_t(m) of the latest iteration                      | [0, 1] |
    | share      | M       | share of the samples consumed so far               | [0, 1] |
    | progress   | 1       | iterations done / iterations in the episode         | [0, 1] |

    The observation does not name the dataset, so a policy runs on any dataset with the same M.

    ## Rewards

    ``delta_val_acc`` (default): 100 x the change of fused validation accuracy (on a fixed validation subset)
    since the previous step, so the return is the accuracy gained in percentage points. ``final_val_acc``:
    100 x the final validation accuracy at the last step, 0 before. ``balance``: ``delta_val_acc`` minus
    ``balance_weight`` x (max - min of the ratios). The test split is never read. See ``dus_env.rewards``.

    ## Starting State

    A freshly initialised model (statistics zero, ratios one, progress zero); the training seed is the seed
    passed to ``reset``, else one drawn from the environment's ``np_random`` (the first reset without a seed
    uses ``config.seed``).

    ## Episode End

    Termination: the run's schedule (``episode_epochs`` epochs) is done; progress is part of the observation,
    so the end is a true terminal state. Truncation: none by the environment itself; wrap with
    ``gymnasium.wrappers.TimeLimit`` for shorter episodes.

    ## Info

    ``val/fused_acc`` and ``val/acc/<m>`` (unimodal heads), ``quantities``, ``samples`` (consumed so far),
    ``cumulative`` and ``last`` (raw statistics), ``iteration``, ``epoch``, ``train_seed``, ``train_losses``.

    ## Arguments

    ``DUSEnv(config=None, **overrides)``: any field of ``DUSEnvConfig`` as a keyword, e.g.
    ``gymnasium.make("dus_env/DUS-v0", reward="balance", decision_interval=50)``.

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 - the Gymnasium convention is a class-level dict

    def __init__(self, config: DUSEnvConfig | dict[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__()
        self.config = make_config(config, **overrides)
        t = self.config.trainer
        splits = load_dataset(t.dataset, **t.dataset_options)
        self.splits: DatasetSplits = splits.select_modalities(t.modalities) if t.modalities else splits
        self.modalities = self.splits.modality_names
        self.mapper = self.config.action_mapper(len(self.modalities))
        self.action_space = self.mapper.space
        low, high = feature_bounds(t.observation_features, len(self.modalities))
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.trainer: Trainer | None = None
        self._val_acc = 0.0
        self._first_reset = True
        self._train_seed: int | None = None

    # ------------------------------------------------------------------------------------------------- API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Start a new training run; its seed is ``seed`` or one drawn from the environment's RNG."""
        super().reset(seed=seed)
        if seed is not None:
            train_seed = int(seed)
        elif self._first_reset:
            train_seed = self.config.seed
        else:
            train_seed = int(self.np_random.integers(*self.config.train_seed_range))
        self._first_reset = False
        self._train_seed = train_seed
        self.trainer = Trainer(self.config.trainer_config(train_seed), splits=self.splits)
        self._val_acc = self._validate()["fused_acc"]
        return self.trainer.observation_vector(), self._info({"fused_acc": self._val_acc}, None)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Train the next decision interval with the quantities ``action`` sets."""
        self._check_running()
        return self.step_quantities(self.action_to_quantities(action))

    def step_quantities(self, quantities: Quantities) -> tuple[np.ndarray, float, bool, bool, dict]:
        """``step`` with the quantities given directly (how non-RL samplers are scored in the environment)."""
        self._check_running()
        assert self.trainer is not None
        q = self.trainer.decide(quantities)
        self.trainer.run_iterations(self.trainer.decision_left)
        val = self._validate()
        terminated = self.trainer.done
        c = self.config
        x = RewardInput(
            val["fused_acc"],
            self._val_acc,
            self.trainer.observation().ratio,
            terminated,
            c.reward_scale,
            c.balance_weight,
        )
        r = REWARDS.get(c.reward)(x)
        self._val_acc = val["fused_acc"]
        return self.trainer.observation_vector(), float(r), terminated, False, self._info(val, q)

    def action_to_quantities(self, action: Any) -> dict[str, int]:
        """The quantities an action gives (see ``dus_env.actions``)."""
        n = self.mapper.action_to_quantities(action, self.config.trainer.batch_size)
        return dict(zip(self.modalities, (int(k) for k in n)))

    def observation(self) -> DiscrepancyObservation:
        """The current discrepancy observation (what samplers see; ``step`` returns its vector)."""
        self._check_started()
        assert self.trainer is not None
        return self.trainer.observation()

    @property
    def episode_length(self) -> int:
        """Steps in one episode."""
        if self.trainer is not None:
            total = self.trainer.total_iterations
        else:
            t = self.config.trainer
            total = (t.iterations_per_epoch or -(-len(self.splits.train) // t.batch_size)) * t.epochs
        return -(-total // self.config.trainer.decision_interval)

    # ------------------------------------------------------------------------------------------- internals
    def _check_started(self) -> None:
        if self.trainer is None:
            raise RuntimeError("call reset() before step()")

    def _check_running(self) -> None:
        self._check_started()
        assert self.trainer is not None
        if self.trainer.done:
            raise RuntimeError("the episode has ended; call reset()")

    def _validate(self) -> dict[str, float]:
        assert self.trainer is not None
        return self.trainer.evaluate("val", max_samples=self.config.trainer.val_max_samples, accuracy_only=True)

    def _info(self, val: dict[str, float], q: dict[str, int] | None) -> dict[str, Any]:
        assert self.trainer is not None
        s = self.trainer.statistics
        info: dict[str, Any] = {f"val/{k}": v for k, v in val.items()}
        info.update(
            {
                "quantities": q,
                "samples": dict(zip(self.modalities, s.samples.tolist())),
                "cumulative": dict(zip(self.modalities, s.cumulative.tolist())),
                "last": dict(zip(self.modalities, s.last.tolist())),
                "iteration": self.trainer.iteration,
                "epoch": self.trainer.epoch,
                "train_seed": self._train_seed,
            }
        )
        if q is not None:
            info["train_losses"] = self.trainer.pop_train_losses()
        return info
