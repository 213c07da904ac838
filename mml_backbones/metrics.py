"""Evaluation metrics: accuracy, macro-F1, mAP, and the linear probe of an encoder's frozen features."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

# scikit-learn is imported where it is used: ProbeConfig is part of TrainerConfig, which the command line reads
# before any run starts (``dus train --help`` must not pay for sklearn)


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Fraction of correct predictions."""
    return float(np.mean(np.asarray(labels) == np.asarray(predictions))) if len(labels) else float("nan")


def macro_f1(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
    """Unweighted mean of the F1 scores of all ``num_classes`` classes (a class never true nor predicted scores 0)."""
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, labels=np.arange(num_classes), average="macro", zero_division=0))


def mean_average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean over classes present in ``labels`` of the one-vs-rest average precision of ``scores``."""
    from sklearn.metrics import average_precision_score

    labels = np.asarray(labels)
    present = np.unique(labels)
    aps = [average_precision_score(labels == c, scores[:, c]) for c in present]
    return float(np.mean(aps)) if aps else float("nan")


@dataclass(frozen=True)
class ProbeConfig:
    """The linear probe: multinomial logistic regression on standardised frozen encoder features.

    Attributes:
        max_train_samples: train samples the probe is fitted on (a fixed random subset when there are more).
        C: inverse L2 regularisation strength.
        max_iter: L-BFGS iterations.
    """

    max_train_samples: int = 10000
    C: float = 1.0
    max_iter: int = 1000


def linear_probe(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    eval_features: dict[str, np.ndarray],
    eval_labels: dict[str, np.ndarray],
    config: ProbeConfig | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Fit a logistic regression on frozen train features; return its accuracy on each evaluation split."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    config = config or ProbeConfig()
    if len(train_features) > config.max_train_samples:
        keep = np.random.default_rng(seed).choice(len(train_features), config.max_train_samples, replace=False)
        train_features, train_labels = train_features[keep], train_labels[keep]
    scaler = StandardScaler().fit(train_features)
    clf = LogisticRegression(C=config.C, max_iter=config.max_iter)
    # one BLAS thread: these problems are small, and a multi-threaded BLAS beside torch's threads ran ~30x slower
    with warnings.catch_warnings(), threadpool_limits(1):
        # a probe that stops at max_iter is still a valid (slightly under-fitted) measurement
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(train_features), train_labels)
    return {
        split: accuracy(eval_labels[split], clf.predict(scaler.transform(feats)))
        for split, feats in eval_features.items()
    }
