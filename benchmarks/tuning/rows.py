"""A row of the tuned table: a method and a sampler, with the knobs it tunes and its paper-default point.

    joint                    joint training, uniform quantities (the reference every row is paired with)
    concat, ogm_ge, mie, mla, remix, valuation, mmpareto     each method, uniform quantities
    joint+heuristic          joint under the equal-budget DUS heuristic (its gamma is a knob)
    concat+heuristic         a fusion-only method under DUS gets the plug-in's unimodal losses (DESIGN.md)
    joint+policy:A.zip       joint under a learned policy
    joint+policy:A.zip|B.zip the policy is a knob: the search picks one of the files on validation

Any sampler kind of the ``dus.samplers`` group works after the ``+`` (options come from its knobs, ``--knob``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.grid import Cell
from benchmarks.tuning.space import SAMPLER_BASE, Knob, SharedSpace
from benchmarks.tuning.worlds import World
from mml_backbones.errors import ConfigError


@dataclass(frozen=True)
class Row:
    """One row: a method, a sampler kind, and what the search varies for it.

    Attributes:
        spec: the row as written (``joint+heuristic``); the study's name.
        method: registered method name.
        sampler: sampler kind (``uniform``, ``heuristic``, ``policy``, ...).
        sampler_arg: what follows ``kind:`` (policy files), if anything.
        knobs: the row's own knobs (method fields and sampler options) for this search space.
    """

    spec: str
    method: str
    sampler: str
    sampler_arg: str | None
    knobs: tuple[Knob, ...]

    @property
    def label(self) -> str:
        """A short name for tables: policy files by their run folder."""
        if self.sampler != "policy" or not self.sampler_arg:
            return self.spec
        names = [policy_name(p) for p in self.sampler_arg.split("|")]
        # no "|" in a label: it would split a Markdown table's cell
        return f"{self.method}+policy:" + (names[0] if len(names) == 1 else "{" + ", ".join(names) + "}")

    @property
    def dus_losses(self) -> bool:
        """The DUS plug-in's unimodal losses: on under any sampler but uniform (as ``dus train``)."""
        return self.sampler != "uniform"

    def method_options(self, params: dict[str, Any]) -> dict[str, Any]:
        """The method Config fields a trial sets."""
        return {k.name: params[k.param] for k in self.knobs if k.scope == self.method and k.param in params}

    def sampler_spec(self, params: dict[str, Any]) -> str:
        """The sampler spec of a trial (base options, then the sampler knobs' values)."""
        if self.sampler == "policy":
            return f"policy:{params.get('policy.path', self.sampler_arg)}"
        options = dict(SAMPLER_BASE.get(self.sampler, {}))
        options.update({k.name: params[k.param] for k in self.knobs if k.scope == self.sampler and k.param in params})
        if not options:
            return self.sampler + (f":{self.sampler_arg}" if self.sampler_arg else "")
        return f"{self.sampler}:" + ",".join(f"{k}={v}" for k, v in options.items())

    def defaults(self) -> dict[str, Any]:
        """The knobs' paper defaults (method Config values, the sampler's base options, the first policy)."""
        from mml_backbones.methods import method_config

        config = method_config(self.method)
        out = {}
        for k in self.knobs:
            if k.choices:
                out[k.param] = k.choices[0]
            elif k.scope == self.method:
                out[k.param] = getattr(config, k.name, None)  # None: no such field (check_knobs says so)
            else:
                out[k.param] = SAMPLER_BASE.get(self.sampler, {}).get(k.name)
        return out

    def paper_params(self, space: SharedSpace) -> dict[str, Any]:
        """Trial 0: the paper's optimiser as a point of the shared space, and every knob at its default."""
        from mml_backbones.methods import METHODS

        paper_optim = dict(METHODS.get(self.method).method_class().paper_optim)
        return {**space.paper_point(paper_optim, self.spec), **self.defaults()}

    def suggest(self, trial: Any, space: SharedSpace) -> dict[str, Any]:
        """Draw a trial's parameters: the shared ones, then the row's knobs."""
        params = space.suggest(trial)
        for k in self.knobs:
            params[k.param] = k.suggest(trial)
        return params

    def cell(self, world: World, params: dict[str, Any], space: SharedSpace, seed: int, group: str) -> Cell:
        """The run of a trial (or of a retrained configuration) with ``params`` on ``seed``."""
        return world.cell(
            group=group,
            method=self.method,
            seed=seed,
            sampler=self.sampler_spec(params),
            method_options=self.method_options(params),
            optim=space.optim(params),
            dus_losses=self.dus_losses,
        )

    def paper_cell(self, world: World, seed: int, group: str) -> Cell:
        """The untuned run: the paper's own optimiser and schedule (``optim`` None), every knob at its default."""
        return world.cell(
            group=group,
            method=self.method,
            seed=seed,
            sampler=self.sampler_spec(self.defaults()),
            method_options={},
            optim=None,
            dus_losses=self.dus_losses,
        )


