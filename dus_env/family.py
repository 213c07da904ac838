"""Instance families: one environment whose episodes are drawn from a set of training-run specifications.

A learned sampler earns its place over a grid search only if one policy serves runs it never saw. An *instance*
is a whole training run (dataset and its options, method, optimiser and learning rate, epochs, batch size,
decision interval, modality order: any TrainerConfig field); an *instance set* is a JSON file with a ``train`` and
a ``test`` split of instances, as DACBench's and CARL's instance sets are. ``DUSFamilyEnv`` draws an instance per
episode and runs it as ``DUSEnv`` would (it is built on DUSEnv's public API: one DUSEnv per instance, built when
first drawn). See docs/instances.md for the file format and the shipped set.

The file (``dus_env/instances/<name>.json``, or any path)::

    {
      "name": "my_set",
      "description": "...",
      "extends": "two_modal",              # optional: start from another set (its instances, its defaults)
      "defaults": {TrainerConfig fields every instance starts from},
      "train": [{"name": "a", "description": "...", TrainerConfig fields}, ...],
      "test": [...]
    }

An instance's fields override the defaults; ``dataset_options`` and ``method_options`` are merged one level deep
(when the instance keeps the defaults' dataset). A relative ``dataset_options.path`` (an ``.npz`` of the user's)
is taken relative to the set file. Instances may not set ``seed`` (the episode's), nor the fields every instance
of a set shares because they define the spaces or the statistic (``SHARED_FIELDS``: give them to the environment).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from dus_env.config import DEFAULT_TRAINER, DUSEnvConfig, make_config
from dus_env.env import DUSEnv
from mml_backbones.config import from_dict, to_dict
from mml_backbones.data.dataset import DatasetSplits
from mml_backbones.data.registry import load_dataset
from mml_backbones.errors import ConfigError, DataFileNotFoundError
from mml_backbones.observation import DiscrepancyObservation
from mml_backbones.quantities import Quantities
from mml_backbones.trainer_config import TrainerConfig

INSTANCES_DIR = Path(__file__).parent / "instances"
SPLITS = ("train", "test")
#: TrainerConfig fields an instance may not set: they fix the spaces and the statistic every instance shares
SHARED_FIELDS = frozenset({"observation_features", "bounds", "statistics", "seed"})
#: dict-valued fields an instance merges into the defaults' (one level) rather than replaces
MERGED_FIELDS = ("dataset_options", "method_options")
TRAINER_FIELDS = frozenset(to_dict(DEFAULT_TRAINER))
Sampling = Literal["random", "round_robin"]


@dataclass(frozen=True)
class Instance:
    """One training-run specification of a set.

    Attributes:
        name: unique in its set.
        split: "train" or "test".
        trainer: the TrainerConfig fields of the run (the set's defaults with the instance's own on top).
        description: one line for listings.
    """

    name: str
    split: str
    trainer: dict[str, Any]
    description: str = ""

    def trainer_config(self, **overrides: Any) -> TrainerConfig:
        """The run's TrainerConfig (its seed is the episode's; ``overrides`` are TrainerConfig fields on top)."""
        return from_dict(TrainerConfig, {**to_dict(DEFAULT_TRAINER), **self.trainer, **overrides})


@dataclass(frozen=True)
class InstanceSet:
    """A named set of instances with a train and a test split.

    Attributes:
        name: the set's name.
        description: what the set poses.
        instances: every instance, train first.
        path: the file it was read from (None: built from a dict).
        defaults: the TrainerConfig fields its instances start from.
    """

    name: str
    description: str
    instances: tuple[Instance, ...]
    path: Path | None = None
    defaults: dict[str, Any] = field(default_factory=dict)

    def split(self, split: str) -> list[Instance]:
        """The instances of ``split`` ("train" or "test")."""
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; valid: {list(SPLITS)}")
        out = [i for i in self.instances if i.split == split]
        if not out:
            raise ConfigError(f"instance set {self.name!r} has no {split} instances")
        return out

    def get(self, name: str) -> Instance:
        """The instance called ``name``."""
        for i in self.instances:
            if i.name == name:
                return i
        raise ConfigError(f"instance set {self.name!r} has no instance {name!r}; valid: {self.names()}")

    def names(self, split: str | None = None) -> list[str]:
        """Instance names (of one split, or all)."""
        return [i.name for i in (self.split(split) if split else self.instances)]


def list_instance_sets() -> list[str]:
    """The names of the shipped instance sets (``dus_env/instances/*.json``)."""
    return sorted(p.stem for p in INSTANCES_DIR.glob("*.json") if "." not in p.stem)


def instance_set_path(source: str | Path) -> Path:
    """The file of a shipped set's name, or ``source`` itself when it is a path to a file."""
    path = Path(source)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise DataFileNotFoundError(f"instance set file not found: {path}")
        return path
    shipped = INSTANCES_DIR / f"{source}.json"
    if not shipped.is_file():
        raise ConfigError(
            f"unknown instance set {str(source)!r}; shipped: {list_instance_sets()}, or give a .json path"
        )
    return shipped


def load_instance_set(source: str | Path | dict[str, Any] | InstanceSet) -> InstanceSet:
    """Read an instance set: a shipped name (``list_instance_sets()``), a ``.json`` path, or the file's dict."""
    if isinstance(source, InstanceSet):
        return source
    if isinstance(source, dict):
        return _parse(source, None)
    path = instance_set_path(source)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from e
    return _parse(data, path)


def _parse(data: dict[str, Any], path: Path | None) -> InstanceSet:
    where = str(path) if path else "instance set"
    unknown = sorted(set(data) - {"name", "description", "extends", "defaults", *SPLITS})
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown}; valid: name, description, extends, defaults, train, test"
        )
    base = load_instance_set(data["extends"]) if data.get("extends") else None
    defaults = {**(base.defaults if base else {}), **_fields(data.get("defaults", {}), f"{where} defaults")}
    instances = list(base.instances) if base else []
    for split in SPLITS:
        for entry in data.get(split, []):
            instances.append(_instance(entry, split, defaults, path, where))
    names = [i.name for i in instances]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{where}: instance names must be unique, repeated: {dup}")
    if not instances:
        raise ConfigError(f"{where}: no instances (give 'train' and/or 'test' lists)")
    name = str(data.get("name") or (path.stem if path else "custom"))
    return InstanceSet(name, str(data.get("description", "")), tuple(instances), path, defaults)


def _fields(values: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of TrainerConfig fields")
    unknown = sorted(set(values) - TRAINER_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown TrainerConfig field(s) {unknown}; valid: {sorted(TRAINER_FIELDS)}")
    shared = sorted(set(values) & SHARED_FIELDS)
    if shared:
        raise ConfigError(
            f"{where}: {shared} cannot differ between instances (the spaces and statistic are shared; the seed "
            "is the episode's); give them to the environment, e.g. gymnasium.make(..., observation_features=...)"
        )
    return dict(values)


def _instance(entry: dict[str, Any], split: str, defaults: dict[str, Any], path: Path | None, where: str) -> Instance:
    if not isinstance(entry, dict) or not entry.get("name"):
        raise ConfigError(f"{where}: every {split} instance needs a 'name'")
    own = dict(entry)
    name, description = str(own.pop("name")), str(own.pop("description", ""))
    own = _fields(own, f"{where} instance {name!r}")
    merged = {**defaults, **own}
    same_dataset = own.get("dataset", defaults.get("dataset")) == defaults.get("dataset")
    for key in MERGED_FIELDS:
        if key in own and key in defaults and (same_dataset or key != "dataset_options"):
            merged[key] = {**defaults[key], **own[key]}
    options = dict(merged.get("dataset_options", {}))
    if path is not None and isinstance(options.get("path"), str) and not Path(options["path"]).is_absolute():
        options["path"] = str((path.parent / options["path"]).resolve())  # a user's .npz beside the set file
        merged["dataset_options"] = options
    instance = Instance(name, split, merged, description)
    instance.trainer_config()  # validates every field now, before any data is loaded
    return instance


@functools.lru_cache(maxsize=64)
def _load(dataset: str, options_json: str) -> DatasetSplits:
    """Datasets are loaded once per process, whatever the number of environments that run an instance."""
    return load_dataset(dataset, **json.loads(options_json))


def load_instance_data(config: TrainerConfig) -> DatasetSplits:
    """The dataset of an instance's run (cached per process)."""
    return _load(config.dataset, json.dumps(to_dict(config.dataset_options), sort_keys=True))


class DUSFamilyEnv(gym.Env):
    """A DUS environment whose episodes are drawn from an instance set: a distribution of training runs.

    ## Description

    Each ``reset`` draws an instance of the split (``sampling="random"``: uniformly from the environment's
    ``np_random``; ``"round_robin"``: in the set's order) and starts its run as ``DUSEnv`` does; ``step`` trains
    it. ``instance="name"`` replays one instance alone, and ``reset(options={"instance": "name"})`` picks one
    for a single episode.

    ## Spaces, rewards, starting state, episode end

    Those of ``DUSEnv`` with the environment-level settings given here (``reward``, ``reference``, the action
    settings, ``observation_features``...), which every instance shares: all instances of a set must have the
    same number of modalities, hence the same observation and action spaces (checked as they are built).
    Episode lengths may differ between instances (the shipped set keeps them equal); ``episode_length`` is the
    longest.

    ## Info

    ``DUSEnv``'s, plus ``instance`` (its name) and ``split``.

    ## Arguments

    ``DUSFamilyEnv(instance_set="two_modal", split="train", sampling="random", instance=None, **overrides)``:
    a shipped set's name, a ``.json`` path or the file's dict; ``overrides``: DUSEnvConfig fields, and
    TrainerConfig fields applied on top of every instance (e.g. ``epochs=1`` for a smoke run).

    ## Version History

    * v1: the v1 equal-budget actions and the paired reward on the kept epoch's score (``paired_selected_val``),
      the observation of how learning is going plus the validation context (``CONTEXT_FEATURES``).
    """

    metadata = {"render_modes": []}  # noqa: RUF012 - the Gymnasium convention is a class-level dict

    def __init__(
        self,
        instance_set: str | Path | dict[str, Any] | InstanceSet = "two_modal",
        split: str = "train",
        sampling: Sampling = "random",
        instance: str | None = None,
        config: DUSEnvConfig | dict[str, Any] | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        if sampling not in ("random", "round_robin"):
            raise ConfigError(f"sampling must be 'random' or 'round_robin', got {sampling!r}")
        self.instance_set = load_instance_set(instance_set)
        self.split = split
        self.sampling = sampling
        self.instances: list[Instance] = (
            [self.instance_set.get(instance)] if instance else self.instance_set.split(split)
        )
        self._config, self._overrides = config, overrides
        self._envs: dict[str, DUSEnv] = {}
        self.instance = self.instances[0]
        self.current = self._env(self.instance)
        self.observation_space = self.current.observation_space
        self.action_space = self.current.action_space
        #: the environment-level settings (reward, actions, observation) every instance shares, with the first
        #: instance's run
        self.config: DUSEnvConfig = self.current.config
        self.mapper = self.current.mapper
        self._next = 0
        self._first_reset = True

    # ------------------------------------------------------------------------------------------------- API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Draw an instance and start its run; the training seed is ``seed`` or drawn as ``DUSEnv`` draws it."""
        super().reset(seed=seed)
        inst = self.draw_instance((options or {}).get("instance"))
        train_seed = self.config.episode_seed(seed, self._first_reset, self.np_random)
        self._first_reset = False
        self.instance, self.current = inst, self._env(inst)
        obs, info = self.current.reset(seed=train_seed)
        return obs, self.name_info(info)

    def draw_instance(self, chosen: str | None = None) -> Instance:
        """The next episode's instance: ``chosen`` (a name), else the next in turn or a draw from ``np_random``."""
        if chosen is not None:
            return self.instance_set.get(chosen)
        if self.sampling == "round_robin":
            self._next += 1
            return self.instances[(self._next - 1) % len(self.instances)]
        return self.instances[int(self.np_random.integers(len(self.instances)))]

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Train the current instance's next decision interval with the quantities ``action`` sets."""
        obs, r, terminated, truncated, info = self.current.step(action)
        return obs, r, terminated, truncated, self.name_info(info)

    def step_quantities(self, quantities: Quantities) -> tuple[np.ndarray, float, bool, bool, dict]:
        """``step`` with the quantities given directly (how non-RL samplers are scored)."""
        obs, r, terminated, truncated, info = self.current.step_quantities(quantities)
        return obs, r, terminated, truncated, self.name_info(info)

    def observation(self) -> DiscrepancyObservation:
        """The current run's discrepancy observation."""
        return self.current.observation()

    def action_to_quantities(self, action: Any) -> dict[str, int]:
        """The quantities an action gives in the current instance."""
        return self.current.action_to_quantities(action)

    def instance_env(self, name: str) -> DUSEnv:
        """The DUSEnv that runs instance ``name`` (built on first use)."""
        return self._env(self.instance_set.get(name))

    @property
    def modalities(self) -> tuple[str, ...]:
        """The current instance's modality names (their number is the family's)."""
        return self.current.modalities

    @property
    def episode_length(self) -> int:
        """Steps of the longest episode among the instances drawn from (builds each instance's environment)."""
        return max(self._env(i).episode_length for i in self.instances)

    # ------------------------------------------------------------------------------------------- internals
    def _env(self, inst: Instance) -> DUSEnv:
        if inst.name not in self._envs:
            config = make_config(self._config, trainer=inst.trainer_config(), **self._overrides)
            env = DUSEnv(config, splits=load_instance_data(config.trainer))
            if self._envs and (
                env.observation_space != self.observation_space or env.action_space != self.action_space
            ):
                raise ConfigError(
                    f"instance {inst.name!r} has {len(env.modalities)} modalities ({', '.join(env.modalities)}): "
                    f"every instance of set {self.instance_set.name!r} needs the spaces of the first "
                    f"({len(self.modalities)} modalities)"
                )
            self._envs[inst.name] = env
        return self._envs[inst.name]

    def name_info(self, info: dict[str, Any]) -> dict[str, Any]:
        """``info`` with the current instance's name and split added."""
        info["instance"] = self.instance.name
        info["split"] = self.instance.split
        return info


def instance_names(instance_set: str | Path | dict[str, Any] | InstanceSet, split: str | None = None) -> list[str]:
    """The instance names of a set (of one split, or all)."""
    return load_instance_set(instance_set).names(split)


__all__: Sequence[str] = [
    "SHARED_FIELDS",
    "DUSFamilyEnv",
    "Instance",
    "InstanceSet",
    "instance_names",
    "list_instance_sets",
    "load_instance_data",
    "load_instance_set",
]
