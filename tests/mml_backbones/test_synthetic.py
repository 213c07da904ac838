import pytest
import torch

from mml_backbones.data import load_dataset
from mml_backbones.data.synthetic import PRESETS, SyntheticModality, SyntheticSpec, bayes_accuracy
from mml_backbones.errors import ConfigError

SMALL = {"n_train": 200, "n_val": 80, "n_test": 80}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_load_with_bayes_accuracies(preset):
    s = load_dataset("synthetic", preset=preset, **SMALL)
    bayes = s.info["bayes_accuracy"]
    assert set(bayes) == {*s.modality_names, "all"}
    assert all(s.info["bayes_stderr"][k] < 0.002 for k in bayes)
    # complementary by construction: together beats every modality alone
    assert bayes["all"] > max(bayes[m] for m in s.modality_names) + 0.05
    assert s.sizes() == {"train": 200, "val": 80, "test": 80}


def test_imbalance_is_set_by_construction():
    bayes = load_dataset("synthetic", preset="mild", **SMALL).info["bayes_accuracy"]
    assert bayes["strong"] > bayes["weak"] + 0.15


def test_same_seed_same_data_other_seed_other_data():
    a = load_dataset("synthetic", seed=1, **SMALL)
    b = load_dataset("synthetic", seed=1, **SMALL)
    c = load_dataset("synthetic", seed=2, **SMALL)
    assert torch.equal(a.train.modalities["weak"], b.train.modalities["weak"])
    assert not torch.equal(a.train.modalities["weak"], c.train.modalities["weak"])
    # the distribution (hence the Bayes accuracy) does not depend on the sample seed
    assert a.info["bayes_accuracy"] == c.info["bayes_accuracy"]


def test_bayes_accuracy_matches_a_closed_form_case():
    # one modality, two classes, means `strength` apart: Bayes accuracy = Phi(strength / 2)
    spec = SyntheticSpec(2, (SyntheticModality("x", (0, 1), strength=2.0, noise_dims=0, warp=0.0),))
    est = bayes_accuracy(spec)["x"]
    from math import erf, sqrt

    phi = 0.5 * (1 + erf(1.0 / sqrt(2)))
    assert abs(est["accuracy"] - phi) < 4 * est["stderr"] + 1e-3


def test_a_modality_that_cannot_separate_a_group_is_capped():
    spec = SyntheticSpec(4, (SyntheticModality("x", (0, 0, 1, 1), strength=20.0),))
    assert bayes_accuracy(spec, 20000)["x"]["accuracy"] == pytest.approx(0.5, abs=0.01)


def test_bad_specs_are_rejected():
    with pytest.raises(ConfigError, match="group ids"):
        SyntheticSpec(4, (SyntheticModality("x", (0, 1), strength=1.0),))
    with pytest.raises(ConfigError, match="unknown synthetic preset"):
        load_dataset("synthetic", preset="huge")
