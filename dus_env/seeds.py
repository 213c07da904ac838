"""Every seed range of the project in one place, so that no training-run seed serves two purposes.

    train       [0, 10_000)       seeds drawn by environment resets without a seed (DUSEnvConfig.train_seed_range):
                                  the runs a policy learns on
    eval        [10_000, 20_000)  scoring policies and samplers in the environment: tables, ``dus eval-policy``
    downstream  [20_000, 30_000)  fresh ``Trainer.fit`` runs that report test accuracy (``dus demo``, benchmarks)
    selection   [30_000, 40_000)  the evaluation callback that picks the checkpoint kept during training
    gate        [40_000, 50_000)  the headroom gate (``dus headroom``) and the instance oracles of an instance
                                  family (``agents.oracle``: the gate's best constant share per instance)
    tuning      [50_000, 60_000)  hyper-parameter search trials (``dus tune``): trial slot k trains on seed 50_000 + k,
                                  scored on validation; the tuned configurations are then retrained on downstream seeds

Selection is apart from eval: a checkpoint chosen on the seeds that then score it would be scored with a bias.
The gate is apart from eval too: the best constant share (a policy's reference, and an instance's oracle) is
chosen on the gate seeds, then scored beside the policies on the evaluation seeds. (Until issue 18 the gate ran
on the evaluation seeds 10000...; those tables say so.)
"""

from __future__ import annotations

from mml_backbones.errors import ConfigError

#: purpose -> [low, high) of its seeds; the ranges are disjoint (tests/dus_env/test_paired.py checks it)
SEED_RANGES: dict[str, tuple[int, int]] = {
    "train": (0, 10_000),
    "eval": (10_000, 20_000),
    "downstream": (20_000, 30_000),
    "selection": (30_000, 40_000),
    "gate": (40_000, 50_000),
    "tuning": (50_000, 60_000),
}
TRAIN_SEED_RANGE = SEED_RANGES["train"]
EVAL_SEED_BASE = SEED_RANGES["eval"][0]
DOWNSTREAM_SEED_BASE = SEED_RANGES["downstream"][0]
SELECTION_SEED_BASE = SEED_RANGES["selection"][0]
TUNING_SEED_BASE = SEED_RANGES["tuning"][0]


def seeds_for(purpose: str, n: int) -> list[int]:
    """The first ``n`` seeds of a purpose's range (``SEED_RANGES``)."""
    if purpose not in SEED_RANGES:
        raise ConfigError(f"unknown seed purpose {purpose!r}; valid: {list(SEED_RANGES)}")
    low, high = SEED_RANGES[purpose]
    if not 0 <= n <= high - low:
        raise ConfigError(f"{purpose} seeds: n must be in [0, {high - low}], got {n}")
    return list(range(low, low + n))


def eval_seeds(n: int) -> list[int]:
    """The first ``n`` held-out seeds that score policies and samplers in the environment."""
    return seeds_for("eval", n)


def downstream_seeds(n: int) -> list[int]:
    """The first ``n`` seeds of downstream training runs (never seen while training or selecting a policy)."""
    return seeds_for("downstream", n)


def selection_seeds(n: int) -> list[int]:
    """The first ``n`` seeds on which the training callback selects the checkpoint it keeps."""
    return seeds_for("selection", n)


def gate_seeds(n: int) -> list[int]:
    """The first ``n`` seeds of the headroom gate and of the instance oracles."""
    return seeds_for("gate", n)


def tuning_seeds(n: int) -> list[int]:
    """The first ``n`` seeds of hyper-parameter search trials (apart from every seed that reports a result)."""
    return seeds_for("tuning", n)


def purpose_of(seed: int) -> str | None:
    """The purpose whose range holds ``seed`` (None outside every range)."""
    return next((p for p, (low, high) in SEED_RANGES.items() if low <= seed < high), None)


def parse_seed_span(text: str) -> list[int]:
    """``"START:COUNT"`` -> [START, START + COUNT); a ConfigError says what is wrong with a bad value."""
    start, sep, count = str(text).strip().partition(":")
    try:
        if not sep:
            raise ValueError
        a, n = int(start), int(count)
    except ValueError:
        raise ConfigError(f"seeds must be START:COUNT with two integers (e.g. 10000:10), got {text!r}") from None
    if a < 0 or n < 1:
        raise ConfigError(f"seeds START:COUNT needs START >= 0 and COUNT >= 1, got {text!r}")
    return list(range(a, a + n))
