"""Rebuilding a Stable-Baselines3 algorithm from its ``.zip`` without unpickling anything (``policy_io``'s safe path).

An SB3 archive holds ``data`` (JSON; each value SB3 could not write as JSON is cloudpickled, base64, under a
``":serialized:"`` key, with a readable record of its first-level fields beside it), one ``NAME.pth`` state dict per
network and optimiser, and ``pytorch_variables.pth`` (e.g. SAC's entropy coefficient). SB3's ``load`` unpickles
the serialized values, so a crafted file runs code. This module follows SB3's own load order (``BaseAlgorithm.load``
in 2.x: construct without set-up, update the attributes, ``_setup_model``, load the state dicts) with these
choices:

- plain JSON values of ``data`` are data and are kept, as SB3 keeps them (hyper-parameters, counters, the seed);
  names SB3 never saves (``_excluded_save_params``: the policy, the env, buffers, the device) are refused;
- a serialized value is never decoded: each one below is supplied instead (SB3's ``custom_objects`` idea), and
  any other is refused by name:

  ====================================================  ===============================================================
  ``policy_class``                                      the algorithm's ``MlpPolicy`` (the record's module must agree)
  ``observation_space``, ``action_space``               rebuilt from the DUS metadata: its observation features and
                                                        action mapping (the record's dtype, shape and bounds must agree)
  ``policy_kwargs``, ``action_noise``                   from ``settings``: ``agents.algorithms``' defaults, or a run's
                                                        own hyper-parameters on resume (the record must agree)
  ``train_freq``, ``clip_range``, ``clip_range_vf``     from ``settings`` when given there, else SB3's default
  ``lr_schedule``, ``exploration_schedule``             rebuilt by SB3's set-up from the plain settings
  ``rollout_buffer_class``, ``replay_buffer_class``     from ``settings`` when given there, else SB3's choice (n-step
                                                        replay when ``n_steps > 1``, as it was trained)
  ``_last_obs``, ``_last_original_obs``,                empty, as after SB3's ``load(env=...)`` (the next ``learn``
  ``_last_episode_starts``, ``ep_info_buffer``,         resets the environments; the episode-info logging window starts
  ``ep_success_buffer``                                 afresh)
  ====================================================  ===============================================================

- ``.pth`` entries are read with ``torch.load(weights_only=True)`` (``mml_backbones.safe_files``), their names must
  be exactly the algorithm's, and every tensor must fit the rebuilt networks: a missing or unexpected key or a
  shape that differs is refused with a one-line message naming the first one (metadata and weights disagree).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import recursive_getattr, recursive_setattr
from stable_baselines3.common.utils import check_for_correct_spaces
from stable_baselines3.common.vec_env import VecEnv

from agents.algorithms import AlgoSpec
from dus_env.actions import ActionMapper
from dus_env.env import observation_space
from mml_backbones.errors import DataError, one_line
from mml_backbones.safe_files import load_torch, read_json

SERIALIZED = ":serialized:"
#: serialized entries that start empty (SB3's load with an environment does the same for the last observation)
RESET = ("_last_obs", "_last_original_obs", "_last_episode_starts", "ep_info_buffer", "ep_success_buffer")
#: serialized entries left to the constructor (given ``settings``' value when it has one) or to SB3's set-up
FROM_CONSTRUCTOR = ("train_freq", "clip_range", "clip_range_vf", "lr_schedule", "exploration_schedule")
#: serialized entries taken from ``settings`` (None when absent: SB3 chooses)
FROM_SETTINGS = ("action_noise", "rollout_buffer_class", "replay_buffer_class")
#: serialized entries rebuilt from the metadata and agents.algorithms, then checked against the file's record
REBUILT = ("policy_class", "observation_space", "action_space", "policy_kwargs")
#: the ``.pth`` entry of SB3's extra tensors
VARIABLES = "pytorch_variables.pth"


def rebuild_algorithm(
    where: str,
    spec: AlgoSpec,
    metadata: Mapping[str, Any],
    entries: Mapping[str, bytes],
    settings: Mapping[str, Any],
    env: VecEnv | None = None,
    device: str = "cpu",
) -> BaseAlgorithm:
    """The algorithm an SB3 archive describes, rebuilt as the module docstring says; DataError when it cannot be.

    Args:
        where: the file, as messages name it.
        spec: the algorithm the metadata names.
        metadata: the archive's DUS metadata (already checked by ``policy_io``).
        entries: the archive's entries, read into memory.
        settings: hyper-parameters whose objects (policy_kwargs, action noise, ...) the rebuild uses.
        env: the environments to continue training on (None: a policy that only acts).
        device: torch device of the networks.
    """
    if "data" not in entries:
        raise DataError(f"{where} has no SB3 'data' entry: not a Stable-Baselines3 policy")
    data = read_json(entries["data"], f"{where}: entry 'data'")
    if not isinstance(data, dict):
        raise DataError(f"{where}: entry 'data' holds a {type(data).__name__}, not a JSON object")
    cls = spec.sb3_class
    ours = _rebuilt(where, spec, metadata, data, settings)
    kwargs = {k: settings[k] for k in FROM_CONSTRUCTOR if k in settings}
    values = _plain_values(where, cls, data)
    values.update(ours)
    values.update(dict.fromkeys(RESET))
    values.update({k: settings.get(k) for k in FROM_SETTINGS})
    if env is not None:  # as SB3's load: the environments' spaces must be the policy's, and their count counts
        env = cls._wrap_env(env)
        try:
            check_for_correct_spaces(env, ours["observation_space"], ours["action_space"])
        except ValueError as e:
            raise DataError(f"{where} does not fit these environments: {one_line(e)}") from None
        values["n_envs"] = env.num_envs
    try:
        model = cls(policy=ours["policy_class"], env=env, device=device, _init_setup_model=False, **kwargs)
        model.__dict__.update(values)
        model._setup_model()
        _load_weights(where, model, entries)
        if model.use_sde:
            model.policy.reset_noise()
    except DataError:
        raise
    except Exception as e:  # plain values of the wrong type make SB3 and torch fail in many ways
        raise DataError(f"cannot rebuild {spec.name} from {where}: {type(e).__name__}: {one_line(e)}") from None
    return model


def _plain_values(where: str, cls: type[BaseAlgorithm], data: dict[str, Any]) -> dict[str, Any]:
    """The plain JSON values of ``data``; refuses serialized values this module does not supply."""
    known = set(RESET) | set(FROM_CONSTRUCTOR) | set(FROM_SETTINGS) | set(REBUILT)
    probe = cls(policy="MlpPolicy", env=None, device="cpu", _init_setup_model=False)
    excluded = set(probe._excluded_save_params())
    values = {}
    for key, value in data.items():
        if not key.isidentifier() or key.startswith("__") or key in excluded:
            raise DataError(f"{where}: entry 'data' sets {key!r}, which SB3 never saves; refused")
        if isinstance(value, dict) and SERIALIZED in value:
            if key not in known:
                raise DataError(
                    f"{where}: entry 'data' holds a pickled {key!r}, which this loader does not rebuild; refused "
                    "without decoding it (load_policy(..., trust_file=True) / --trust-file unpickles a file you trust)"
                )
            continue
        if key not in known:
            values[key] = value
    return values


def _record(entry: Any) -> dict[str, Any] | None:
    """The readable fields SB3 writes beside a serialized value (or the value itself when it is plain JSON)."""
    if isinstance(entry, dict):
        return {k: v for k, v in entry.items() if not k.startswith(":")}
    return None


def _readable(value: Any) -> Any:
    """A value as SB3's record shows it: JSON as such, anything else as ``str``."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return str(value)


