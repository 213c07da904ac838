"""A generalist sampler learnt by imitating each train instance's oracle: behaviour cloning with DAgger rounds.

RL on the instance family has to discover, from a paired reward with a spread of 2-3 points per step, which
instances reward which share; the SAC pilot did not learn the noise instances in 256 episodes. The oracle cache
already holds the answer for every train instance, so imitation asks the decisive question directly: given
the labels, does the context in the observation carry over to instances the policy never saw?

- **Labels.** A train instance whose oracle has headroom (its gate-seed interval above 0) is labelled with the
  oracle share as a box action; one without is labelled uniform (the zero action), because there the best a
  sampler can do is leave the run alone (the oracle's share is the best of a grid that nothing beats).
- **Demonstrations.** Episodes on training seeds (``IMITATION_SEEDS``) under three behaviours, so that the
  states a policy meets when it starts wrong are covered: uniform, the label share, and random box actions.
  Each decision's observation (the family's observation, ``CONTEXT_FEATURES``) is paired with its instance's
  label.
- **DAgger rounds.** The fitted policy then plays the train instances itself; the states it visits, labelled
  the same way, join the data and the policy is fitted again (Ross et al., 2011).
- **Model.** An SB3 PPO actor-critic (``MlpPolicy``, 64-64) whose action mean is fitted to the labels, by mean
  squared error or by the grid-gain loss (``ImitationConfig.loss``), optionally on mirror-augmented data
  (``ImitationConfig.augment``); the value head is left untrained (the policy only acts). It is saved with the
  DUS metadata, so it loads without unpickling, scores with ``dus eval-policy --instances test`` and samples with
  ``policy:PATH.zip``.

``dus imitate --set two_modal --out DIR`` runs it; ``demonstrations.csv`` in the run directory keeps every
episode's observations as they are collected (a re-run resumes).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.imitation_config import FAMILY_ENV_IDS, ImitationConfig

#: training seeds of the demonstrations (inside the training range 0-9999, apart from the other benchmarks')
IMITATION_SEEDS = (2000, 10_000 - 2000)
BEHAVIOURS = ("uniform", "label", "random")
#: n_0 / B of the oracle cache's constant shares (uniform is 1, the action bounds 0.25 and 1.75): the gain curve's grid
GAIN_GRID = (0.25, 0.5, 0.75, 0.875, 1.0, 1.125, 1.25, 1.5, 1.75)


def family_env(instance_set: str, name: str, env_id: str = FAMILY_ENV_IDS[0]) -> Any:  # -> DUSEnv
    """Instance ``name`` as ``env_id`` observes it, without the reference run (labels need no reward)."""
    import dus_env
    from dus_env.family import DUSFamilyEnv

    settings = {k: v for k, v in dus_env.FAMILY_IDS[env_id].items() if k not in ("instance_set", "split", "sampling")}
    kwargs = {**settings, "reference": False, "reward": "delta_val_acc"}
    return DUSFamilyEnv(instance_set, instance=name, **kwargs).instance_env(name)


def labels(instance_set: str) -> dict[str, np.ndarray]:
    """Train instance -> the box action it is labelled with (the oracle share with headroom, else uniform)."""
    from agents.oracle import load_oracles

    out = {}
    for name, o in load_oracles(instance_set).items():
        if o.split != "train":
            continue
        env = family_env(instance_set, name)
        if not o.headroom:
            out[name] = np.zeros(len(env.modalities), np.float32)
            continue
        q = np.array([o.quantities[m] for m in env.modalities])
        out[name] = env.mapper.action_for(q, env.config.trainer.batch_size)
    return out


def play(
    instance_set: str,
    name: str,
    seed: int,
    behaviour: str,
    label: np.ndarray,
    policy: str | None = None,
    env_id: str = FAMILY_ENV_IDS[0],
) -> list[dict[str, Any]]:
    """One episode of ``behaviour`` on instance ``name``: a row per decision with the observation it acted on."""
    import torch

    torch.set_num_threads(1)
    env = family_env(instance_set, name, env_id)
    model = None
    if behaviour == "policy":
        from agents.policy_io import load_policy

        model, _ = load_policy(policy)
    rng = np.random.default_rng([seed, 23])
    obs, _ = env.reset(seed=seed)
    rows, done, k = [], False, 0
    while not done:
        if behaviour == "uniform":
            action = np.zeros_like(label)
        elif behaviour == "label":
            action = label
        elif behaviour == "random":
            action = rng.uniform(-1, 1, label.shape).astype(np.float32)
        else:
            action, _ = model.predict(obs, deterministic=True)
        rows.append({"instance": name, "seed": seed, "behaviour": behaviour, "k": k, **_vector(obs)})
        obs, _, terminated, truncated, _ = env.step(action)
        done, k = terminated or truncated, k + 1
    return rows


def _vector(obs: np.ndarray) -> dict[str, float]:
    return {f"x{i}": float(v) for i, v in enumerate(obs)}


def collect(
    instance_set: str,
    seeds: Sequence[int],
    behaviours: Sequence[str],
    csv: Path,
    targets: dict[str, np.ndarray],
    workers: int = 1,
    policy: str | None = None,
    env_id: str = FAMILY_ENV_IDS[0],
) -> pd.DataFrame:
    """Play (or finish) the episodes, appending each to ``csv`` as it ends; all the rows of those episodes."""
    from agents.episode_log import numeric_frame, play_logged
    from dus_env.family import load_instance_set
    from mml_backbones.run_dir import CsvLog

    log = CsvLog(csv)
    rows = log.read()
    done = {(r["instance"], int(r["seed"]), r["behaviour"]) for r in rows}
    names = load_instance_set(instance_set).names("train")
    todo = [(n, s, b) for s in seeds for n in names for b in behaviours if (n, s, b) not in done]
    play_logged(log, rows, play, [(instance_set, n, s, b, targets[n], policy, env_id) for n, s, b in todo], workers)
    df = numeric_frame(rows, ("instance", "behaviour"))
    keep = df["seed"].isin(list(seeds)) & df["behaviour"].isin(list(behaviours))
    return df[keep].reset_index(drop=True)


def new_model(instance_set: str, seed: int) -> Any:  # -> PPO
    """An untrained PPO actor-critic with the family's spaces and PPO's networks (it acts by its mean)."""
    from stable_baselines3 import PPO

    from agents.algorithms import algo_spec

    env = family_env(instance_set, _first_train(instance_set))
    # PPO's own policy settings, so that the safe loader rebuilds the networks from agents.algorithms
    kwargs = algo_spec("ppo").defaults(1, len(env.modalities))["policy_kwargs"]
    return PPO("MlpPolicy", env, policy_kwargs=kwargs, seed=seed, device="cpu", verbose=0)


def _first_train(instance_set: str) -> str:
    from dus_env.family import load_instance_set

    return load_instance_set(instance_set).names("train")[0]


def fit(
    model: Any, x: np.ndarray, y: np.ndarray, config: ImitationConfig, curves: np.ndarray | None = None
) -> list[float]:
    """Fit the policy's action mean to the labels ``y`` (``config.loss``); returns each epoch's mean loss.

    ``curves`` holds each row's gain curve on ``GAIN_GRID`` (``gain_curves``); the "grid_gain" loss needs it.
    """
    import torch

    if config.loss == "grid_gain" and curves is None:
        raise ValueError("the grid_gain loss needs each row's gain curve (curves=...)")
    if config.augment:
        # the run does not depend on which modality is listed first, so the label must not either
        import dus_env

        mx, my = mirror(x, y, dus_env.FAMILY_V1["observation_features"])
        x, y = np.concatenate([x, mx]), np.concatenate([y, my])
        if curves is not None:  # n_0 of the mirrored run is 2B - n_0 of the original: the grid reversed
            curves = np.concatenate([curves, curves[:, ::-1]])

    policy = model.policy
    params = [p for n, p in policy.named_parameters() if not n.startswith(("value_net", "mlp_extractor.value"))]
    opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    ct = None if curves is None else torch.as_tensor(np.ascontiguousarray(curves), dtype=torch.float32)
    losses = []
    for _ in range(config.epochs):
        order, total = torch.randperm(len(xt), generator=gen), 0.0
        for i in range(0, len(xt), config.batch_size):
            idx = order[i : i + config.batch_size]
            mean = policy.get_distribution(xt[idx]).distribution.mean
            loss = torch.nn.functional.mse_loss(mean, yt[idx])
            if config.loss == "grid_gain":
                loss = config.mse_weight * loss - interpolate(share_n0(mean), ct[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(xt))
    return losses


def gain_curves(instance_set: str, clip: bool = True) -> dict[str, np.ndarray]:
    """Train instance -> its gate-seed gain over uniform (points) at each n_0 / B of ``GAIN_GRID``.

    The gains are the oracle cache's constant shares (uniform is 0). With ``clip``, where the oracle has no
    headroom the positives are set to 0: a gain no interval supports is noise, and there the label is uniform.
    """
    from agents.oracle import load_oracles

    out = {}
    for name, o in load_oracles(instance_set).items():
        if o.split != "train":
            continue
        if len(o.modalities) != 2:
            raise ValueError(f"gain curves need two modalities; {name} has {len(o.modalities)}")
        gains = {1.0: 0.0}
        for label, (mean, _, _) in o.shares.items():  # "weak favoured 16/112": n_m in modality order
            n0, n1 = (int(v) for v in label.split()[-1].split("/"))
            gains[round(2 * n0 / (n0 + n1), 4)] = mean
        missing = [r for r in GAIN_GRID if r not in gains]
        if missing:
            raise ValueError(f"{name}: the oracle cache has no share with n_0 / B in {missing}")
        curve = np.array([gains[r] for r in GAIN_GRID], np.float32)
        out[name] = curve if o.headroom or not clip else np.minimum(curve, 0.0)
    return out


def share_n0(mean: Any) -> Any:  # torch.Tensor -> torch.Tensor
    """n_0 / B the family's mapper plays for box actions ``mean`` (N, 2), differentiably (the floor as a clamp)."""
    import torch

    from dus_env.actions import ActionMapper
    from mml_backbones.quantities import QuantityBounds

    a = torch.clamp(mean, -1.0, 1.0)  # the environment clips out-of-range actions
    n0 = 2 * torch.sigmoid(ActionMapper.temperature * (a[:, 0] - a[:, 1]))  # weights exp(temperature * a)
    return torch.clamp(n0, QuantityBounds.low, 2 - QuantityBounds.low)  # each modality keeps its floor


