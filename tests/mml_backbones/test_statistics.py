import numpy as np
import pytest

from mml_backbones.errors import ConfigError
from mml_backbones.observation import DiscrepancyObservation, feature_bounds
from mml_backbones.statistics import ModalityStatistics, StatisticsConfig

SCORES = [{"a": 0.2, "b": 0.6}, {"a": 0.4, "b": 0.5}, {"a": 0.9, "b": 0.1}]
Q = {"a": 4, "b": 8}


def feed(stats, scores=SCORES):
    for s in scores:
        stats.update(s, Q)
    return stats


def test_running_mean_is_the_paper_recursion():
    s = feed(ModalityStatistics(["a", "b"]))
    assert np.allclose(s.cumulative, [0.5, 0.4])
    assert s.samples.tolist() == [12, 24] and s.t == 3


def test_ema_is_bias_corrected_and_follows_recent_scores():
    s = feed(ModalityStatistics(["a", "b"], StatisticsConfig(kind="ema", ema_decay=0.5)))
    w = np.array([0.25, 0.5, 1.0]) * 0.5
    expected_a = (w * [0.2, 0.4, 0.9]).sum() / w.sum()
    assert s.cumulative[0] == pytest.approx(expected_a)
    one = ModalityStatistics(["a", "b"], StatisticsConfig(kind="ema"))
    one.update(SCORES[0], Q)
    assert np.allclose(one.cumulative, [0.2, 0.6])  # no shrinkage towards 0 at the start


def test_window_keeps_the_last_scores_only():
    s = feed(ModalityStatistics(["a", "b"], StatisticsConfig(kind="window", window=2)))
    assert np.allclose(s.cumulative, [0.65, 0.3])


@pytest.mark.parametrize("kind", ["running_mean", "ema", "window"])
def test_unscored_modalities_keep_their_statistic_and_state_round_trips(kind):
    s = feed(ModalityStatistics(["a", "b"], StatisticsConfig(kind=kind)))
    before = s.cumulative.copy()
    s.update({"a": 0.0}, Q)
    assert s.cumulative[1] == before[1] and s.cumulative[0] < before[0]
    copy = ModalityStatistics(["a", "b"], StatisticsConfig(kind=kind))
    copy.load_state_dict(s.state_dict())
    for x in (s, copy):
        x.update({"a": 0.3, "b": 0.3}, Q)
    assert np.array_equal(s.cumulative, copy.cumulative)


def test_bad_statistic_configs():
    with pytest.raises(ConfigError, match="unknown statistic"):
        StatisticsConfig(kind="median")
    with pytest.raises(ConfigError, match="ema_decay"):
        StatisticsConfig(ema_decay=1.0)


def test_observation_vector_is_bounded_and_ordered():
    obs = DiscrepancyObservation(("a", "b"), np.array([0.2, 0.6]), np.array([0.1, 0.9]), np.array([10, 30]), 0.5, 7, 32)
    v = obs.vector(("cumulative", "ratio", "share", "progress"))
    assert v.dtype == np.float32
    assert np.allclose(v, [0.2, 0.6, 0.5, 1.5, 0.25, 0.75, 0.5])
    low, high = feature_bounds(("cumulative", "ratio", "share", "progress"), 2)
    assert (v >= low).all() and (v <= high).all() and high[2] == 2.0
