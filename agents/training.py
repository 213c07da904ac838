"""Training a sampling policy with Stable-Baselines3 on a DUS environment.

``train_policy`` wraps SB3 with the defaults of ``agents.algorithms``: vectorised environments (SubprocVecEnv
when n_envs > 1), SB3's logger (stdout, CSV and TensorBoard when installed), its progress bar, periodic
evaluation on the selection seeds (``dus_env.seeds.selection_seeds``, disjoint from the training seeds, from the
evaluation seeds that then score the policy in tables and from the downstream seeds; the best policy is kept) and
checkpoints that carry the DUS metadata, so that any of them runs as a sampler. A run directory holds everything:

    policy.zip            the final policy          best/best_model.zip       best on the selection seeds
    checkpoints/*.zip     periodic checkpoints      logs/segment_N/progress.csv  SB3's log of each training segment
    eval/evaluations.npz  evaluation history        logs/tensorboard/         TensorBoard events: one run across resumes
    train_config.json     what was run (PolicyTrainingConfig's fields and the resolved hyper-parameters)
    timing.json           wall time per segment (a resumed run adds one)

The training environments are wrapped in SB3's ``Monitor`` (``make_vec_env`` does it; ``VecMonitor`` for the
batched ones) and SB3 writes its log after every rollout (on-policy) or episode (off-policy), so
``rollout/ep_rew_mean``, the training return, is in progress.csv and TensorBoard for every algorithm. A resumed run
keeps counting steps (``reset_num_timesteps=False``) and writes to the same TensorBoard folder, so TensorBoard shows
one run whose curve continues.
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger, make_output_format
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

import dus_env  # noqa: F401 - registers the environment ids (in SubprocVecEnv workers too)
from agents.algorithms import algo_spec
from agents.policy_config import PolicyTrainingConfig
from agents.policy_io import add_metadata, load_algorithm, save_policy
from agents.seeds import selection_seeds
from agents.vec import batched_vec_env
from dus_env.env import DUSEnv
from dus_env.wrappers import FixedSeedCycle
from mml_backbones.config import to_dict
from mml_backbones.errors import ConfigError


def make_env(env_id: str, env_kwargs: dict[str, Any], seeds: list[int] | None = None) -> gym.Env:
    """Build one environment (module-level so that SubprocVecEnv can pickle it)."""
    env = gym.make(env_id, **env_kwargs)
    return Monitor(FixedSeedCycle(env, seeds)) if seeds else env


def policy_metadata(env: DUSEnv, algo: str, env_id: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metadata a policy trained on ``env`` carries (see agents.policy_io)."""
    c = env.config
    return {
        "algo": algo,
        "env_id": env_id,
        "modalities": list(env.modalities),
        "observation_features": list(c.trainer.observation_features),
        "statistics": to_dict(c.trainer.statistics),
        "action": {k: v for k, v in to_dict(env.mapper).items() if k != "num_modalities"},
        "env_config": to_dict(c),
        "versions": {"python": platform.python_version(), "stable_baselines3": stable_baselines3.__version__},
        **(extra or {}),
    }


def _restore_evaluations(eval_cb: EvalCallback, path: Path) -> None:
    """Give a resumed run's evaluation callback its history, so it neither forgets nor overwrites the best."""
    if not path.is_file():
        return
    with np.load(path) as ev:
        eval_cb.evaluations_timesteps = ev["timesteps"].tolist()
        eval_cb.evaluations_results = ev["results"].tolist()
        eval_cb.evaluations_length = ev["ep_lengths"].tolist()
    if eval_cb.evaluations_results:
        eval_cb.best_mean_reward = float(max(np.mean(r) for r in eval_cb.evaluations_results))


class _MetadataOnSave(BaseCallback):
    """Adds the DUS metadata to the zip file SB3's evaluation callback writes for a new best policy."""

    def __init__(self, metadata: dict[str, Any], path: Path) -> None:
        super().__init__()
        self.metadata, self.path = metadata, path

    def _on_step(self) -> bool:
        if self.path.is_file():
            add_metadata(self.path, {**self.metadata, "timesteps": int(self.num_timesteps)})
        return True


