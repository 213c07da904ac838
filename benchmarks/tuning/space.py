"""The search space of ``dus tune``: one space shared by every row, plus each row's own documented knobs.

Shared by every row (the external-tuning rule: the same space and the same number of trials for all):

    optimizer      categorical  SGD (momentum 0.9) or AdamW
    lr             log-uniform  [1e-5, 1e-1]   (wide enough for both families; every paper default lies inside)
    weight_decay   log-uniform  [1e-6, 1e-1]   (L2 for SGD, decoupled for AdamW)

No learning-rate schedule: the papers' step schedules (x0.1 after 30 or 70 epochs) never fire within the 12-epoch
v1 worlds, and the world fixes the epoch budget. Each row adds the knobs of its method (``METHOD_KNOBS``) and of its
sampler (``SAMPLER_KNOBS``); their defaults are the paper's, read from the method's Config dataclass (or the
sampler's base spec), never restated here. Optuna names a knob ``SCOPE.NAME`` (``ogm_ge.alpha``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from mml_backbones.errors import ConfigError
from mml_backbones.optim import OPTIMIZERS

#: the paper optimiser's family as the shared space names it: Adam (L2) is counted as AdamW, its decoupled form
FAMILY = {"sgd": "sgd", "adam": "adamw", "adamw": "adamw"}


@dataclass(frozen=True)
class Knob:
    """One hyper-parameter of a row's own, tuned inside the row's trial budget.

    Attributes:
        scope: the method (a field of its Config) or the sampler kind (an option of its spec) it belongs to.
        name: the Config field or sampler option.
        low: lower end of a numeric range.
        high: upper end of a numeric range.
        log: sample log-uniformly.
        integer: integer-valued.
        choices: the values of a categorical knob (low and high unused).
        why: what it does and where its range comes from, for the docs and ``--dry-run``.
    """

    scope: str
    name: str
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] = ()
    why: str = ""

    def __post_init__(self) -> None:
        if self.choices:
            return
        if not self.low < self.high:
            raise ConfigError(f"knob {self.param}: the range needs LOW < HIGH, got {self.low}:{self.high}")
        if self.log and self.low <= 0:
            raise ConfigError(f"knob {self.param}: a log range needs LOW > 0, got {self.low}")
        if self.integer and (self.low != int(self.low) or self.high != int(self.high)):
            raise ConfigError(f"knob {self.param}: an integer range needs integer ends, got {self.low}:{self.high}")

    @property
    def param(self) -> str:
        """Its Optuna parameter name."""
        return f"{self.scope}.{self.name}"

    def contains(self, value: Any) -> bool:
        """Whether ``value`` lies in the knob's range (or choices)."""
        if self.choices:
            return value in self.choices
        return self.low <= value <= self.high

    def suggest(self, trial: Any) -> Any:
        """Draw the knob's value for an Optuna trial."""
        if self.choices:
            return trial.suggest_categorical(self.param, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.param, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.param, self.low, self.high, log=self.log)

    def describe(self) -> str:
        """``[low, high] (log)`` or ``{a, b}``."""
        if self.choices:
            return "{" + ", ".join(map(str, self.choices)) + "}"
        kind = ", ".join(k for k, on in (("log", self.log), ("int", self.integer)) if on)
        return f"[{self.low:g}, {self.high:g}]" + (f" ({kind})" if kind else "")

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description (stored with the study, so a resumed study checks it runs the same space)."""
        if self.choices:
            return {"param": self.param, "choices": list(self.choices)}
        return {"param": self.param, "low": self.low, "high": self.high, "log": self.log, "int": self.integer}


#: each method's own hyper-parameters; the default of each is the method Config's (its paper's) value
METHOD_KNOBS: dict[str, tuple[Knob, ...]] = {
    "joint": (),  # the baseline: the shared space only (unimodal_weight 1 is what makes it joint, 0 is concat)
    "concat": (),
    "ogm_ge": (
        Knob("ogm_ge", "alpha", 0.05, 2.0, log=True, why="modulation strength; the paper uses 0.1 to 0.8 by dataset"),
    ),
    "mie": (
        Knob("mie", "rho", 0.005, 0.5, log=True, why="SAM radius; Foret et al.'s default 0.05 in the middle"),
        Knob("mie", "beta", 0.0, 0.9, why="weight of the perturbed (flat) loss; released 0.3, 1 would drop L_ori"),
    ),
    "mla": (
        Knob(
            "mla", "alpha_decay", 0.01, 1.0, log=True, why="projection update alpha's decay; released 0.1, valid (0, 1]"
        ),
    ),
    "remix": (
        Knob(
            "remix", "warmup_epochs", 0, 12, integer=True, why="epochs of joint warm-up before remixing (released 10)"
        ),
        Knob("remix", "unimodal_weight", 0.1, 4.0, log=True, why="gamma, the assigned samples' head-loss weight (1)"),
    ),
    "valuation": (
        Knob("valuation", "warmup_epochs", 0, 12, integer=True, why="epochs before re-sampling starts (released 5)"),
    ),
    "mmpareto": (
        Knob("mmpareto", "magnitude_scale", 0.5, 3.0, log=True, why="factor on the integrated gradient (released 1.5)"),
    ),
}

#: each sampler kind's base options (the default configuration its row starts from) and knobs
SAMPLER_BASE: dict[str, dict[str, Any]] = {
    # the v1 rows' heuristic (RESULTS.md 0.4): the equal budget of DESIGN.md, gamma 2
    "heuristic": {"gamma": 2.0, "budget": "equal"},
}
SAMPLER_KNOBS: dict[str, tuple[Knob, ...]] = {
    "heuristic": (
        Knob("heuristic", "gamma", 0.25, 8.0, log=True, why="rebalancing strength, n_m ~ r_m ** -gamma (v1: 2)"),
    ),
}


@dataclass(frozen=True)
class SharedSpace:
    """The part of the search space every row shares.

    Attributes:
        optimizers: optimiser families to choose from ("sgd" runs with ``momentum``).
        lr: learning-rate range, sampled log-uniformly.
        weight_decay: weight-decay range, sampled log-uniformly.
        momentum: SGD momentum (fixed).
        knobs: knob overrides and additions from the command line (``--knob``), applied over the defaults.
        off: knobs switched off (``--knob SCOPE.NAME=off``): left at their defaults.
    """

    optimizers: tuple[str, ...] = ("sgd", "adamw")
    lr: tuple[float, float] = (1e-5, 1e-1)
    weight_decay: tuple[float, float] = (1e-6, 1e-1)
    momentum: float = 0.9
    knobs: tuple[Knob, ...] = field(default_factory=tuple)
    off: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.optimizers:
            raise ConfigError("the search space needs at least one optimiser family (--optimizers sgd,adamw)")
        for name in self.optimizers:
            OPTIMIZERS.get(name)
            if name not in ("sgd", "adamw"):
                raise ConfigError(f"optimiser family {name!r} is not in the shared space; valid: sgd, adamw")
        for label, (low, high) in (("lr", self.lr), ("weight-decay", self.weight_decay)):
            if not 0 < low < high:
                raise ConfigError(f"--{label} needs 0 < LOW < HIGH (a log-uniform range), got {low:g}:{high:g}")

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Draw the shared parameters for an Optuna trial."""
        return {
            "optimizer": trial.suggest_categorical("optimizer", list(self.optimizers)),
            "lr": trial.suggest_float("lr", *self.lr, log=True),
            "weight_decay": trial.suggest_float("weight_decay", *self.weight_decay, log=True),
        }

    def optim(self, params: dict[str, Any]) -> dict[str, Any]:
        """The OptimConfig fields of a trial's shared parameters."""
        return {
            "name": params["optimizer"],
            "lr": params["lr"],
            "weight_decay": params["weight_decay"],
            "momentum": self.momentum,
        }

    def paper_point(self, paper_optim: dict[str, Any], row: str) -> dict[str, Any]:
        """A paper optimiser as a point of the space (trial 0); refused when the space does not hold it."""
        family = FAMILY.get(paper_optim["name"])
        point = {"optimizer": family, "lr": paper_optim["lr"], "weight_decay": paper_optim.get("weight_decay", 0.0)}
        where = "the untuned point must be inside the search space"
        if family not in self.optimizers:
            raise ConfigError(
                f"row {row}: its paper optimiser {paper_optim['name']} is not in --optimizers "
                f"{','.join(self.optimizers)}; {where}"
            )
        for key, (low, high) in (("lr", self.lr), ("weight_decay", self.weight_decay)):
            if not low <= point[key] <= high:
                flag = key.replace("_", "-")
                raise ConfigError(
                    f"row {row}: its paper {key} {point[key]:g} lies outside --{flag} {low:g}:{high:g}; {where}"
                )
        return point

    def knobs_of(self, scopes: tuple[str, ...]) -> tuple[Knob, ...]:
        """The knobs of the given scopes (a row's method and sampler kind): defaults, then overrides, minus off."""
        out: dict[str, Knob] = {}
        for scope in scopes:
            for k in (*METHOD_KNOBS.get(scope, ()), *SAMPLER_KNOBS.get(scope, ())):
                out[k.param] = k
        for k in self.knobs:
            if k.scope in scopes:
                out[k.param] = k
        return tuple(k for p, k in out.items() if p not in self.off)

    def as_dict(self) -> dict[str, Any]:
        """The shared part as stored with each study."""
        return {
            "optimizers": list(self.optimizers),
            "lr": list(self.lr),
            "weight_decay": list(self.weight_decay),
            "momentum": self.momentum,
        }


