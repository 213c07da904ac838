"""The data-level peers of DUS: Remix, sample-level valuation and MMPareto (hand-checked cores, Trainer smoke runs)."""

import math

import pytest
import torch

from mml_backbones.methods import method_config
from mml_backbones.methods.mmpareto import min_norm_weights, pareto_combine
from mml_backbones.methods.remix import kl_from_uniform, remix_assignment
from mml_backbones.methods.valuation import resample_counts, shapley_contributions
from mml_backbones.trainer import Trainer, TrainerConfig

SMALL = {"preset": "mild", "n_train": 256, "n_val": 128, "n_test": 128}


def small_config(method: str, options: dict) -> TrainerConfig:
    return TrainerConfig(
        dataset="synthetic",
        dataset_options=dict(SMALL),
        method=method,
        method_options=options,
        epochs=1,
        batch_size=32,
    )


# ------------------------------------------------------------------------------------------------------ Remix
def test_kl_from_uniform_is_log_k_minus_entropy():
    assert float(kl_from_uniform(torch.zeros(1, 4))[0]) == pytest.approx(0.0, abs=1e-6)
    sure = torch.tensor([[100.0, 0.0, 0.0, 0.0]])
    assert float(kl_from_uniform(sure)[0]) == pytest.approx(math.log(4), abs=1e-4)


def test_remix_gives_each_sample_to_its_least_confident_modality():
    sure, unsure, mid = [8.0, 0.0, 0.0], [0.1, 0.0, 0.0], [2.0, 0.0, 0.0]
    a = torch.tensor([sure, unsure, mid])  # a has samples 0-2
    v = torch.tensor([unsure, sure])  # v has the prefix 0-1 only (n_v < n_a)
    owner = remix_assignment({"a": a, "v": v}, 3)
    assert owner.tolist() == [1, 0, 0]  # 0: v is unsure; 1: a is unsure; 2: only a has it
    # three modalities: the argmin; the label plays no part
    c = torch.tensor([mid, mid, unsure])
    assert remix_assignment({"a": a, "v": v, "c": c}, 3).tolist() == [1, 0, 2]


# -------------------------------------------------------------------------------------------------- Valuation
def table_predictor(table: dict[tuple[str, ...], list[int]]):
    """A hand-made predictor: the predicted classes of each subset, looked up."""
    return lambda subset: torch.tensor(table[subset])


def test_two_modality_shapley_matches_the_released_formula():
    # sample:        0  1  2  3
    labels = torch.tensor([0, 0, 0, 0])
    table = {
        ("a", "v"): [0, 0, 1, 1],  # fused right on 0 and 1
        ("a",): [0, 0, 1, 1],  # a alone right on 0 and 1
        ("v",): [0, 1, 0, 1],  # v alone right on 0 and 2
    }
    phi = shapley_contributions(table_predictor(table), labels, ("a", "v"))
    # phi_a = (v_a + v_av - v_v) / 2 with v_av = 2 [fused right], v_a = [a alone right]
    expected = [[1.0, 1.0], [1.5, 0.5], [-0.5, 0.5], [0.0, 0.0]]
    assert phi.tolist() == expected
    # one copy per threshold above phi: 1.5, 1 -> 0; 0.5 -> 1; 0 -> 2; -0.5 -> 3
    assert torch.equal(resample_counts(phi, (0.9, 0.4, -0.1)), torch.tensor([[0, 0], [0, 1], [3, 1], [2, 2]]))


def test_shapley_over_three_modalities_is_efficient_and_symmetric():
    labels = torch.tensor([0, 0])
    subsets = [("a",), ("b",), ("c",), ("a", "b"), ("a", "c"), ("b", "c"), ("a", "b", "c")]
    # sample 0: right whenever "a" is present; sample 1: right with every subset
    table = {s: [0 if "a" in s else 1, 0] for s in subsets}
    phi = shapley_contributions(table_predictor(table), labels, ("a", "b", "c"))
    assert phi.sum(1).tolist() == pytest.approx([3.0, 3.0])  # efficiency: v(N) = 3 when right
    assert phi[1].tolist() == pytest.approx([1.0, 1.0, 1.0])
    # a's marginals +1 (alone, weight 1/3), +2 (after b or after c, 1/6 each), +3 (after both, 1/3)
    assert phi[0].tolist() == pytest.approx([1 / 3 + 2 / 6 + 2 / 6 + 1, 0.5, 0.5])


def test_valuation_pool_has_one_row_per_copy_and_is_split_over_the_epoch():
    trainer = Trainer(small_config("valuation", {"warmup_epochs": 0}))
    method = trainer.method
    counts = torch.tensor([[0, 1], [3, 0], [0, 0], [2, 2]])
    pool = method.build_pool(counts, epoch=0)
    assert len(pool) == 8
    assert sorted(map(tuple, pool.tolist())) == sorted([(0, 1), (1, 0), (1, 0), (1, 0), (3, 0), (3, 0), (3, 1), (3, 1)])
    method.pool, ipe = pool, trainer.iterations_per_epoch
    sizes = [len(method.copies_of(trainer._batch({"strong": 32, "weak": 32}))) for _ in range(ipe)]
    assert sum(sizes) == 8 and max(sizes) - min(sizes) <= 1


