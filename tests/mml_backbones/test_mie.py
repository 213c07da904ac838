"""MIE/IGM: stage schedule, flat projection maths, SAM, the reduction to alternating training, resume, CLI."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mml_backbones.cli import main
from mml_backbones.config import replace
from mml_backbones.data.registry import load_dataset
from mml_backbones.errors import ConfigError
from mml_backbones.methods import method_config
from mml_backbones.methods.alternating import StageSchedule
from mml_backbones.methods.flat_projection import InputCovariance, flat_projection, linear_layers, match_layers
from mml_backbones.methods.sam import sharpness_aware_backward
from mml_backbones.models.model import ModelConfig
from mml_backbones.trainer import OptimConfig, Trainer, TrainerConfig

TINY = {"preset": "mild", "n_train": 512, "n_val": 256, "n_test": 256}
PLAIN = {"beta": 0.0, "gradient_modification": False, "mixup_alpha": 0.0}


@pytest.fixture(scope="module")
def splits():
    torch.set_num_threads(1)
    return load_dataset("synthetic", **TINY)


def mie_config(**options) -> TrainerConfig:
    """One epoch of 8 iterations (B = 64) of MIE with late fusion; ``options`` override the method config."""
    return TrainerConfig(
        dataset_options=dict(TINY),
        method="mie",
        method_options=options,
        model=ModelConfig(fusion="late"),
        epochs=1,
        batch_size=64,
        decision_interval=4,
    )


def record_steps(trainer: Trainer) -> list[tuple]:
    """Wrap the method's train_step to keep (batch, result) of every iteration."""
    seen, step = [], trainer.method.train_step

    def wrapped(batch):
        result = step(batch)
        seen.append((batch, result))
        return result

    trainer.method.train_step = wrapped
    return seen


# ------------------------------------------------------------------------------------------------ schedule
def test_schedule_cycles_modalities_and_stage_lengths_independently():
    s = StageSchedule(("a", "b", "c"), (2, 3))
    got = [(st.index, st.modality, st.start, st.length) for st in map(s.stage_at, (0, 1, 2, 4, 5, 7, 11, 12))]
    assert got == [
        (0, "a", 0, 2),
        (0, "a", 0, 2),
        (1, "b", 2, 3),
        (1, "b", 2, 3),
        (2, "c", 5, 2),
        (3, "a", 7, 3),
        (4, "b", 10, 2),
        (5, "c", 12, 3),
    ]
    assert s.previous(s.stage_at(5)).modality == "b" and s.previous(s.stage_at(0)) is None
    assert StageSchedule.from_config(("a", "b"), (1, 2), "epochs", 10).stage_at(10).length == 20
    with pytest.raises(ConfigError, match="stage lengths"):
        StageSchedule(("a",), (0,))
    with pytest.raises(ConfigError, match="stage unit"):
        StageSchedule.from_config(("a",), (1,), "steps", 10)


def test_config_defaults_are_named_to_their_source_and_bad_values_fail():
    c = method_config("mie")
    assert (c.beta, c.tau, c.mixup_alpha, c.rho) == (0.3, 0.4, 1.0, 0.05)
    assert c.stage_lengths == (1, 2) and c.stage_unit == "epochs"
    for bad in ({"beta": 1.5}, {"rho": -1}, {"stage_lengths": [0]}, {"stage_unit": "steps"}, {"covariance_batches": 0}):
        with pytest.raises(ConfigError, match="mie"):
            method_config("mie", bad)


# --------------------------------------------------------------------------------------- flat projection
def test_projection_is_symmetric_with_eigenvalues_between_exp_minus_tau_and_one():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 8, generator=g, dtype=torch.float64)
    tau = 0.4
    p = flat_projection(x.T @ x, tau)  # rank 5 of 8: a null space too
    assert torch.allclose(p, p.T, atol=1e-12)
    ev = torch.linalg.eigvalsh(p)
    assert ev.min() >= math.exp(-tau) - 1e-10 and ev.max() <= 1 + 1e-10
    assert ev.min() == pytest.approx(math.exp(-tau)) and ev.max() == pytest.approx(1.0)
    assert torch.equal(flat_projection(torch.zeros(3, 3), tau), torch.eye(3, dtype=torch.float64))  # guard


def test_gradient_times_projection_damps_the_top_direction_and_passes_the_null_space():
    q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    u1, u2, n1 = q[:, 0], q[:, 1], q[:, 2]
    c = 5.0 * torch.outer(u1, u1) + 2.0 * torch.outer(u2, u2)  # null space spanned by q[:, 2:]
    tau = 0.4
    p = flat_projection(c, tau)
    grad = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.allclose((grad @ p) @ u1, math.exp(-tau) * (grad @ u1), atol=1e-10)
    assert torch.allclose((grad @ p) @ u2, math.exp(-tau * 2.0 / 5.0) * (grad @ u2), atol=1e-10)
    assert torch.allclose((grad @ p) @ n1, grad @ n1, atol=1e-10)


