"""Split helpers shared by the loaders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mml_backbones.errors import ConfigError, DataError


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Indices of each part of a per-class random split with the given fractions (they must sum to 1)."""
    fractions = np.asarray(fractions, dtype=float)
    if (fractions < 0).any() or not np.isclose(fractions.sum(), 1.0):
        raise ConfigError(f"split fractions must be non-negative and sum to 1, got {fractions.tolist()}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    bounds = np.cumsum(fractions)[:-1]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        cuts = np.round(bounds * len(idx)).astype(int)
        for part, chunk in zip(parts, np.split(idx, cuts)):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def group_split(
    groups: np.ndarray | Sequence[object], fraction: float, seed: int = 0, what: str = "groups"
) -> np.ndarray:
    """The held-out groups (sorted) of a group-disjoint split: ``fraction`` of the distinct groups at random.

    ``round(fraction * G)`` of the G distinct groups, at least one and leaving at least one, drawn with ``seed``
    from the sorted distinct groups (actors, paintings, users), so every sample of a group falls on one side.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"the held-out fraction of {what} must be in (0, 1), got {fraction}")
    unique = np.unique(np.asarray(groups))
    if len(unique) < 2:
        raise DataError(f"a split by {what} needs at least 2 {what}, found {unique.tolist()}")
    n_out = min(len(unique) - 1, max(1, round(fraction * len(unique))))
    return np.sort(np.random.default_rng(seed).choice(unique, n_out, replace=False))