# --------------------------------------------------------------------------------------------------- MMPareto
def test_non_conflicting_gradients_are_summed_and_scaled():
    g_mm, g_u = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])
    result = pareto_combine([g_mm, g_u], magnitude_scale=1.5)
    assert result.weights.tolist() == [0.5, 0.5]
    assert result.grad.tolist() == pytest.approx([3.0, 1.5])  # 1.5 (g_mm + g_u)


def test_conflicting_gradients_get_min_norm_weights_and_the_sum_norm():
    g_mm, g_u = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    result = pareto_combine([g_mm, g_u], magnitude_scale=1.5)
    assert result.cosine == pytest.approx(-1 / math.sqrt(2))
    # min over c of |c g_mm + (1 - c) g_u|: c = (2 + 1) / (1 + 2 + 2) = 3/5
    assert result.weights.tolist() == pytest.approx([0.6, 0.4])
    direction = torch.tensor([0.2, 0.4]) / math.sqrt(0.2)  # 2 (0.6 g_mm + 0.4 g_u), unit length
    # |g_mm + g_u| = 1 > |2 (...)| = sqrt(0.8): scaled up to 1, then by 1.5
    assert result.grad.tolist() == pytest.approx((1.5 * direction).tolist())
    assert float(result.grad @ g_mm) > 0 and float(result.grad @ g_u) > 0  # common descent direction
    # per-section rescale: the second section is shorter than its plain sum there, the first is not
    two = pareto_combine([g_mm, g_u], magnitude_scale=1.0, sizes=[1, 1])
    assert two.grad.tolist() == pytest.approx([0.4, 1.0])


def test_zero_gradient_counts_as_no_conflict_and_three_tasks_use_frank_wolfe():
    zero = pareto_combine([torch.zeros(2), torch.tensor([0.0, 2.0])], magnitude_scale=1.0)
    assert zero.grad.tolist() == [0.0, 2.0]
    w = min_norm_weights([torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([-1.0, -1.0])])
    assert w.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3], abs=1e-3)  # the origin is in the hull
    w = min_norm_weights([torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0])])
    assert w.tolist() == pytest.approx([0.5, 0.0, 0.5], abs=1e-3)  # the midpoint of the first and the last


def test_mmpareto_writes_the_combined_encoder_gradients():
    trainer = Trainer(small_config("mmpareto", {}))
    batch = trainer._batch({"strong": 16, "weak": 32})
    model = trainer.model
    out = model(batch.inputs, n_paired=batch.n_paired)
    fused = torch.nn.functional.cross_entropy(out.fused_logits, batch.paired_labels)
    params = list(model.encoders["weak"].parameters())
    g_mm = torch.cat([g.flatten() for g in torch.autograd.grad(fused, params, retain_graph=True)])
    uni = torch.nn.functional.cross_entropy(out.unimodal_logits["weak"], batch.labels_of("weak"), reduction="sum") / 32
    g_u = torch.cat([g.flatten() for g in torch.autograd.grad(uni, params)])
    expected = pareto_combine([g_mm, g_u], 1.5, [p.numel() for p in params]).grad
    trainer.optimizer.zero_grad()
    trainer.method.train_step(batch)
    got = torch.cat([p.grad.flatten() for p in params])
    assert torch.allclose(got, expected, atol=1e-6)


# ------------------------------------------------------------------------------------------------ smoke runs
@pytest.mark.parametrize(
    ("method", "options", "expected"),
    [
        ("remix", {"warmup_epochs": 0}, "fused/weak"),
        ("remix", {}, "unimodal/strong"),  # in the warm-up
        ("valuation", {"warmup_epochs": 0}, "copies/weak"),
        ("mmpareto", {}, "unimodal/weak"),
    ],
)
@pytest.mark.parametrize("quantities", [{"strong": 32, "weak": 32}, {"strong": 8, "weak": 40}])
def test_two_iterations_change_the_parameters(method, options, expected, quantities):
    trainer = Trainer(small_config(method, options))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert trainer.run_iterations(2, quantities) == 2
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("encoders.weak") for k in changed)
    assert any(k.startswith("encoders.strong") for k in changed)
    losses = trainer.pop_train_losses()
    assert expected in losses
    assert all(math.isfinite(v) for v in losses.values())


def test_peer_configs_carry_the_released_defaults():
    assert method_config("remix").warmup_epochs == 10 and method_config("remix").unimodal_weight == 1.0
    assert method_config("valuation").thresholds == (0.9, 0.4, -0.1)
    assert method_config("valuation").warmup_epochs == 5
    assert method_config("mmpareto").magnitude_scale == 1.5


def test_valuation_monitors_become_real_losses_under_the_dus_plug_in():
    grads = {}
    for dus in (False, True):
        trainer = Trainer(small_config("valuation", {}))
        trainer.method.context.dus_losses = dus  # what the Trainer sets when the DUS plug-in is on
        batch = trainer._batch({"strong": 8, "weak": 24})
        trainer.optimizer.zero_grad()
        result = trainer.method.train_step(batch)
        assert ("dus/weak" in result.losses) == dus and ("monitor/weak" in result.losses) == (not dus)
        grads[dus] = torch.cat([p.grad.flatten() for p in trainer.model.encoders["weak"].parameters()])
    assert not torch.allclose(grads[False], grads[True])  # the head loss now reaches the encoder
