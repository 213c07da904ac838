import math

import pytest
import torch

from mml_backbones.config import replace
from mml_backbones.errors import ConfigError
from mml_backbones.methods import METHODS, method_config
from mml_backbones.methods.ogm_ge import modulation_coefficients
from mml_backbones.trainer import Trainer


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_runs_two_iterations_with_unequal_quantities(tiny_config, name):
    trainer = Trainer(replace(tiny_config, method=name))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert trainer.run_iterations(2, {"strong": 8, "weak": 24}) == 2
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, f"{name} did not update any parameter"
    assert all(math.isfinite(v) for v in trainer.pop_train_losses().values())


def test_method_configs_carry_their_paper_defaults():
    assert method_config("ogm_ge").alpha == 0.8
    assert method_config("ogm_ge").modulation_ends == 50
    assert method_config("concat").unimodal_weight == 0.0
    assert method_config("joint").unimodal_weight == 1.0
    with pytest.raises(ConfigError, match="no field"):
        method_config("joint", {"gamma": 1})
    with pytest.raises(ConfigError, match="unknown method 'pmr'"):
        method_config("pmr")


def test_ogm_coefficients_follow_the_authors_rule():
    k = modulation_coefficients({"a": 30.0, "v": 10.0}, alpha=0.8)
    assert k["v"] == 1.0
    assert k["a"] == pytest.approx(1 - math.tanh(0.8 * 3.0))
    # M > 2: every modality is compared with the weakest one
    k3 = modulation_coefficients({"a": 4.0, "b": 2.0, "c": 1.0}, alpha=0.5)
    assert k3["c"] == 1.0
    assert k3["b"] == pytest.approx(1 - math.tanh(1.0)) and k3["a"] == pytest.approx(1 - math.tanh(2.0))


def test_ogm_scales_only_the_dominant_encoder_gradients(tiny_config):
    cfg = replace(tiny_config, method="ogm_ge", method_options={"modulation": "OGM"})
    plain = Trainer(replace(tiny_config, method="concat"))
    ogm = Trainer(cfg)
    ogm.model.load_state_dict(plain.model.state_dict())
    q = {"strong": 32, "weak": 32}
    batch = plain._batch(q)
    grads = {}
    for name, tr in (("plain", plain), ("ogm", ogm)):
        tr.optimizer.zero_grad()
        result = tr.method.train_step(batch)
        grads[name] = {m: [p.grad.clone() for p in tr.model.encoders[m].parameters() if p.dim() >= 2] for m in q}
    k = modulation_coefficients(ogm.method.scores(result.output, batch), 0.8)
    for m in q:
        for g_plain, g_ogm in zip(grads["plain"][m], grads["ogm"][m]):
            assert torch.allclose(g_ogm, g_plain * k[m], atol=1e-6)
    assert max(k.values()) == 1.0 and min(k.values()) < 1.0  # only the dominant one is slowed


def test_concat_monitor_heads_leave_encoders_to_the_fusion_loss(tiny_config):
    tr = Trainer(replace(tiny_config, method="concat"))
    batch = tr._batch({"strong": 16, "weak": 16})
    out = tr.method.forward(batch)
    losses = tr.method.losses(out, batch)
    assert set(losses) == {"fused", "monitor/strong", "monitor/weak"}
    sum(v for k, v in losses.items() if k.startswith("monitor")).backward()
    assert all(p.grad is None for p in tr.model.encoders.parameters())