def _numbers(value: Any) -> np.ndarray | None:
    """The numbers of a record field such as ``"[ 0.  0. -1.]"`` or ``25`` (None if it is not only numbers)."""
    text = str(value).replace("[", " ").replace("]", " ")
    try:
        return np.asarray([float(x) for x in text.split()], dtype=float)
    except ValueError:
        return None


def _rebuilt(
    where: str, spec: AlgoSpec, metadata: Mapping[str, Any], data: Mapping[str, Any], settings: Mapping[str, Any]
) -> dict[str, Any]:
    """policy_class, the spaces and policy_kwargs from the metadata and ``settings``, checked against ``data``."""
    m = len(metadata["modalities"])
    policy_class = spec.sb3_class.policy_aliases["MlpPolicy"]
    record = _record(data.get("policy_class")) or {}
    if "__module__" in record and record["__module__"] != policy_class.__module__:
        raise DataError(
            f"{where}: its policy class comes from {record['__module__']!r}, {spec.name}'s MlpPolicy from "
            f"{policy_class.__module__!r}"
        )
    obs = observation_space(metadata["observation_features"], m)
    act = ActionMapper.from_metadata(metadata["action"], m).space
    for key, space in (("observation_space", obs), ("action_space", act)):
        _check_space(where, key, space, _record(data.get(key)))
    policy_kwargs = dict(settings.get("policy_kwargs") or {})
    record = _record(data.get("policy_kwargs"))
    if record is not None:
        theirs = {k: v for k, v in record.items() if k not in ("use_sde", "device")}
        mine = {k: _readable(v) for k, v in policy_kwargs.items()}
        if theirs != mine:
            raise DataError(
                f"{where}: trained with policy_kwargs {one_line(theirs, 200)}, {spec.name}'s are {mine}: its networks "
                "cannot be "
                "rebuilt from agents.algorithms (trust_file=True / --trust-file unpickles a file you trust)"
            )
        if isinstance(record.get("use_sde"), bool):  # off-policy algorithms record their gSDE switch here
            policy_kwargs["use_sde"] = record["use_sde"]
    return {"policy_class": policy_class, "observation_space": obs, "action_space": act, "policy_kwargs": policy_kwargs}