def test_input_covariance_sums_outer_products_of_batch_means():
    layer = nn.Linear(3, 2)
    batches = [torch.randn(4, 3), torch.randn(7, 3)]
    with InputCovariance([("l", layer)]) as cov:
        for b in batches:
            layer(b)
    layer(torch.randn(2, 3))  # hooks are gone after the context
    want = sum(torch.outer(b.mean(0), b.mean(0)).double() for b in batches)
    assert torch.allclose(cov.covariance["l"], want, atol=1e-6) and cov.batches["l"] == 2


def test_layer_matching_aligned_from_the_output_end_or_by_shape():
    a = linear_layers(nn.Sequential(nn.Linear(10, 16), nn.Linear(16, 8)), nn.Linear(8, 3))
    b = linear_layers(nn.Sequential(nn.Linear(20, 16), nn.Linear(16, 8)), nn.Linear(8, 3))
    c = linear_layers(nn.Linear(8, 8), nn.Linear(8, 3))
    assert match_layers(a, b, "aligned") == {"1": ["1"], "0.1": ["0.1"]}  # first layers: 10 vs 20 inputs
    assert match_layers(a, c, "aligned") == {"1": ["1"]}  # 16 vs 8 inputs: unmatched
    assert match_layers(a, b, "shape") == {"0.1": ["0.1"], "1": ["1"]}
    assert match_layers(c, c, "shape") == {"0": ["0"], "1": ["1"]}
    with pytest.raises(ConfigError):
        match_layers(a, b, "position")


# ---------------------------------------------------------------------------------------------------- SAM
def test_sam_perturbation_has_norm_rho_and_weights_come_back_bit_for_bit():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    params = list(net.parameters())
    before = copy.deepcopy(net.state_dict())
    rho, beta = 0.05, 0.3

    def closure():
        return F.cross_entropy(net(x), y), None

    seen = {}

    def on_perturbed():
        seen["eps"] = [p.detach() - before[k] for k, p in net.named_parameters()]
        seen["buffers"] = {k: b.clone() for k, b in net.named_buffers()}  # as the unperturbed pass left them

    g = torch.autograd.grad(closure()[0], params)
    net.load_state_dict(before)  # that pass moved the BatchNorm statistics
    step = sharpness_aware_backward(params, closure, rho, beta, list(net.buffers()), on_perturbed)
    eps_norm = torch.sqrt(sum((e.double() ** 2).sum() for e in seen["eps"]))
    assert float(eps_norm) == pytest.approx(rho, rel=1e-5) and step.perturbation_norm == rho
    g_norm = torch.sqrt(sum((t.double() ** 2).sum() for t in g))
    for e, t in zip(seen["eps"], g):  # along the gradient
        assert torch.allclose(e, rho * t / g_norm.float(), atol=1e-7)
    assert all(torch.equal(p, before[k]) for k, p in net.named_parameters())
    assert all(torch.equal(b, seen["buffers"][k]) for k, b in net.named_buffers())
    # the gradient left behind is (1 - beta) grad L(w) + beta grad L(w + eps)
    shifted = copy.deepcopy(net)
    with torch.no_grad():
        for p, e in zip(shifted.parameters(), seen["eps"]):
            p.add_(e)
    h = torch.autograd.grad(F.cross_entropy(shifted(x), y), list(shifted.parameters()))
    for p, a, b in zip(params, g, h):
        assert torch.allclose(p.grad, (1 - beta) * a + beta * b, atol=1e-6)


