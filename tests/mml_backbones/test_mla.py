"""MLA: the shared head, the orthogonal projector, alternation and the logit-mean prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mml_backbones.config import replace
from mml_backbones.data.registry import load_dataset
from mml_backbones.errors import ConfigError
from mml_backbones.methods import method_config
from mml_backbones.methods.base import Predictions
from mml_backbones.methods.mla import OrthogonalProjector
from mml_backbones.models.model import ModelConfig
from mml_backbones.optim import OptimConfig
from mml_backbones.trainer import Trainer, TrainerConfig

TINY = {"preset": "mild", "n_train": 512, "n_val": 256, "n_test": 256}


@pytest.fixture(scope="module")
def splits():
    torch.set_num_threads(1)
    return load_dataset("synthetic", **TINY)


def mla_config(**options) -> TrainerConfig:
    return TrainerConfig(
        dataset_options=dict(TINY),
        method="mla",
        method_options=options,
        model=ModelConfig(fusion="late"),
        epochs=1,
        optim=OptimConfig("adam"),  # the mechanism test was calibrated with Adam
    )


def test_projector_removes_the_seen_direction_and_keeps_orthogonal_ones():
    g = torch.Generator().manual_seed(0)
    r = torch.randn(6, generator=g, dtype=torch.float64)
    u = torch.randn(6, generator=g, dtype=torch.float64)
    u -= (u @ r) / (r @ r) * r  # orthogonal to r
    p = OrthogonalProjector(6)
    p.update(r, alpha=0.01, normalise=False)
    assert torch.allclose(p.matrix @ u, u, atol=1e-12)  # untouched
    assert torch.allclose(p.matrix @ r, 0.01 / (0.01 + r @ r) * r, atol=1e-12)  # all but alpha-damped away
    grad = torch.randn(3, 6, generator=g, dtype=torch.float64)
    assert (p.project(grad) @ r).norm() < 1e-2 * (grad @ r).norm()  # the head's response to r barely moves
    p.update(u, alpha=0.01, normalise=True)
    assert float(torch.linalg.matrix_norm(p.matrix)) == pytest.approx(1.0)


def test_heads_are_tied_into_one_shared_head_seen_once_by_the_optimiser(splits):
    trainer = Trainer(mla_config(), splits)
    assert trainer.model.heads["strong"] is trainer.model.heads["weak"]
    params = [p for group in trainer.optimizer.param_groups for p in group["params"]]
    assert len(params) == len({id(p) for p in params}) == len(list(trainer.model.parameters()))


def test_modalities_alternate_each_iteration_and_the_first_step_is_unprojected(splits):
    trainer = Trainer(mla_config(), splits)
    head = trainer.model.heads["strong"]
    grads = []
    for it, m in enumerate(("strong", "weak", "strong")):
        batch = trainer._batch({"strong": 32, "weak": 16})
        trainer.optimizer.zero_grad()
        result = trainer.method.train_step(batch)
        assert (
            list(result.output.unimodal_logits) == [m] and len(result.output.unimodal_logits[m]) == batch.quantities[m]
        )
        grads.append(head.weight.grad.clone())
        trainer.optimizer.zero_grad()
        logits = head(trainer.model.encoders[m](batch.inputs[m]))
        (F.cross_entropy(logits, batch.labels_of(m), reduction="sum") / batch.nominal_batch_size).backward()
        plain = head.weight.grad.clone()
        if it == 0:
            assert torch.equal(grads[-1], plain)
        else:
            assert torch.allclose(grads[-1], trainer.method.projector.project(plain), atol=1e-7)
        assert all(p.grad is None for n, p in trainer.model.encoders.named_parameters() if not n.startswith(m))
        trainer.optimizer.step()
        trainer.iteration += 1


def test_prediction_is_the_weighted_logit_mean_and_config_is_checked(splits):
    trainer = Trainer(mla_config(modality_weights=[0.25, 0.75]), splits)
    a, b = np.array([[2.0, 0.0]]), np.array([[0.0, 1.0]])
    pred = Predictions(np.array([0]), np.zeros((1, 2)), {"strong": a, "weak": b})
    z = 0.25 * a + 0.75 * b
    assert np.allclose(trainer.method.fused_scores(pred), np.exp(z) / np.exp(z).sum())
    with pytest.raises(ConfigError, match="modality_weights"):
        Trainer(mla_config(modality_weights=[1.0]), splits)
    with pytest.raises(ConfigError, match="alpha_decay"):
        method_config("mla", {"alpha_decay": 0.0})


def test_mla_fits_and_its_state_round_trips(splits):
    trainer = Trainer(replace(mla_config(), epochs=2), splits)
    result = trainer.fit(progress=False)
    assert result.test["fused_acc"] > 0.3  # 8 classes: well above chance after two short epochs
    other = Trainer(replace(mla_config(), epochs=2), splits)
    other.load_state_dict(trainer.state_dict())
    assert torch.equal(other.method.projector.matrix, trainer.method.projector.matrix)
    assert other.method.steps == trainer.method.steps == 16
