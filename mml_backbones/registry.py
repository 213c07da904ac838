"""Name -> object registries: datasets, encoders, fusions, methods, optimisers, schedules, rewards, algorithms.

Samplers are the exception on purpose: they live in the higher ``agents`` layer, so ``make_sampler`` finds them
through the ``dus.samplers`` entry-point group (a plug-in from any installed package), never by import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from mml_backbones.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection; an unknown name fails fast and lists the valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; without ``obj`` it returns a decorator."""

        def add(item: T) -> T:
            if name in self._items:
                raise ConfigError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        """Return the entry called ``name`` or raise ConfigError listing the valid names."""
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items)) or "(none registered)"
            raise ConfigError(f"unknown {self.kind} {name!r}; valid: {valid}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