def _check_space(where: str, key: str, space: spaces.Space, record: dict[str, Any] | None) -> None:
    """The metadata's space must be the one SB3 recorded: dtype and shape as written, bounds as numbers."""
    if record is None:
        raise DataError(f"{where}: entry 'data' has no {key} record")
    mine = {k: _readable(v) for k, v in vars(space).items()}
    differ = [k for k in ("dtype", "_shape") if k in record and record[k] != mine.get(k)]
    for k in ("low", "high", "n", "nvec", "start"):
        if k in record and k in mine:
            a, b = _numbers(record[k]), _numbers(mine[k])
            if a is not None and b is not None and (a.shape != b.shape or not np.array_equal(a, b)):
                differ.append(k)
    if differ:
        shown = {k: one_line(record[k], 80) for k in differ}
        raise DataError(
            f"{where}: its metadata describes {key} {one_line(space, 120)}, but the policy was trained on one "
            f"with {shown}"
        )


def _load_weights(where: str, model: BaseAlgorithm, entries: Mapping[str, bytes]) -> None:
    """Load the ``.pth`` entries into the rebuilt model, refusing any that do not fit it exactly."""
    state_dicts, variables = model._get_torch_save_params()
    expected = {f"{name}.pth" for name in state_dicts}
    found = {n for n in entries if n.endswith(".pth")} - {VARIABLES}
    if found != expected:
        missing, extra = sorted(expected - found), sorted(found - expected)
        raise DataError(
            f"{where}: weights do not match the {type(model).__name__} its metadata describes "
            f"(missing {missing}, unexpected {extra})"
        )
    for name in state_dicts:
        what = f"{where}: entry {name}.pth"
        state = load_torch(entries[f"{name}.pth"], what)
        target = recursive_getattr(model, name)
        if not isinstance(state, Mapping):
            raise DataError(f"{what} holds a {type(state).__name__}, not a state dict")
        if isinstance(target, torch.optim.Optimizer):
            _load_optimizer(what, target, state)
        else:
            _check_module_state(what, target.state_dict(), state)
            target.load_state_dict(state, strict=True)
    saved = load_torch(entries[VARIABLES], f"{where}: entry {VARIABLES}") if VARIABLES in entries else {}
    if not isinstance(saved, Mapping) or set(saved) - set(variables):
        raise DataError(f"{where}: entry {VARIABLES} does not hold {type(model).__name__}'s variables {variables}")
    for name, value in saved.items():
        if value is None:  # SB3 saves None for a variable the configuration does not use
            continue
        current = recursive_getattr(model, name)
        if not isinstance(value, torch.Tensor) or value.shape != current.shape:
            raise DataError(f"{where}: variable {name} in {VARIABLES} does not fit (expected {tuple(current.shape)})")
        recursive_setattr(model, f"{name}.data", value.to(current.device))


def _check_module_state(what: str, mine: Mapping[str, torch.Tensor], theirs: Mapping[str, Any]) -> None:
    """Keys and shapes of a network's saved state against the rebuilt network's."""
    missing, extra = sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine))
    if missing or extra:
        raise DataError(
            f"{what} does not fit the network its metadata describes (missing {missing[:3]}, unexpected {extra[:3]})"
        )
    for key, value in theirs.items():
        if not isinstance(value, torch.Tensor):
            raise DataError(f"{what}: {key} is a {type(value).__name__}, not a tensor")
        if value.shape != mine[key].shape:
            raise DataError(
                f"{what}: {key} has shape {tuple(value.shape)}, the network its metadata describes needs "
                f"{tuple(mine[key].shape)}"
            )


def _load_optimizer(what: str, optimizer: torch.optim.Optimizer, state: Mapping[str, Any]) -> None:
    """Load an optimiser's state after checking its groups and each parameter's state tensors fit."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    groups, per_param = state.get("param_groups"), state.get("state")
    if not isinstance(groups, list) or not isinstance(per_param, Mapping):
        raise DataError(f"{what} is not an optimiser state (param_groups and state)")
    sizes = [len(g.get("params", ())) if isinstance(g, Mapping) else -1 for g in groups]
    if sizes != [len(g["params"]) for g in optimizer.param_groups]:
        raise DataError(f"{what}: parameter groups of sizes {sizes} do not fit the rebuilt optimiser")
    for index, values in per_param.items():
        if not isinstance(index, int) or not 0 <= index < len(params) or not isinstance(values, Mapping):
            raise DataError(f"{what}: state of parameter {index!r} does not fit the rebuilt optimiser")
        shape = params[index].shape
        for name, value in values.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != shape:
                got = tuple(value.shape)
                raise DataError(f"{what}: {name} of parameter {index} has shape {got}, not {tuple(shape)}")
            if not isinstance(value, torch.Tensor | int | float):
                raise DataError(f"{what}: {name} of parameter {index} is not a number or tensor")
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise DataError(f"{what} does not fit the rebuilt optimiser: {one_line(e)}") from None
