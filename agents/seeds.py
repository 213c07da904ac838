"""Seed ranges that keep training, evaluation and downstream reporting apart.

Environments draw training-run seeds in [0, 10_000) (``DUSEnvConfig.train_seed_range``); the evaluation
callback and ``dus eval-policy`` use EVAL_SEEDS; downstream comparisons (``dus demo``, benchmarks) train
fresh runs with DOWNSTREAM_SEEDS. No seed is in two of these sets.
"""

EVAL_SEED_BASE = 10_000
DOWNSTREAM_SEED_BASE = 20_000


def eval_seeds(n: int) -> list[int]:
    """The first ``n`` held-out seeds for evaluating policies in the environment."""
    return [EVAL_SEED_BASE + i for i in range(n)]


def downstream_seeds(n: int) -> list[int]:
    """The first ``n`` seeds of downstream training runs (never seen while training a policy)."""
    return [DOWNSTREAM_SEED_BASE + i for i in range(n)]
