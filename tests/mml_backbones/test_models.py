import pytest
import torch

from mml_backbones.data import MultimodalDataset
from mml_backbones.errors import ConfigError
from mml_backbones.models import ENCODERS, FUSIONS, ModelConfig, build_encoder, build_fusion, build_model

SHAPES = {"mlp": (7,), "cnn1d": (3, 32), "resnet2d": (1, 16, 16)}
OPTIONS = {"resnet2d": {"width": 4}}


@pytest.mark.parametrize("name", [n for n in ENCODERS.names() if n in SHAPES])
def test_every_encoder_maps_a_batch_to_finite_features(name):
    enc = build_encoder(name, SHAPES[name], feature_dim=12, **OPTIONS.get(name, {}))
    out = enc(torch.randn(5, *SHAPES[name]))
    assert out.shape == (5, 12) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="expects inputs of shape"):
        enc(torch.randn(5, 99))


def test_resnet_averages_frames_of_a_clip():
    enc = build_encoder("resnet2d", (3, 3, 16, 16), feature_dim=8, width=4).eval()
    clip = torch.randn(2, 3, 3, 16, 16)
    out = enc(clip)
    assert out.shape == (2, 8)
    # the same frame repeated gives the single-frame features
    single = build_encoder("resnet2d", (3, 16, 16), feature_dim=8, width=4).eval()
    single.load_state_dict(enc.state_dict())
    rep = clip[:, :1].repeat(1, 3, 1, 1, 1)
    assert torch.allclose(enc(rep), single(clip[:, 0]), atol=1e-5)


@pytest.mark.parametrize("name", FUSIONS.names())
def test_every_fusion_has_the_same_signature_and_finite_output(name):
    dims = {"a": 6, "b": 4, "c": 5}
    fusion = build_fusion(name, dims)
    feats = {m: torch.randn(3, 10 if name == "late" else d) for m, d in dims.items()}
    out = fusion(feats)
    assert out.shape[0] == 3 and torch.isfinite(out).all()
    if not fusion.consumes_logits:
        assert out.shape[1] == fusion.output_dim


@pytest.mark.parametrize("name", ["concat", "sum"])
def test_additive_fusions_split_the_fused_logits_into_modality_parts(name):
    dims = {"a": 6, "b": 4}
    fusion = build_fusion(name, dims)
    head = torch.nn.Linear(fusion.output_dim, 3)
    feats = {m: torch.randn(5, d) for m, d in dims.items()}
    parts = fusion.contributions(feats, head)
    assert torch.allclose(sum(parts.values()), head(fusion(feats)), atol=1e-5)


def dataset():
    return MultimodalDataset({"a": torch.randn(8, 5), "b": torch.randn(8, 2, 16)}, torch.arange(8) % 3, "xyz")


def test_model_accepts_different_batch_sizes_per_modality():
    model = build_model(ModelConfig(feature_dim=8), dataset())
    out = model({"a": torch.randn(6, 5), "b": torch.randn(3, 2, 16)}, n_paired=3)
    assert out.unimodal_logits["a"].shape == (6, 3)
    assert out.unimodal_logits["b"].shape == (3, 3)
    assert out.fused_logits.shape == (3, 3)
    with pytest.raises(ValueError, match="exceeds"):
        model({"a": torch.randn(6, 5), "b": torch.randn(3, 2, 16)}, n_paired=4)


def test_default_encoders_follow_the_input_shape_and_can_be_overridden():
    model = build_model(ModelConfig(), dataset())
    assert type(model.encoders["a"]).__name__ == "MLPEncoder"
    assert type(model.encoders["b"]).__name__ == "Conv1dEncoder"
    model = build_model(ModelConfig(encoders={"b": "mlp"}), dataset())
    assert type(model.encoders["b"]).__name__ == "MLPEncoder"


def test_detached_heads_send_no_gradient_to_encoders():
    model = build_model(ModelConfig(feature_dim=8), dataset())
    out = model({"a": torch.randn(4, 5), "b": torch.randn(4, 2, 16)}, detach_unimodal=True)
    out.unimodal_logits["a"].sum().backward()
    assert all(p.grad is None for p in model.encoders["a"].parameters())
    assert model.heads["a"].weight.grad is not None


def test_bad_model_configs_are_named():
    with pytest.raises(ConfigError, match="unknown encoder 'vit'"):
        build_model(ModelConfig(encoder="vit"), dataset())
    with pytest.raises(ConfigError, match="unknown fusion"):
        build_model(ModelConfig(fusion="attention"), dataset())
    with pytest.raises(ConfigError, match="unknown modalities"):
        build_model(ModelConfig(encoders={"z": "mlp"}), dataset())
    with pytest.raises(ConfigError, match="bad options"):
        build_model(ModelConfig(encoder_options={"*": {"depth": 3}}), dataset())
