"""Per-modality quantities n_m: their bounds, their one validation, and budget allocation.

A quantity is how many of the iteration's drawn samples modality m's branch gets (DESIGN.md: nested prefixes).
The path from a decision to the batch is one line:

    sampler(observation) or action -> validate_quantities (once) -> Trainer.run_decision -> nested prefixes

Bounds are relative to the nominal batch size B (``QuantityBounds``), so a sampler or policy made for one B
runs unchanged with another. The same bounds object serves the heuristic, the action mapping and the policy
metadata.

Equal budget (the v1 default): ``allocate`` splits a fixed total ``M * B`` across the modalities in
proportion to weights, keeping every modality at or above the floor ``low * B`` and summing exactly to the total.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mml_backbones.errors import ConfigError

Quantities = Mapping[str, int] | Sequence[int] | np.ndarray


@dataclass(frozen=True)
class QuantityBounds:
    """The range of n_m, as multiples of the nominal batch size B.

    Attributes:
        low: floor of n_m / B that samplers and actions keep (0.25: 16 of 64).
        high: ceiling of n_m / B; the Trainer refuses larger quantities (4: 256 of 64).
    """

    low: float = 0.25
    high: float = 4.0

    def __post_init__(self) -> None:
        if not 0 < self.low <= 1 <= self.high:
            raise ConfigError(f"quantity bounds need 0 < low <= 1 <= high, got low={self.low}, high={self.high}")

    def at(self, batch_size: int) -> tuple[int, int]:
        """(n_min, n_max) in samples for nominal batch size ``batch_size``."""
        return max(1, round(self.low * batch_size)), max(1, round(self.high * batch_size))


def validate_quantities(
    quantities: Quantities, modalities: Sequence[str], max_quantity: int | None = None
) -> dict[str, int]:
    """Check quantities (a mapping, or a sequence in modality order) and return them as a dict of ints."""
    if isinstance(quantities, Mapping):
        unknown = [m for m in quantities if m not in modalities]
        if unknown:
            raise ConfigError(f"quantities name unknown modality {unknown}; modalities are {list(modalities)}")
        missing = [m for m in modalities if m not in quantities]
        if missing:
            raise ConfigError(f"quantities miss modality {missing}")
        values = [quantities[m] for m in modalities]
    else:
        values = list(np.asarray(quantities).reshape(-1)) if not isinstance(quantities, list) else quantities
        if len(values) != len(modalities):
            raise ConfigError(f"expected {len(modalities)} quantities (for {list(modalities)}), got {len(values)}")
    out = {}
    for m, v in zip(modalities, values):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"quantity for {m!r} is not a number: {v!r}") from None
        if not math.isfinite(f):
            raise ConfigError(f"quantity for {m!r} is {f}; quantities must be finite")
        if f != round(f):
            raise ConfigError(f"quantity for {m!r} must be an integer number of samples, got {f}")
        n = round(f)
        if n < 1:
            raise ConfigError(f"quantity for {m!r} must be >= 1, got {n}")
        if max_quantity is not None and n > max_quantity:
            raise ConfigError(f"quantity for {m!r} is {n}, above the maximum {max_quantity} (QuantityBounds.high x B)")
        out[m] = n
    return out


def allocate(weights: np.ndarray, total: int, floor: int) -> np.ndarray:
    """Integers >= ``floor`` summing to ``total``, proportional to ``weights`` where the floor does not bind.

    Entries whose proportional share falls below the floor are set to it and the rest is shared again among
    the others; rounding keeps the sum exact (largest remainders first).
    """
    w = np.asarray(weights, dtype=float)
    m = len(w)
    if m * floor > total:
        raise ConfigError(f"floor {floor} x {m} modalities exceeds the budget {total}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ConfigError(f"allocation weights must be finite and >= 0, got {w.tolist()}")
    if w.sum() <= 0:
        w = np.ones(m)
    fixed = np.zeros(m, dtype=bool)
    share = np.zeros(m)
    for _ in range(m):
        free = ~fixed
        rest = total - floor * fixed.sum()
        share[free] = rest * w[free] / max(w[free].sum(), 1e-300)
        low = free & (share < floor)
        if not low.any():
            break
        fixed |= low
        share[fixed] = floor
    n = np.floor(share).astype(int)
    n[fixed] = floor
    order = np.argsort(-(share - np.floor(share)) + fixed * 2.0, kind="stable")  # fixed entries last
    short = total - int(n.sum())
    while short > 0:
        k = min(short, m)
        n[order[:k]] += 1
        short -= k
    return n