def parse_range(text: str, flag: str) -> tuple[float, float]:
    """``"LOW:HIGH"`` -> (low, high)."""
    low, sep, high = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(low), float(high)
    except ValueError:
        raise ConfigError(f"{flag} needs LOW:HIGH with two numbers (e.g. 1e-5:1e-1), got {text!r}") from None


def parse_knob(text: str) -> Knob | str:
    """``SCOPE.NAME=LOW:HIGH[:log][:int]`` -> a Knob; ``SCOPE.NAME=off`` -> the parameter name to switch off."""
    key, sep, value = text.partition("=")
    scope, dot, name = key.partition(".")
    if not sep or not dot or not scope or not name:
        raise ConfigError(f"--knob needs SCOPE.NAME=LOW:HIGH[:log][:int] or SCOPE.NAME=off, got {text!r}")
    if value.strip() == "off":
        return f"{scope}.{name}"
    parts = value.split(":")
    flags = set(parts[2:])
    if flags - {"log", "int"}:
        raise ConfigError(f"--knob {key}: unknown flag(s) {sorted(flags - {'log', 'int'})}; valid: log, int")
    low, high = parse_range(":".join(parts[:2]), f"--knob {key}")
    if "int" in flags and not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"--knob {key}: an integer range needs finite ends")
    return Knob(scope, name, low, high, log="log" in flags, integer="int" in flags, why="set on the command line")


def space_with(base: SharedSpace, knob_args: list[str] | None) -> SharedSpace:
    """``base`` with the ``--knob`` arguments applied."""
    knobs, off = list(base.knobs), list(base.off)
    for text in knob_args or []:
        parsed = parse_knob(text)
        if isinstance(parsed, str):
            off.append(parsed)
        else:
            knobs.append(parsed)
    return replace(base, knobs=tuple(knobs), off=tuple(off))
