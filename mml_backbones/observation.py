"""The cumulative modality discrepancy as samplers and the environment see it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mml_backbones.errors import ConfigError

#: name -> (values per modality?, lower bound, upper bound per entry given M modalities)
FEATURES: dict[str, tuple[bool, float, str]] = {
    "cumulative": (True, 0.0, "1"),  # S_t(m)
    "ratio": (True, 0.0, "M"),  # S_t(m) / mean_k S_t(k), at most M
    "last": (True, 0.0, "1"),  # s_t(m) of the last iteration
    "share": (True, 0.0, "1"),  # share of all samples consumed so far that went to modality m
    "progress": (False, 0.0, "1"),  # iterations done / iterations in the schedule
}
DEFAULT_FEATURES = ("cumulative", "ratio", "progress")


def check_features(features: Sequence[str]) -> tuple[str, ...]:
    """Validate observation feature names and return them as a tuple."""
    features = tuple(features)
    if not features:
        raise ConfigError("observation features must not be empty")
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise ConfigError(f"unknown observation feature(s) {unknown}; valid: {list(FEATURES)}")
    if len(set(features)) != len(features):
        raise ConfigError(f"duplicate observation features in {list(features)}")
    return features


def feature_bounds(features: Sequence[str], num_modalities: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of ``DiscrepancyObservation.vector(features)``."""
    low, high = [], []
    for f in check_features(features):
        per_modality, lo, hi = FEATURES[f]
        n = num_modalities if per_modality else 1
        low += [lo] * n
        high += [float(num_modalities) if hi == "M" else 1.0] * n
    return np.asarray(low, np.float32), np.asarray(high, np.float32)


@dataclass(frozen=True)
class DiscrepancyObservation:
    """The state a sampler decides from, at one decision point.

    Attributes:
        modalities: modality names, the order of every per-modality array.
        cumulative: S_t(m).
        last: s_t(m) of the latest iteration.
        samples: samples consumed per modality so far.
        progress: fraction of the training schedule done, in [0, 1].
        iteration: iterations done.
        nominal_batch_size: B.
    """

    modalities: tuple[str, ...]
    cumulative: np.ndarray
    last: np.ndarray
    samples: np.ndarray
    progress: float
    iteration: int
    nominal_batch_size: int

    @property
    def ratio(self) -> np.ndarray:
        """S_t(m) / mean_k S_t(k) (ones before the first iteration)."""
        mean = float(np.mean(self.cumulative))
        return self.cumulative / mean if mean > 0 else np.ones(len(self.modalities))

    @property
    def share(self) -> np.ndarray:
        """Fraction of the samples consumed so far that went to each modality."""
        total = float(np.sum(self.samples))
        return self.samples / total if total > 0 else np.full(len(self.modalities), 1 / len(self.modalities))

    def vector(self, features: Sequence[str] = DEFAULT_FEATURES) -> np.ndarray:
        """The observation as a float32 vector, features concatenated in the given order and clipped to bounds."""
        parts = []
        for f in check_features(features):
            value = self.progress if f == "progress" else getattr(self, f)
            parts.append(np.atleast_1d(np.asarray(value, dtype=np.float64)))
        low, high = feature_bounds(features, len(self.modalities))
        return np.clip(np.concatenate(parts), low, high).astype(np.float32)
