"""What ``dus tune`` tunes on: a world is the training run of a v1 environment, or a user's JSON file of
TrainerConfig fields, minus what the tuner chooses (method, its options, optimiser, seed).

    mild | strong | three_modal | hapt      the short names of benchmarks.v1_downstream (dus_env/DUS-v1, ...)
    dus_env/DUS-Tiny-v1 (any ENV_IDS id)    that environment's training run: data, model, epochs, batch size,
                                            decision interval, bounds, statistic
    my_world.json                           {"dataset": "npz", "dataset_options": {"path": "my.npz"}, "epochs": 20}

The epoch budget is the world's: every trial and every retrained run has the same number of epochs. A v1 world keeps
its model (DUS-HAPT-v1's MLP encoders); benchmarks.v1_downstream keeps only the schedule fields, so its HAPT rows
ran the loader's default encoders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.grid import Cell
from mml_backbones.errors import ConfigError

#: TrainerConfig fields the tuner sets itself (a world file must leave them out)
TUNER_FIELDS = ("method", "method_options", "optim", "seed", "dus_losses")
#: fields that do not define the run (threads and device are the worker's)
RUNTIME_FIELDS = ("device", "num_threads")


@dataclass(frozen=True)
class World:
    """A training run without its method, optimiser and seed.

    Attributes:
        name: how it was named (short name, environment id or file name).
        fields: its TrainerConfig fields that differ from the defaults (JSON-ready; ``dataset`` always there).
    """

    name: str
    fields: dict[str, Any]

    @property
    def slug(self) -> str:
        """A file-name-safe name (for the default output folder)."""
        return self.name.replace("dus_env/", "").replace("/", "_").removesuffix(".json")

    @property
    def epochs(self) -> int:
        """The epoch budget of every run."""
        return int(self.fields.get("epochs", _defaults()["epochs"]))

    def cell(
        self,
        group: str,
        method: str,
        seed: int,
        sampler: str,
        method_options: dict[str, Any],
        optim: dict[str, Any] | None,
        dus_losses: bool,
    ) -> Cell:
        """One run of this world (``optim`` None: the method's paper optimiser)."""
        f = dict(self.fields)
        trainer = {k: v for k, v in f.items() if k not in ("dataset", "dataset_options", "epochs", "modalities")}
        modalities = f.get("modalities")
        return Cell(
            group=group,
            dataset=f["dataset"],
            dataset_options=dict(f.get("dataset_options", {})),
            method=method,
            method_options=dict(method_options),
            modalities=tuple(modalities) if modalities else None,
            seed=seed,
            epochs=self.epochs,
            sampler=sampler,
            trainer={**trainer, "optim": optim, "dus_losses": dus_losses},
        )


def _defaults() -> dict[str, Any]:
    from mml_backbones.config import to_dict
    from mml_backbones.trainer_config import TrainerConfig

    return to_dict(TrainerConfig())


def _world_of(name: str, trainer: dict[str, Any]) -> World:
    defaults = _defaults()
    fields = {
        k: v
        for k, v in trainer.items()
        if k not in TUNER_FIELDS + RUNTIME_FIELDS and (k == "dataset" or v != defaults.get(k))
    }
    return World(name, fields)


def resolve_world(text: str) -> World:
    """The world a command line names: a short name, an environment id, or a JSON file of TrainerConfig fields."""
    import dus_env
    from benchmarks.v1_downstream import WORLDS
    from mml_backbones.config import to_dict
    from mml_backbones.trainer_config import TrainerConfig

    env_id = WORLDS.get(text, text)
    if env_id in dus_env.ENV_IDS:
        trainer = to_dict(dus_env.make_config(**dus_env.ENV_IDS[env_id]).trainer)
        return _world_of(text, trainer)
    path = Path(text)
    if path.suffix == ".json" and path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"world file {path}: not valid JSON ({e})") from None
        if not isinstance(data, dict) or "dataset" not in data:
            raise ConfigError(f"world file {path}: needs a JSON object of TrainerConfig fields with a 'dataset'")
        chosen = sorted(set(data) & set(TUNER_FIELDS))
        if chosen:
            raise ConfigError(f"world file {path} sets {chosen}: the tuner chooses these; remove them")
        config = TrainerConfig.from_dict(data)  # unknown fields and bad values are refused here
        return _world_of(path.name, to_dict(config))
    raise ConfigError(
        f"unknown world {text!r}; give a short name ({', '.join(WORLDS)}), an environment id "
        f"({', '.join(i for i in dus_env.ENV_IDS if i.endswith('-v1'))}) or a JSON file of TrainerConfig fields"
    )
