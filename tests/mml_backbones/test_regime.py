"""The papers' regime: paper optimisers as defaults, equal-budget allocation, the DUS plug-in, the lr lever."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mml_backbones.errors import ConfigError
from mml_backbones.methods import METHODS
from mml_backbones.optim import OptimConfig
from mml_backbones.quantities import QuantityBounds, allocate
from mml_backbones.trainer import Trainer, TrainerConfig

DATA = {"preset": "mild", "n_train": 256, "n_val": 128, "n_test": 128}


@pytest.mark.parametrize("method", METHODS.names())
def test_an_unset_optimiser_and_fusion_take_the_methods_paper_defaults(method):
    cls = METHODS.get(method).method_class()
    resolved = TrainerConfig(method=method).resolved()
    assert resolved.optim == OptimConfig(**cls.paper_optim)
    assert resolved.model.fusion == (cls.recommended_fusion or "concat")
    mine = OptimConfig("adam", lr=5e-4)
    assert TrainerConfig(method=method, optim=mine).resolved().optim == mine  # a given optimiser stays


def test_allocate_keeps_the_budget_the_floor_and_the_proportions():
    assert allocate([1, 1], 128, 16).tolist() == [64, 64]
    assert allocate([1, 3], 128, 16).tolist() == [32, 96]
    assert allocate([1e-6, 1], 128, 16).tolist() == [16, 112]  # the floor binds, the rest goes to the other
    rng = np.random.default_rng(0)
    for _ in range(200):
        m = int(rng.integers(1, 5))
        n = allocate(rng.exponential(size=m) ** 3, 64 * m, 16)
        assert n.sum() == 64 * m and (n >= 16).all()
    with pytest.raises(ConfigError, match="exceeds the budget"):
        allocate([1, 1], 20, 16)
    with pytest.raises(ConfigError, match="finite"):
        allocate([np.nan, 1], 128, 16)


def test_bounds_are_relative_to_the_batch_size():
    assert QuantityBounds().at(64) == (16, 256) and QuantityBounds().at(32) == (8, 128)
    with pytest.raises(ConfigError):
        QuantityBounds(low=2.0)


def _loss_terms(method: str, dus_losses: bool) -> list[str]:
    cfg = TrainerConfig(dataset_options=DATA, method=method, batch_size=32, epochs=1, dus_losses=dus_losses)
    tr = Trainer(cfg)
    batch = tr._batch(tr.validate({"strong": 16, "weak": 48}))
    tr.model.zero_grad(set_to_none=True)
    return sorted(tr.method.train_step(batch).losses)


@pytest.mark.parametrize("method", ["concat", "ogm_ge"])
def test_the_dus_plug_in_gives_a_fusion_only_method_unimodal_losses(method):
    assert _loss_terms(method, False) == ["fused", "monitor/strong", "monitor/weak"]
    assert _loss_terms(method, True) == ["dus/strong", "dus/weak", "fused"]
    assert "dus/weak" not in _loss_terms("joint", True)  # joint has unimodal losses of its own: no double count


def test_the_plug_in_reaches_the_encoders_in_training():
    def encoder_change(dus_losses: bool) -> float:
        cfg = TrainerConfig(dataset_options=DATA, method="concat", batch_size=32, epochs=1, dus_losses=dus_losses)
        tr = Trainer(cfg)
        before = [p.detach().clone() for p in tr.model.encoders["weak"].parameters()]
        # the fusion loss sees only the paired prefix (16); the plug-in's weak loss sees all 48
        tr.run_iterations(3, {"strong": 16, "weak": 48})
        return sum(float((p.detach() - b).abs().sum()) for p, b in zip(tr.model.encoders["weak"].parameters(), before))

    assert encoder_change(True) > encoder_change(False) > 0


def test_scale_lr_by_quantity_gives_each_modality_n_over_b_of_the_learning_rate():
    optim = OptimConfig("adam", lr=1e-3, scale_lr_by_quantity=True)
    tr = Trainer(TrainerConfig(dataset_options=DATA, batch_size=32, epochs=1, optim=optim))
    tr.run_decision({"strong": 16, "weak": 64})
    lrs = {g["modality"]: g["lr"] for g in tr.optimizer.param_groups}
    assert lrs == pytest.approx({"strong": 5e-4, "weak": 2e-3, None: 1e-3})
    grouped = sum(len(g["params"]) for g in tr.optimizer.param_groups)
    assert grouped == len([p for p in tr.model.parameters() if p.requires_grad])  # every parameter once


def test_uniform_under_the_lever_equals_plain_training():
    def run(scale: bool) -> torch.Tensor:
        optim = OptimConfig("adam", lr=1e-3, scale_lr_by_quantity=scale)
        tr = Trainer(TrainerConfig(dataset_options=DATA, batch_size=32, epochs=1, optim=optim))
        tr.run_iterations(4, {"strong": 32, "weak": 32})
        return torch.cat([p.detach().flatten() for p in tr.model.parameters()])

    assert torch.allclose(run(True), run(False))