class _CheckpointWithMetadata(CheckpointCallback):
    def __init__(self, metadata: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metadata = metadata

    def _on_step(self) -> bool:
        keep = super()._on_step()
        if self.n_calls % self.save_freq == 0:
            path = Path(self._checkpoint_path(extension="zip"))
            if path.is_file():
                add_metadata(path, {**self.metadata, "timesteps": int(self.num_timesteps)})
        return keep


def record_segment(path: Path, start: int, end: int, seconds: float, n_envs: int, vec_env: str) -> None:
    """Append one training segment's wall time (evaluations included) to the run's ``timing.json``."""
    segments = json.loads(path.read_text()) if path.is_file() else []
    segments.append(
        {
            "from_step": start,
            "to_step": end,
            "seconds": round(seconds, 1),
            "n_envs": n_envs,
            "vec_env": vec_env,
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        }
    )
    path.write_text(json.dumps(segments, indent=2))


@dataclass
class TrainedPolicy:
    """What ``train_policy`` produced.

    Attributes:
        policy: path of the policy to use (best on the selection seeds when evaluated, else the final one).
        final: path of the final policy.
        best: path of the best-on-the-selection-seeds policy, if evaluation ran.
        out_dir: the run directory.
        timesteps: environment steps trained.
        eval_returns: mean return on the selection seeds at each evaluation.
    """

    policy: Path
    final: Path
    best: Path | None
    out_dir: Path
    timesteps: int
    eval_returns: list[float] = field(default_factory=list)


_DEFAULTS = PolicyTrainingConfig()


def _logger(out: Path, segment: int, verbose: int) -> Logger:
    """SB3's logger: CSV per training segment, TensorBoard (when installed) in one folder for the whole run."""
    logs = out / "logs"
    formats = [make_output_format("csv", str(logs / f"segment_{segment}"))]
    if verbose:
        formats.append(make_output_format("stdout", str(logs / f"segment_{segment}")))
    try:
        import tensorboard  # noqa: F401

        formats.append(make_output_format("tensorboard", str(logs / "tensorboard")))
    except ImportError:
        pass
    return Logger(str(logs / f"segment_{segment}"), formats)


def train_policy(
    env_id: str = _DEFAULTS.env_id,
    algo: str = _DEFAULTS.algo,
    timesteps: int = _DEFAULTS.timesteps,
    out_dir: str | Path = "runs/policy",
    n_envs: int = _DEFAULTS.n_envs,
    seed: int = _DEFAULTS.seed,
    env_kwargs: dict[str, Any] | None = None,
    hyperparams: dict[str, Any] | None = None,
    eval_episodes: int = _DEFAULTS.eval_episodes,
    eval_freq: int | None = _DEFAULTS.eval_freq,
    checkpoint_freq: int | None = _DEFAULTS.checkpoint_freq,
    progress_bar: bool = False,
    vec_env: str = _DEFAULTS.vec_env,
    resume: bool = False,
    verbose: int = 0,
    trust_file: bool = False,
    eval_env_kwargs: dict[str, Any] | None = None,
) -> TrainedPolicy:
    """Train a sampling policy with SB3 ``algo`` for ``timesteps`` environment steps.

    The defaults are PolicyTrainingConfig's (v1: ``dus_env/DUS-v1``). ``out_dir`` is used as it is: the
    command line refuses a non-empty one without ``--resume`` or ``--overwrite`` (``dus train-policy``).

    Args:
        env_id: registered environment id.
        algo: ppo, a2c, reinforce, sac, td3 or dqn.
        timesteps: total environment steps (summed over the vectorised environments).
        out_dir: run directory (see the module docstring).
        n_envs: parallel environments.
        seed: seed of the algorithm and of the training environments (which reset with seeds seed + i, then
            seeds drawn in DUSEnvConfig.train_seed_range).
        env_kwargs: DUSEnvConfig overrides; the action type follows the algorithm unless given.
        hyperparams: overrides of the algorithm's defaults.
        eval_episodes: episodes per evaluation, on the selection seeds (dus_env.seeds.selection_seeds, never
            the seeds that score the policy afterwards); 0 disables evaluation.
        eval_freq: environment steps between evaluations (default: 4 times per run).
        checkpoint_freq: environment steps between checkpoints (default: 4 times per run).
        progress_bar: show SB3's progress bar.
        vec_env: "auto" (SubprocVecEnv when n_envs > 1), "dummy", "subproc" or "batched" (agents.vec: the n_envs
            runs trained in lockstep in one process on the training core's run axis; every world's id, not an
            instance family's).
        resume: continue from the latest checkpoint in ``out_dir`` (none there is a ConfigError), read without
            unpickling (``agents.policy_io.load_algorithm``, rebuilt with this run's hyper-parameters).
        verbose: SB3 verbosity.
        trust_file: with ``resume``, load the checkpoint with SB3's full loader, which unpickles it (logged).
        eval_env_kwargs: overrides of ``env_kwargs`` for the selection environment only, e.g.
            ``{"sampling": "round_robin"}`` so that an instance family's selection plays every train instance.
    """
    spec = algo_spec(algo)
    out = Path(out_dir)
    checkpoints = sorted(
        (out / "checkpoints").glob(f"{algo}_*_steps.zip"), key=lambda p: int(re.findall(r"_(\d+)_steps", p.name)[0])
    )
    if resume and not checkpoints:
        raise ConfigError(
            f"nothing to resume in {out}: no {algo} checkpoint in {out / 'checkpoints'} (the run stopped before its "
            "first one); start it again with --overwrite"
        )
    out.mkdir(parents=True, exist_ok=True)
    env_kwargs = dict(env_kwargs or {})
    env_kwargs.setdefault("action_type", spec.action_type)
    if spec.name == "dqn" and env_kwargs["action_type"] != "discrete":
        raise ConfigError("dqn needs a Discrete action space: use action_type='discrete'")
    probe = make_env(env_id, env_kwargs).unwrapped
    length, m = probe.episode_length, len(probe.modalities)
    metadata = policy_metadata(probe, algo, env_id, {"seed": seed})
    params = {**spec.defaults(length, m), **(hyperparams or {})}
    if vec_env not in ("auto", "dummy", "subproc", "batched"):
        raise ConfigError(f"vec_env must be auto, dummy, subproc or batched, got {vec_env!r}")
    if vec_env == "batched":
        venv = batched_vec_env(env_id, env_kwargs, n_envs, seed)
    else:  # one environment per process (or in this one)
        subproc = vec_env == "subproc" or (vec_env == "auto" and n_envs > 1)
        cls = SubprocVecEnv if subproc else DummyVecEnv
        venv = make_vec_env(partial(make_env, env_id, env_kwargs), n_envs=n_envs, seed=seed, vec_env_cls=cls)
    try:
        if resume and checkpoints:
            model, meta = load_algorithm(checkpoints[-1], venv, "cpu", settings=params, trust_file=trust_file)
            if meta["algo"] != algo:
                raise ConfigError(f"{checkpoints[-1]} holds a {meta['algo']} policy, not {algo}")
            done = model.num_timesteps
        else:
            model = spec.sb3_class("MlpPolicy", venv, seed=seed, verbose=verbose, device="cpu", **params)
            done = 0
        # written once the model is there: a resume that fails leaves the run's saved config as it was
        (out / "train_config.json").write_text(
            json.dumps(
                {
                    "env_id": env_id,
                    "algo": algo,
                    "timesteps": timesteps,
                    "n_envs": n_envs,
                    "seed": seed,
                    "env_kwargs": env_kwargs,
                    # resolved (the algorithm's defaults with the overrides); the overrides alone are hyper_overrides
                    "hyperparams": {
                        k: v if isinstance(v, int | float | str | bool) else repr(v) for k, v in params.items()
                    },
                    "hyper_overrides": dict(hyperparams or {}),
                    "eval_episodes": eval_episodes,
                    "eval_freq": eval_freq,
                    "checkpoint_freq": checkpoint_freq,
                    "vec_env": vec_env,
                    "eval_env_kwargs": dict(eval_env_kwargs or {}),
                    "episode_length": length,
                },
                indent=2,
                default=str,
            )
        )
        segment = len(list((out / "logs").glob("segment_*"))) if resume else 0
        model.set_logger(_logger(out, segment, verbose))

        per_env = max(1, n_envs)
        callbacks: list[BaseCallback] = [
            _CheckpointWithMetadata(
                metadata,
                save_freq=max(1, (checkpoint_freq or max(length, timesteps // 4)) // per_env),
                save_path=str(out / "checkpoints"),
                name_prefix=algo,
            )
        ]
        eval_cb = None
        if eval_episodes > 0:
            # selection seeds, not eval seeds: a checkpoint picked on the seeds that score it would be flattered
            eval_kwargs = {**env_kwargs, **(eval_env_kwargs or {})}
            eval_env = DummyVecEnv([partial(make_env, env_id, eval_kwargs, selection_seeds(eval_episodes))])
            eval_cb = EvalCallback(
                eval_env,
                n_eval_episodes=eval_episodes,
                eval_freq=max(1, (eval_freq or max(length, timesteps // 4)) // per_env),
                best_model_save_path=str(out / "best"),
                log_path=str(out / "eval"),
                deterministic=True,
                callback_on_new_best=_MetadataOnSave(metadata, path=out / "best" / "best_model.zip"),
                verbose=0,
            )
            if done:
                _restore_evaluations(eval_cb, out / "eval" / "evaluations.npz")
            callbacks.append(eval_cb)
        remaining = max(0, timesteps - done)
        start = time.perf_counter()
        with warnings.catch_warnings():
            # evaluation deliberately runs in one in-process environment beside SubprocVecEnv training
            warnings.filterwarnings("ignore", message="Training and eval env are not of the same type")
            # log_interval 1: a log after every rollout (on-policy) or episode (off-policy); A2C's default of 100
            # rollouts left REINFORCE runs without rollout/ep_rew_mean
            model.learn(
                remaining,
                callback=CallbackList(callbacks),
                log_interval=1,
                progress_bar=progress_bar,
                reset_num_timesteps=not done,
            )
        final = save_policy(model, out / "policy.zip", {**metadata, "timesteps": int(model.num_timesteps)})
        seconds = time.perf_counter() - start
        record_segment(out / "timing.json", done, int(model.num_timesteps), seconds, n_envs, vec_env)
    finally:
        venv.close()
    best = out / "best" / "best_model.zip"
    returns = []
    if (out / "eval" / "evaluations.npz").is_file():
        with np.load(out / "eval" / "evaluations.npz") as ev:
            returns = ev["results"].mean(axis=1).tolist()
    return TrainedPolicy(
        policy=best if best.is_file() else final,
        final=final,
        best=best if best.is_file() else None,
        out_dir=out,
        timesteps=int(model.num_timesteps),
        eval_returns=returns,
    )
