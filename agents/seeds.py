"""Seed ranges that keep training, selection, evaluation and downstream reporting apart.

The ranges live in ``dus_env.seeds`` (one place for the whole project); this module re-exports them for the code
that imports ``agents.seeds``.
"""

from dus_env.seeds import (
    DOWNSTREAM_SEED_BASE,
    EVAL_SEED_BASE,
    SEED_RANGES,
    SELECTION_SEED_BASE,
    TRAIN_SEED_RANGE,
    downstream_seeds,
    eval_seeds,
    gate_seeds,
    parse_seed_span,
    purpose_of,
    selection_seeds,
)

__all__ = [
    "DOWNSTREAM_SEED_BASE",
    "EVAL_SEED_BASE",
    "SEED_RANGES",
    "SELECTION_SEED_BASE",
    "TRAIN_SEED_RANGE",
    "downstream_seeds",
    "eval_seeds",
    "gate_seeds",
    "parse_seed_span",
    "purpose_of",
    "selection_seeds",
]
