"""What ``dus train-policy`` runs, as a config dataclass (torch- and SB3-free, so that ``--help`` is cheap).

The command's flags are derived from it (``mml_backbones.cli_config``); a run directory's train_config.json holds
its fields (beside the resolved hyper-parameters), and ``--resume`` starts from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class PolicyTrainingConfig:
    """Training a sampling policy with Stable-Baselines3 on a DUS environment.

    Attributes:
        env_id: registered environment id (dus_env/DUS-v1, DUS-Strong-v1, DUS-ThreeModal-v1, DUS-HAPT-v1, the v0 ids).
        algo: ppo, a2c, reinforce, sac, td3 or dqn (agents.algorithms).
        timesteps: environment steps in total, summed over the environments; a resumed run may raise it to train on.
        n_envs: parallel environments.
        seed: seed of the algorithm and of the training environments (which reset with seeds seed + i first).
        env_kwargs: DUSEnvConfig or TrainerConfig field overrides; the action type follows the algorithm unless given.
        hyperparams: overrides of the algorithm's default hyper-parameters.
        eval_episodes: episodes per evaluation on the selection seeds, which pick best/best_model.zip (0: none).
        eval_freq: environment steps between evaluations (None: 4 per run).
        checkpoint_freq: environment steps between checkpoints (None: 4 per run).
        vec_env: how the environments run: auto (subprocesses when n_envs > 1), dummy (in turn in this process),
            subproc, or batched (in lockstep in this process on stacked parameters, dus_env.batched).
        eval_env_kwargs: overrides of env_kwargs for the selection environment only, e.g. sampling=round_robin so
            that an instance family's selection plays every train instance.
    """

    env_id: str = "dus_env/DUS-v1"
    algo: str = "ppo"
    timesteps: int = 4096
    n_envs: int = 1
    seed: int = 0
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    hyperparams: dict[str, Any] = field(default_factory=dict)
    eval_episodes: int = 4
    eval_freq: int | None = None
    checkpoint_freq: int | None = None
    vec_env: Literal["auto", "dummy", "subproc", "batched"] = "auto"
    eval_env_kwargs: dict[str, Any] = field(default_factory=dict)