# ---------------------------------------------------------------------------------------- with the Trainer
def test_beta_zero_without_modification_is_alternating_unimodal_training(splits):
    cfg = replace(
        mie_config(**PLAIN, stage_lengths=[3], stage_unit="iterations"), optim=OptimConfig(name="sgd", lr=0.1)
    )
    trainer = Trainer(cfg, splits)
    reference = copy.deepcopy(trainer.model)
    optimiser = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=cfg.optim.momentum)
    seen = record_steps(trainer)
    trainer.run_iterations(8, {"strong": 64, "weak": 64})
    for t, (batch, _) in enumerate(seen):
        m = ("strong", "weak")[(t // 3) % 2]
        optimiser.zero_grad()
        logits = reference.heads[m](reference.encoders[m](batch.inputs[m]))
        (F.cross_entropy(logits, batch.labels_of(m), reduction="sum") / 64).backward()
        optimiser.step()
    for (name, p), q in zip(trainer.model.named_parameters(), reference.parameters()):
        assert torch.equal(p, q), name


def test_active_modality_trains_on_its_sampled_quantity_and_alone_feeds_the_statistic(splits):
    trainer = Trainer(mie_config(**PLAIN, stage_lengths=[1], stage_unit="iterations"), splits)
    seen = record_steps(trainer)
    q = {"strong": 10, "weak": 40}
    trainer.run_iterations(2, q)
    for (batch, result), m in zip(seen, ("strong", "weak")):
        assert list(result.output.unimodal_logits) == [m]
        assert result.output.unimodal_logits[m].shape[0] == q[m]
        want = F.cross_entropy(result.output.unimodal_logits[m], batch.labels_of(m), reduction="sum") / 64
        assert result.losses["mie/ori"] == pytest.approx(float(want), rel=1e-5)  # summed over n_m, divided by B
    assert trainer.statistics.counts.tolist() == [1, 1]


def test_gradients_of_the_next_modality_are_multiplied_by_the_previous_modalitys_projections(splits):
    cfg = mie_config(**{**PLAIN, "gradient_modification": True}, stage_lengths=[2], stage_unit="iterations")
    trainer = Trainer(cfg, splits)
    q = {"strong": 64, "weak": 64}
    trainer.run_iterations(2, q)  # one strong stage
    batch = trainer._batch(q)  # iteration 2: the weak stage begins
    trainer.optimizer.zero_grad()
    trainer.method.train_step(batch)
    method = trainer.method
    assert method.source == "strong" and set(method.projections) == {"0.net.1", "0.net.4", "1"}
    modified = {name: (layer.weight.grad.clone(), layer.bias.grad.clone()) for name, layer in method.layers("weak")}
    trainer.optimizer.zero_grad()
    logits = trainer.model.heads["weak"](trainer.model.encoders["weak"](batch.inputs["weak"]))
    (F.cross_entropy(logits, batch.labels_of("weak"), reduction="sum") / 64).backward()
    for name, layer in method.layers("weak"):
        weight, bias = modified[name]
        # weak's first layer has 208 inputs, strong's 36: unmatched; the others are paired from the head down
        want = layer.weight.grad if name == "0.net.1" else layer.weight.grad @ method.projections[name]
        assert torch.allclose(weight, want, atol=1e-6), name
        assert torch.allclose(bias, layer.bias.grad, atol=1e-6)
    head = trainer.model.heads["weak"]
    assert not torch.allclose(modified["1"][0], head.weight.grad, atol=1e-6)  # P is not the identity


def test_three_modalities_cycle_and_each_projects_onto_its_predecessor():
    data = {"preset": "three_modal", "n_train": 384, "n_val": 128, "n_test": 128}
    cfg = replace(
        mie_config(stage_lengths=[2], stage_unit="iterations", covariance_batches=2), dataset_options=data, epochs=2
    )
    trainer = Trainer(cfg)
    before = {m: [p.clone() for p in trainer.model.encoders[m].parameters()] for m in trainer.modalities}
    sources = []
    for _ in range(4):
        trainer.run_iterations(2, {"strong": 32, "weak": 48, "medium": 16})
        sources.append(trainer.method.source)
    assert sources == [None, "strong", "weak", "medium"]
    for m in trainer.modalities:
        assert any(not torch.equal(a, b) for a, b in zip(trainer.model.encoders[m].parameters(), before[m])), m


def test_feature_fusion_head_is_trained_as_a_readout_without_touching_other_encoders(splits):
    cfg = replace(mie_config(), model=ModelConfig(fusion="concat"))
    trainer = Trainer(cfg, splits)
    batch = trainer._batch({"strong": 32, "weak": 16})
    trainer.optimizer.zero_grad()
    result = trainer.method.train_step(batch)
    assert "fused" in result.losses and trainer.model.fusion_head.weight.grad is not None
    assert all(p.grad is None for p in trainer.model.encoders["weak"].parameters())
    assert all(p.grad is not None for p in trainer.model.encoders["strong"].parameters())


def test_interrupted_run_resumes_exactly(tmp_path, splits):
    cfg = replace(mie_config(stage_lengths=[5], stage_unit="iterations"), epochs=2)

    class Stop(Exception):
        pass

    def stop_after_first_epoch(obs):
        if obs.iteration >= 8:
            raise Stop
        return {"strong": 48, "weak": 64}

    with pytest.raises(Stop):
        Trainer(cfg, splits).fit(stop_after_first_epoch, run_dir=tmp_path / "run", progress=False)
    resumed = Trainer(cfg, splits)
    sampler = lambda obs: {"strong": 48, "weak": 64}  # noqa: E731
    r1 = resumed.fit(sampler, run_dir=tmp_path / "run", resume=True, progress=False)
    straight = Trainer(cfg, splits)
    r2 = straight.fit(sampler, run_dir=tmp_path / "straight", progress=False)
    assert resumed.method.source == straight.method.source == "strong"  # the weak stage spans the checkpoint
    for k, p in straight.method.state_dict()["projections"].items():
        assert torch.equal(resumed.method.state_dict()["projections"][k], p)
    for a, b in zip(resumed.model.state_dict().values(), straight.model.state_dict().values()):
        assert torch.equal(a, b)
    assert r1.test == r2.test and [h["val/fused_acc"] for h in r1.history] == [h["val/fused_acc"] for h in r2.history]


def test_cli_trains_mie_with_its_recommended_late_fusion(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--method", "mie", "--epochs", "1", "--preset", "mild", "--no-progress", "--out", str(out)]
    args += ["--dataset-option", "n_train=512", "--dataset-option", "n_val=256", "--dataset-option", "n_test=256"]
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["trainer"]["model"]["fusion"] == "late" and config["method_config"]["beta"] == 0.3
    assert "fused_acc" in capsys.readouterr().out
