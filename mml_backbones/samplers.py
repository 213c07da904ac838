"""The Sampler protocol, the uniform sampler, and resolving sampler specs such as ``"policy:run/ppo.zip"``.

A sampler is any callable ``quantities = sampler(observation)`` that maps a DiscrepancyObservation to the
number of samples each modality gets in the next iterations. Two optional members: ``decision_interval`` (the
interval a learned sampler was trained with, which ``dus train`` then uses) and ``check_modalities(modalities)``
(raise when the sampler cannot run with these modalities; ``check_modalities`` below calls it).

The heuristic and learned samplers live in the ``agents`` package and are found through the ``dus.samplers``
entry-point group, so this package never imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, runtime_checkable

from mml_backbones.config import parse_options
from mml_backbones.errors import ConfigError
from mml_backbones.observation import DiscrepancyObservation
from mml_backbones.quantities import Quantities


@runtime_checkable
class Sampler(Protocol):
    """Anything that maps the discrepancy observation to per-modality quantities."""

    def __call__(self, observation: DiscrepancyObservation) -> Quantities: ...


class UniformSampler:
    """Every modality gets the nominal batch size B (or ``batch_size`` when given): the control."""

    def __init__(self, batch_size: int | None = None) -> None:
        self.batch_size = batch_size

    def __call__(self, observation: DiscrepancyObservation) -> dict[str, int]:
        n = self.batch_size or observation.nominal_batch_size
        return dict.fromkeys(observation.modalities, n)

    @classmethod
    def from_spec(cls, arg: str | None = None, **context: Any) -> UniformSampler:
        """``uniform`` or ``uniform:N``."""
        return cls(int(arg) if arg else None)

    def __repr__(self) -> str:
        return f"UniformSampler(batch_size={self.batch_size})"


class ConstantSampler:
    """The same quantities at every decision (the headroom gate's constant shares, as a sampler)."""

    def __init__(self, quantities: Mapping[str, int]) -> None:
        self.quantities = dict(quantities)

    def __call__(self, observation: DiscrepancyObservation) -> dict[str, int]:
        return dict(self.quantities)

    @classmethod
    def from_spec(cls, arg: str | None = None, **context: Any) -> ConstantSampler:
        """``constant:strong=24,weak=104``."""
        if not arg:
            raise ConfigError("the constant sampler needs quantities: constant:MODALITY=N,...")
        return cls({k: int(v) for k, v in parse_options(arg.split(",")).items()})

    def __repr__(self) -> str:
        return f"ConstantSampler({self.quantities})"


def check_modalities(sampler: Sampler, modalities: Sequence[str]) -> None:
    """Let ``sampler`` refuse a run's modalities before any training (samplers without the check accept any)."""
    check = getattr(sampler, "check_modalities", None)
    if callable(check):
        check(tuple(modalities))


def _plugins() -> dict[str, Callable[..., Sampler] | EntryPoint]:
    found: dict[str, Callable[..., Sampler] | EntryPoint] = {
        "uniform": UniformSampler.from_spec,
        "constant": ConstantSampler.from_spec,
    }
    for ep in entry_points(group="dus.samplers"):
        found.setdefault(ep.name, ep)
    return found


def sampler_kinds() -> list[str]:
    """The sampler kinds ``make_sampler`` resolves (built-in and from the ``dus.samplers`` group), sorted."""
    return sorted(_plugins())


def make_sampler(spec: str | Sampler, **context: Any) -> Sampler:
    """Resolve ``"kind"`` or ``"kind:argument"`` (e.g. ``"policy:ppo.zip"``) to a sampler.

    ``context`` (modalities, batch_size, trust_file, ...) is passed to the plug-in's ``from_spec``; a sampler that
    loads a file reads ``trust_file`` (the ``--trust-file`` escape hatch, off by default).
    """
    if not isinstance(spec, str):
        if not callable(spec):
            raise ConfigError(f"a sampler must be callable, got {type(spec).__name__}")
        return spec
    import difflib  # here, so that this fix stays inside make_sampler

    kind, _, arg = spec.partition(":")
    plugins = _plugins()
    if kind not in plugins:
        close = difflib.get_close_matches(kind, list(plugins), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"unknown sampler {kind!r}; {hint}available: {sorted(plugins)} "
            "(heuristic and policy samplers need the package installed, e.g. pip install -e .)"
        )
    factory = plugins[kind]
    if isinstance(factory, EntryPoint):
        factory = factory.load()
    return factory(arg or None, **context)