def interpolate(n0: Any, curves: Any) -> Any:  # torch.Tensor, torch.Tensor -> torch.Tensor
    """Each row's gain curve (N, len(GAIN_GRID)) read at its n_0 / B (N,), linearly between the grid's points."""
    import torch

    grid = torch.as_tensor(GAIN_GRID, dtype=torch.float32)
    i = torch.clamp(torch.searchsorted(grid, n0.detach().contiguous()) - 1, 0, len(GAIN_GRID) - 2)
    w = (n0 - grid[i]) / (grid[i + 1] - grid[i])
    c0 = curves.gather(1, i[:, None])[:, 0]
    c1 = curves.gather(1, (i + 1)[:, None])[:, 0]
    return c0 + w * (c1 - c0)


def mirror(x: np.ndarray, y: np.ndarray, features: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The same decisions with the two modalities listed the other way round (entries and labels swapped)."""
    from mml_backbones.observation import FEATURES

    if y.shape[1] != 2:
        raise ValueError(f"mirroring needs two modalities, got {y.shape[1]}")
    order, i = [], 0
    for name in features:
        per_modality = FEATURES[name][0]
        order += [i + 1, i] if per_modality else [i]
        i += 2 if per_modality else 1
    if i != x.shape[1]:
        raise ValueError(f"observation has {x.shape[1]} entries, features {list(features)} give {i}")
    return x[:, order], y[:, ::-1].copy()


def dataset(df: pd.DataFrame, targets: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The observations of ``df`` and each one's label."""
    x = df[[c for c in df.columns if c.startswith("x") and c[1:].isdigit()]].to_numpy(np.float32)
    y = np.stack([targets[n] for n in df["instance"]]).astype(np.float32)
    return x, y


def row_curves(df: pd.DataFrame, curves: dict[str, np.ndarray] | None) -> np.ndarray | None:
    """Each row's gain curve (None when the loss needs none)."""
    return None if curves is None else np.stack([curves[n] for n in df["instance"]])


def train_imitation(config: ImitationConfig, out: Path) -> Path:
    """Collect, fit, run the DAgger rounds and save ``out/policy.zip`` (with ``train_config.json``, ``fit.json``)."""
    import torch

    from agents.policy_io import save_policy
    from agents.training import policy_metadata

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2))
    targets = labels(config.instance_set)
    curves = gain_curves(config.instance_set) if config.loss == "grid_gain" else None
    seeds = list(range(IMITATION_SEEDS[0], IMITATION_SEEDS[0] + config.seeds))
    df = collect(
        config.instance_set, seeds, BEHAVIOURS, out / "demonstrations.csv", targets, config.workers, env_id=config.env
    )
    model = new_model(config.instance_set, config.seed)
    history = [{"round": 0, "episodes": int(df.groupby(["instance", "seed", "behaviour"]).ngroups)}]
    history[-1]["final_loss"] = fit(model, *dataset(df, targets), config, row_curves(df, curves))[-1]
    env = family_env(config.instance_set, _first_train(config.instance_set), config.env)
    meta = policy_metadata(env, "ppo", config.env, {"seed": config.seed, "trained_by": "imitation"})
    path = save_policy(model, out / "policy.zip", meta)
    for r in range(1, config.rounds + 1):
        # each round's episodes use fresh seeds, so the policy's own states are new runs, not replays
        round_seeds = [s + 100 * r for s in seeds]
        visited = collect(
            config.instance_set,
            round_seeds,
            ["policy"],
            out / f"dagger_{r}.csv",
            targets,
            config.workers,
            str(path),
            config.env,
        )
        df = pd.concat([df, visited], ignore_index=True)
        model = new_model(config.instance_set, config.seed)
        history.append({"round": r, "episodes": int(df.groupby(["instance", "seed", "behaviour"]).ngroups)})
        history[-1]["final_loss"] = fit(model, *dataset(df, targets), config, row_curves(df, curves))[-1]
        path = save_policy(model, out / "policy.zip", meta)
    (out / "fit.json").write_text(json.dumps(history, indent=2))
    return path
