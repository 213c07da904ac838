"""The DUS environment: one multimodal training run as a Gymnasium episode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dus_env.config import DUSEnvConfig, make_config
from dus_env.episodes import Episodes
from mml_backbones.data.dataset import DatasetSplits
from mml_backbones.data.registry import load_dataset
from mml_backbones.observation import DiscrepancyObservation, feature_bounds
from mml_backbones.quantities import Quantities
from mml_backbones.run import Run
from mml_backbones.trainer import Trainer


def observation_space(features: Sequence[str], num_modalities: int) -> spaces.Box:
    """The observation space of ``features`` for ``num_modalities`` modalities (what a policy file is rebuilt with)."""
    low, high = feature_bounds(features, num_modalities)
    return spaces.Box(low, high, dtype=np.float32)


class DUSEnv(gym.Env):
    """A training run of a multimodal model, where the agent decides how many samples each modality gets.

    ## Description

    Each episode builds a fresh ``mml_backbones.Trainer`` run (model, optimiser, data order drawn from the
    episode's seed) and each step lets it train for ``decision_interval`` iterations with the quantities the
    action sets: every modality m takes the first n_m samples of the next max_m n_m training indices, the
    fusion loss uses the paired prefix and each unimodal loss is normalised by the nominal batch size B. The
    environment is a thin adapter over the training core (``dus_env.episodes``, shared with the batched vector
    environment): it never trains on its own.

    ## Action Space

    ``box`` (default): ``Box(-1, 1, (M,), float32)``, one entry per modality; values outside [-1, 1] are
    clipped. ``action_budget="equal"`` (v1): the action reallocates a fixed total sum_m n_m = M x B, modality m
    weighted by exp(action_temperature x a_m), each n_m at least ``bounds.low`` x B; the zero action is uniform
    and ``info["quantities"]`` always sums to M x B. ``action_budget="free"`` (v0): each entry is mapped to n_m in
    [low x B, high x B] on a log scale (``action_scale="linear"`` for linear), so the total varies.
    ``multidiscrete``: ``MultiDiscrete([bins] * M)``; ``discrete``: ``Discrete(bins ** M)`` (for DQN).
    NaN, inf, a wrong shape or an out-of-range discrete value raise ``ValueError``. See ``dus_env.actions``.

    ## Observation Space

    ``Box(low, high, (D,), float32)``, the cumulative modality discrepancy and how learning is going, as
    ``observation_features`` selects (v1: ``("cumulative", "ratio", "speed", "loss", "allocation", "progress")``;
    v0 and the TrainerConfig default: ``("cumulative", "ratio", "progress")``):

    | feature    | entries | meaning                                                          | range   |
    |------------|---------|------------------------------------------------------------------|---------|
    | cumulative | M       | S_t(m): running mean of the head's true-class probability        | [0, 1]  |
    | ratio      | M       | S_t(m) / mean_k S_t(k)                                           | [0, M]  |
    | last       | M       | s_t(m) of the latest iteration                                   | [0, 1]  |
    | share      | M       | share of the samples consumed so far                             | [0, 1]  |
    | speed      | M       | tanh(1000 x change per iteration of s_t's mean, last 2 steps)    | [-1, 1] |
    | loss       | M       | mean unimodal training cross-entropy over the last step (nats)   | [0, 5]  |
    | allocation | M       | the last action's quantities as shares n_m / sum n               | [0, 1]  |
    | progress   | 1       | iterations done / iterations in the episode                      | [0, 1]  |
    | val_acc    | M       | each head's validation accuracy at the latest epoch end          | [0, 1]  |
    | val_gap    | M       | each head's training score minus its validation true-class prob. | [-1, 1] |
    | val_score  | 1       | the validation score (selection metric) at the latest epoch end  | [0, 1]  |
    | val_drop   | 1       | the best validation score so far minus the latest                | [0, 1]  |

    speed and loss are 0 until the steps they need have run; the val_* features (the validation context,
    DUS-Family-v1's observation) are 0 until the first epoch end. See ``mml_backbones.observation``. The
    observation does not name the dataset, so a policy runs on any dataset with the same M.

    ## Rewards

    ``paired_selected_val`` (v1 default): with ``reference=True`` the environment advances, beside the agent's
    run, a reference run with the uniform equal-budget quantities (B each) from the same TrainerConfig and seed,
    so the same initial weights and data order (common random numbers). Each run is scored by the validation
    score of the epoch ``fit`` would keep (the best so far over completed epoch ends, by ``selection_metric``,
    on the validation rows ``val_max_samples`` names: the whole split in v1), not the last epoch's. The reward is
    100 x the change over the step of (agent's kept score - the reference's): the return is the difference of
    the two runs' ``Trainer.fit(...).val[selection_metric]`` in percentage points, and the uniform action earns
    exactly 0 at every step. ``selected_val``: 100 x the change of the agent's kept score (no reference run).
    ``paired_val_acc`` (v1's default before the kept score): the same pairing with the last evaluation's fused
    validation accuracy, kept to reproduce the tables made with it. ``paired_val_loss``: the same with
    minus the fused validation cross-entropy. ``delta_val_acc`` (v0 default): 100 x the change of fused
    validation accuracy since the previous step, so the return is the accuracy gained. ``final_val_acc``: 100 x
    the final validation accuracy at the last step, 0 before. ``balance``: ``delta_val_acc`` minus
    ``balance_weight`` x (max - min of the ratios). v1 scores the whole validation split, v0 a fixed subset of
    1000 samples (``val_max_samples``). The test split is never read. See ``dus_env.rewards``.

    ## Starting State

    A freshly initialised model (statistics zero, ratios one, speed and loss zero, allocation 1/M, progress
    zero); the training seed is the seed passed to ``reset``, else one drawn from the environment's
    ``np_random`` in ``train_seed_range`` (the first reset without a seed uses ``config.seed``). With the
    reference run, it starts from the same model (built from the same TrainerConfig and seed).

    ## Episode End

    Termination: the run's schedule (``trainer.epochs`` epochs) is done; progress is part of the observation,
    so the end is a true terminal state. Truncation: none by the environment itself; wrap with
    ``gymnasium.wrappers.TimeLimit`` for shorter episodes.

    ## Info

    ``val/fused_acc``, ``val/fused_loss`` (cross-entropy) and ``val/acc/<m>`` (unimodal heads) now,
    ``val/selected`` (the kept epoch's score, see Rewards) and ``val/selected_epoch`` (0 before the first epoch
    end); with the reference run the same as ``reference/val/...`` (e.g. ``reference/val/selected``); ``quantities``,
    ``samples`` (consumed so far), ``cumulative`` and ``last`` (raw statistics), ``iteration``, ``epoch``,
    ``train_seed``, ``train_losses``.

    ## Arguments

    ``DUSEnv(config=None, splits=None, **overrides)``: any field of ``DUSEnvConfig`` (``reward``, ``reference``,
    the action settings, ...) and any TrainerConfig field as a keyword, e.g.
    ``gymnasium.make("dus_env/DUS-v1", reward="paired_val_loss", decision_interval=50)`` or
    ``gymnasium.make("dus_env/DUS-v1", reference=False, reward="delta_val_acc")`` (no reference run: half the
    compute). ``splits``: the dataset already loaded from the same options (an instance family shares its loads).

    ## Version History

    * v1 (issue 18): the default reward is ``paired_selected_val``, scored on the epoch ``fit`` keeps; the v1
      tables made before it used ``paired_val_acc`` (last evaluation), still available by name.
    * v1: the papers' regime (SGD lr 1e-3, momentum 0.9, weight decay 1e-4, 12 epochs), equal-budget actions
      (the action reallocates M x B), the paired reward against the uniform reference run, the observation that
      describes learning (speed, loss, allocation), rewards on the whole validation split.
    * v0: initial version (Adam, 4 epochs, free per-modality quantities, delta_val_acc on a 1000-sample
      validation subset, observation cumulative/ratio/progress).
    """

    metadata = {"render_modes": []}  # noqa: RUF012 - the Gymnasium convention is a class-level dict

    def __init__(
        self,
        config: DUSEnvConfig | dict[str, Any] | None = None,
        splits: DatasetSplits | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.config = make_config(config, **overrides)
        t = self.config.trainer
        # splits: the dataset already loaded from the same options (an instance family shares its loads)
        splits = splits if splits is not None else load_dataset(t.dataset, **t.dataset_options)
        self.splits: DatasetSplits = splits.select_modalities(t.modalities) if t.modalities else splits
        self.modalities = self.splits.modality_names
        #: the episode path shared with the batched environment (one member here, each run exactly as alone)
        self.episodes = Episodes(self.config, self.splits, vectorise=False)
        self.mapper = self.episodes.mapper
        self.action_space = self.mapper.space
        self.observation_space = observation_space(t.observation_features, len(self.modalities))
        self._first_reset = True

    # ------------------------------------------------------------------------------------------------- API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Start a new training run; its seed is ``seed`` or one drawn from the environment's RNG."""
        super().reset(seed=seed)
        train_seed = self.config.episode_seed(seed, self._first_reset, self.np_random)
        self._first_reset = False
        obs, infos = self.episodes.begin([train_seed])
        return obs[0], infos[0]

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Train the next decision interval with the quantities ``action`` sets."""
        self._check_running()
        return self.step_quantities(self.action_to_quantities(action))

    def step_quantities(self, quantities: Quantities) -> tuple[np.ndarray, float, bool, bool, dict]:
        """``step`` with the quantities given directly (how non-RL samplers are scored in the environment)."""
        self._check_running()
        obs, rewards, terminated, infos = self.episodes.advance([quantities])
        return obs[0], float(rewards[0]), bool(terminated[0]), False, infos[0]

    def action_to_quantities(self, action: Any) -> dict[str, int]:
        """The quantities an action gives (see ``dus_env.actions``)."""
        return self.episodes.action_to_quantities(action)

    def observation(self) -> DiscrepancyObservation:
        """The current discrepancy observation (what samplers see; ``step`` returns its vector)."""
        self._check_started()
        return self.run.controller.observation()

    @property
    def trainer(self) -> Trainer | None:
        """The training core of the episode (the agent's run first, then the reference run if it trains)."""
        return self.episodes.trainer

    @property
    def run(self) -> Run:
        """The agent's training run (its model, method, statistics)."""
        self._check_started()
        assert self.trainer is not None
        return self.trainer.runs[0]

    @property
    def episode_length(self) -> int:
        """Steps in one episode."""
        t = self.config.trainer
        total = (t.iterations_per_epoch or -(-len(self.splits.train) // t.batch_size)) * t.epochs
        return -(-total // self.config.trainer.decision_interval)

    # ------------------------------------------------------------------------------------------- internals
    def _check_started(self) -> None:
        if self.trainer is None:
            raise RuntimeError("call reset() before step()")

    def _check_running(self) -> None:
        self._check_started()
        if self.episodes.done:
            raise RuntimeError("the episode has ended; call reset()")
