import numpy as np
import pytest

from agents.heuristic import HeuristicSampler
from mml_backbones.errors import ConfigError
from mml_backbones.observation import DiscrepancyObservation
from mml_backbones.samplers import make_sampler


def obs(cumulative, b=64):
    m = tuple(f"m{i}" for i in range(len(cumulative)))
    c = np.asarray(cumulative, float)
    return DiscrepancyObservation(m, c, c, np.zeros(len(c)), 0.5, 10, b)


def test_weaker_modality_gets_more_by_the_design_rule():
    q = HeuristicSampler(gamma=1.0, budget="free")(obs([0.6, 0.2]))
    # ratios 1.5 and 0.5 -> 64 / 1.5 and 64 / 0.5
    assert q == {"m0": 43, "m1": 128}
    assert HeuristicSampler(gamma=0.0, budget="free")(obs([0.6, 0.2])) == {"m0": 64, "m1": 64}
    assert HeuristicSampler(gamma=2.0, budget="free")(obs([0.6, 0.2])) == {"m0": 28, "m1": 256}


def test_clipping_scales_with_the_batch_size():
    q = HeuristicSampler(gamma=4.0, budget="free")(obs([0.9, 0.05], b=32))
    assert q == {"m0": 8, "m1": 128}  # bounds are relative to B: [0.25 B, 4 B]


def test_equal_scores_and_the_start_give_uniform():
    assert HeuristicSampler()(obs([0.0, 0.0, 0.0])) == {"m0": 64, "m1": 64, "m2": 64}


def test_spec_parsing_and_errors():
    s = make_sampler("heuristic:gamma=2,low=0.125,budget=equal")
    assert isinstance(s, HeuristicSampler) and s.gamma == 2 and s.bounds.low == 0.125 and s.budget == "equal"
    with pytest.raises(ConfigError, match="options are gamma"):
        make_sampler("heuristic:beta=1")
    with pytest.raises(ConfigError, match="gamma must be"):
        HeuristicSampler(gamma=-1)


def test_the_default_and_the_plain_spec_are_v1s_named_heuristic():
    from agents.heuristic import V0_HEURISTIC, V1_HEURISTIC

    v1 = HeuristicSampler(gamma=2.0, budget="equal")
    assert HeuristicSampler() == make_sampler("heuristic") == make_sampler(V1_HEURISTIC) == v1
    # equal budget: the weak modality gets more, the total stays M * B
    q = make_sampler("heuristic")(obs([0.6, 0.2]))
    assert q["m1"] > q["m0"] and sum(q.values()) == 128
    assert make_sampler(V0_HEURISTIC) == HeuristicSampler(gamma=1.0, budget="free")