def policy_name(path: str) -> str:
    """A policy file's short name: its run folder (``.../<run>/best/best_model.zip``) or its stem."""
    p = Path(path)
    # benchmarks/results/policies_v1/<run>/best/best_model.zip -> <run>
    return p.parent.parent.name if p.parent.name == "best" else p.stem


def parse_row(spec: str, space: SharedSpace) -> Row:
    """``METHOD[+SAMPLER]`` -> a Row with its knobs; an unknown method or sampler kind is refused."""
    from mml_backbones.methods import METHODS
    from mml_backbones.samplers import sampler_kinds

    text = spec.strip()
    method, plus, sampler_spec = text.partition("+")
    if not method or (plus and not sampler_spec):
        raise ConfigError(f"row {spec!r}: write METHOD or METHOD+SAMPLER (e.g. joint, joint+heuristic)")
    if method not in METHODS:
        raise ConfigError(f"row {spec!r}: unknown method {method!r}; valid: {', '.join(METHODS.names())}")
    kind, _, arg = (sampler_spec or "uniform").partition(":")
    if "+" in kind:
        raise ConfigError(f"row {spec!r}: one sampler per row (METHOD+SAMPLER)")
    if kind not in sampler_kinds():
        raise ConfigError(f"row {spec!r}: unknown sampler {kind!r}; valid: {', '.join(sampler_kinds())}")
    if kind in SAMPLER_BASE and arg:
        raise ConfigError(f"row {spec!r}: give the {kind} sampler's options as knobs (--knob {kind}.NAME=...)")
    if kind == "policy" and not arg:
        raise ConfigError(f"row {spec!r}: the policy sampler needs a file: {method}+policy:PATH.zip")
    knobs = space.knobs_of((method, kind))
    if kind == "policy" and "|" in arg:
        files = tuple(arg.split("|"))
        knobs += (Knob("policy", "path", choices=files, why="which learned policy, chosen on validation"),)
    return Row(text, method, kind, arg or None, knobs)


def check_knobs(rows: list[Row], space: SharedSpace) -> None:
    """Refuse a knob that names no row, no field, a non-numeric field, or a range outside the valid values."""
    from mml_backbones.methods import method_config
    from mml_backbones.samplers import make_sampler

    scopes = {r.method for r in rows} | {r.sampler for r in rows}
    for param in (*(k.param for k in space.knobs), *space.off):
        scope = param.split(".", 1)[0]
        if scope not in scopes:
            raise ConfigError(f"knob {param}: {scope!r} is neither the method nor the sampler of any row")
    for row in rows:
        defaults = method_config(row.method)
        for k in row.knobs:
            if k.choices:
                continue
            if k.scope == row.method:
                if not hasattr(defaults, k.name):
                    numeric = [f for f, v in vars(defaults).items() if _is_number(v)]
                    raise ConfigError(
                        f"knob {k.param}: {row.method} has no field {k.name!r}; numeric fields: {', '.join(numeric)}"
                    )
                if not _is_number(getattr(defaults, k.name)):
                    raise ConfigError(f"knob {k.param}: {k.name} is not numeric ({getattr(defaults, k.name)!r})")
                for end in (k.low, k.high):
                    try:
                        method_config(row.method, {k.name: int(end) if k.integer else end})
                    except ConfigError as e:
                        raise ConfigError(f"knob {k.param} range {k.describe()} leaves the valid values: {e}") from None
            else:
                for end in (k.low, k.high):
                    try:
                        make_sampler(row.sampler_spec({k.param: end}))
                    except (ConfigError, TypeError) as e:
                        raise ConfigError(f"knob {k.param} range {k.describe()}: {e}") from None
            default = row.defaults()[k.param]
            if default is None or not k.contains(default):
                raise ConfigError(
                    f"knob {k.param}: its default {default!r} lies outside {k.describe()}; the untuned point must be "
                    "inside the search space"
                )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def preflight(world: World, rows: list[Row], space: SharedSpace) -> None:
    """Build every row's untuned run and its samplers on the world's data once, so that a row that cannot run
    (a policy for another number of modalities, a method the model does not fit) is refused before any trial."""
    from benchmarks.grid import build_cell, cell_config
    from mml_backbones.data.registry import load_dataset
    from mml_backbones.samplers import make_sampler

    check_knobs(rows, space)
    base = cell_config(rows[0].paper_cell(world, 0, "preflight"))
    splits = load_dataset(base.dataset, **base.dataset_options)
    for row in rows:
        row.paper_params(space)  # the paper optimiser must be a point of the space
        trainer, _ = build_cell(row.paper_cell(world, 0, "preflight"), splits=splits)
        for k in row.knobs:
            for choice in k.choices:
                make_sampler(row.sampler_spec({k.param: choice}), modalities=trainer.modalities)
