"""The cumulative modality discrepancy, and how learning is going, as samplers and the environment see it.

Features of the observation vector (``DiscrepancyObservation.vector``), M entries each unless said:

    cumulative  S_t(m), the running score                                                    [0, 1]
    ratio       S_t(m) / mean_k S_t(k)                                                       [0, M]
    last        s_t(m) of the latest iteration                                               [0, 1]
    share       share of all samples consumed so far that went to modality m                 [0, 1]
    speed       tanh(SPEED_SCALE x the change of s_t(m) per iteration between the last two
                decision intervals' means): > 0 while a modality still learns                [-1, 1]
    loss        mean unimodal training cross-entropy (nats) over the last decision interval,
                clipped to LOSS_MAX                                                          [0, LOSS_MAX]
    allocation  the quantities in force as shares n_m / sum_k n_k (1/M before the first)     [0, 1]
    progress    iterations done / iterations in the schedule (1 entry)                       [0, 1]

The validation context, read at the latest epoch end (``mml_backbones.selection.EpochSelection``: the same
validation pass that picks the epoch ``fit`` keeps, so it costs nothing extra there); 0 until an epoch has ended:

    val_acc     each head's validation accuracy                                              [0, 1]
    val_gap     each head's training score (mean s_t over the last complete decision interval)
                minus its mean true-class probability on validation: > 0 when it over-fits  [-1, 1]
    val_score   the run's validation score by its selection metric (1 entry)                 [0, 1]
    val_drop    the best validation score so far minus the latest (1 entry): > 0 once the
                run has passed its best epoch, the over-fitting that ``fit`` selects away    [0, 1]

speed and loss are 0 until the intervals they need are complete (see ``mml_backbones.statistics``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mml_backbones.errors import ConfigError

#: speed's unit: a change of s_t of 1/SPEED_SCALE per iteration gives tanh(1) (about 0.76); s_t rising by 0.05
#: over a 47-iteration interval (early learning of a strong modality) reads 0.79, by 0.005 (a slow weak one) 0.11
SPEED_SCALE = 1000.0
#: the loss feature's ceiling in nats (chance level with C classes is log C, 2.1 for 8 classes, 4.6 for 100)
LOSS_MAX = 5.0

#: name -> (values per modality?, lower bound, upper bound per entry: a number, or "M" for the modality count)
FEATURES: dict[str, tuple[bool, float, float | str]] = {
    "cumulative": (True, 0.0, 1.0),  # S_t(m)
    "ratio": (True, 0.0, "M"),  # S_t(m) / mean_k S_t(k), at most M
    "last": (True, 0.0, 1.0),  # s_t(m) of the last iteration
    "share": (True, 0.0, 1.0),  # share of all samples consumed so far that went to modality m
    "speed": (True, -1.0, 1.0),  # tanh(SPEED_SCALE * change of s_t per iteration)
    "loss": (True, 0.0, LOSS_MAX),  # mean unimodal training cross-entropy over the last interval
    "allocation": (True, 0.0, 1.0),  # quantities in force as shares
    "progress": (False, 0.0, 1.0),  # iterations done / iterations in the schedule
    "val_acc": (True, 0.0, 1.0),  # each head's validation accuracy at the latest epoch end
    "val_gap": (True, -1.0, 1.0),  # training score minus validation true-class probability, per head
    "val_score": (False, 0.0, 1.0),  # validation score (selection metric) at the latest epoch end
    "val_drop": (False, 0.0, 1.0),  # best validation score so far minus the latest
}
#: the v0 observation (the committed v0 policies were trained on it)
DEFAULT_FEATURES = ("cumulative", "ratio", "progress")
#: the v1 observation: the discrepancy plus how learning is going (DESIGN.md, "RL sampler")
LEARNING_FEATURES = ("cumulative", "ratio", "speed", "loss", "allocation", "progress")
#: the validation context (read at epoch ends), for runs whose best allocation depends on the run
VALIDATION_FEATURES = ("val_acc", "val_gap", "val_score", "val_drop")
#: the instance families' observation (DUS-Family-v1): how learning is going plus the validation context
CONTEXT_FEATURES = (*LEARNING_FEATURES, *VALIDATION_FEATURES)


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
        high += [float(num_modalities) if hi == "M" else float(hi)] * n
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
        speed: change of s_t(m) per iteration between the last two decision intervals (None: zeros).
        loss: mean unimodal training cross-entropy over the last decision interval (None: zeros).
        allocation: the quantities in force as shares n_m / sum_k n_k (None: 1/M each).
        validation: the validation context at the latest epoch end (None: none yet, the features read 0).
    """

    modalities: tuple[str, ...]
    cumulative: np.ndarray
    last: np.ndarray
    samples: np.ndarray
    progress: float
    iteration: int
    nominal_batch_size: int
    speed: np.ndarray | None = None
    loss: np.ndarray | None = None
    allocation: np.ndarray | None = None
    validation: ValidationContext | None = None

    def __post_init__(self) -> None:
        # observations built by hand (tests, other loops) without the learning features get neutral values
        m = len(self.modalities)
        for name, default in (("speed", 0.0), ("loss", 0.0), ("allocation", 1.0 / m)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.full(m, default))

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
            if f in VALIDATION_FEATURES:
                value = self._validation_feature(f)
            else:
                value = self.progress if f == "progress" else getattr(self, f)
            if f == "speed":  # squashed: raw speeds are tiny and would barely move the policy's inputs
                value = np.tanh(SPEED_SCALE * np.asarray(value, dtype=np.float64))
            parts.append(np.atleast_1d(np.asarray(value, dtype=np.float64)))
        low, high = feature_bounds(features, len(self.modalities))
        return np.clip(np.concatenate(parts), low, high).astype(np.float32)

    def _validation_feature(self, name: str) -> np.ndarray | float:
        v = self.validation
        if v is None:
            return np.zeros(len(self.modalities)) if FEATURES[name][0] else 0.0
        if name == "val_acc":
            return v.head_accuracy
        if name == "val_gap":
            return v.head_train_score - v.head_val_score
        return v.score if name == "val_score" else v.best_score - v.score


@dataclass(frozen=True)
class ValidationContext:
    """What the latest epoch-end validation of a run says, as the validation features read it.

    Attributes:
        epoch: the epoch that just ended.
        head_accuracy: each unimodal head's validation accuracy.
        head_val_score: each head's mean validation probability of the true class.
        head_train_score: each head's mean training s_t over the last complete decision interval.
        score: the run's validation score by its selection metric.
        best_score: the best such score so far (the epoch ``fit`` keeps).
    """

    epoch: int
    head_accuracy: np.ndarray
    head_val_score: np.ndarray
    head_train_score: np.ndarray
    score: float
    best_score: float

    def state_dict(self) -> dict[str, Any]:
        """The context as plain numbers and lists (what a checkpoint holds)."""
        return {
            "epoch": int(self.epoch),
            "head_accuracy": np.asarray(self.head_accuracy, dtype=float).tolist(),
            "head_val_score": np.asarray(self.head_val_score, dtype=float).tolist(),
            "head_train_score": np.asarray(self.head_train_score, dtype=float).tolist(),
            "score": float(self.score),
            "best_score": float(self.best_score),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ValidationContext:
        """The context ``state_dict()`` describes."""
        heads = ("head_accuracy", "head_val_score", "head_train_score")
        return cls(
            epoch=int(state["epoch"]),
            **{h: np.asarray(state[h], dtype=float) for h in heads},
            score=float(state["score"]),
            best_score=float(state["best_score"]),
        )
