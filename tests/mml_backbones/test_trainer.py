import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mml_backbones.config import replace
from mml_backbones.errors import ConfigError, DataError
from mml_backbones.trainer import Trainer, TrainerConfig


def test_nested_prefix_sampling(tiny_config):
    tr = Trainer(tiny_config)
    state = tr.stream.state_dict()
    batch = tr._batch({"strong": 8, "weak": 24})
    tr.stream.load_state_dict(state)
    idx = torch.from_numpy(tr.stream.take(24))
    data = tr.train_data.modalities
    assert torch.equal(batch.inputs["weak"], data["weak"][idx])
    assert torch.equal(batch.inputs["strong"], data["strong"][idx[:8]])  # the first 8 of the same samples
    assert batch.n_paired == 8 and torch.equal(batch.paired_labels, tr.train_data.labels[idx[:8]])


def test_stream_visits_every_sample_once_per_pass(tiny_config):
    tr = Trainer(tiny_config)
    n = len(tr.train_data)
    first = tr.stream.take(n - 5)
    rest = tr.stream.take(10)
    assert sorted(np.concatenate([first, rest[:5]]).tolist()) == list(range(n))
    assert tr.stream.passes == 1


def test_unimodal_loss_uses_n_m_samples_normalised_by_B(tiny_config):
    tr = Trainer(replace(tiny_config, method="joint"))
    batch = tr._batch({"strong": 8, "weak": 24})
    out = tr.method.forward(batch)
    losses = tr.method.losses(out, batch)
    expected = F.cross_entropy(out.unimodal_logits["weak"], batch.labels_of("weak"), reduction="sum") / 32
    assert out.unimodal_logits["weak"].shape[0] == 24
    assert torch.allclose(losses["unimodal/weak"], expected)
    assert torch.allclose(losses["fused"], F.cross_entropy(out.fused_logits, batch.labels[:8]))


def test_statistic_is_the_running_mean_of_true_class_scores(tiny_config):
    tr = Trainer(tiny_config)
    seen = []
    original = tr.statistics.update

    def spy(scores, q, *losses):
        seen.append([scores[m] for m in tr.modalities])
        original(scores, q, *losses)

    tr.statistics.update = spy
    tr.run_iterations(5, {"strong": 16, "weak": 32})
    assert np.allclose(tr.statistics.cumulative, np.mean(seen, axis=0))
    assert tr.statistics.samples.tolist() == [80, 160]
    obs = tr.observation()
    assert np.allclose(obs.ratio, obs.cumulative / obs.cumulative.mean())
    assert obs.progress == pytest.approx(5 / tr.total_iterations)


@pytest.mark.parametrize(
    ("quantities", "message"),
    [
        ({"strong": 8}, "miss modality"),
        ({"strong": 8, "weak": 8, "audio": 8}, "unknown modality"),
        ([8], "expected 2 quantities"),
        ([8, float("nan")], "must be finite"),
        ([8, 0], "must be >= 1"),
        ([8, 2.5], "integer number"),
        ([8, 10_000], "above the maximum"),
    ],
)
def test_bad_quantities_are_rejected(tiny_config, quantities, message):
    with pytest.raises(ConfigError, match=message):
        Trainer(tiny_config).run_iterations(1, quantities)


def test_same_seed_same_numbers_even_when_interleaved(tiny_config):
    def run(trainers):
        for _ in range(3):
            for t in trainers:
                t.run_iterations(4, [16, 32])
        return [t.evaluate("val")["fused_acc"] for t in trainers], [t.statistics.cumulative for t in trainers]

    (alone,), (s_alone,) = run([Trainer(tiny_config)])
    (a, b), (s_a, _) = run([Trainer(tiny_config), Trainer(replace(tiny_config, seed=5))])
    assert alone == a and np.array_equal(s_alone, s_a)
    (c,), _ = run([Trainer(replace(tiny_config, seed=5))])
    assert c == b


def test_evaluate_reports_fused_unimodal_and_probe_metrics(tiny_config):
    tr = Trainer(tiny_config)
    tr.run_iterations(10, [32, 32])
    res = tr.evaluate(["val", "test"], probe=True)
    for split in ("val", "test"):
        keys = set(res[split])
        assert {"fused_acc", "macro_f1", "map", "acc/strong", "acc/weak", "probe/strong", "probe/weak"} <= keys
        assert all(0.0 <= v <= 1.0 for v in res[split].values())
    # the whole test split is scored (no drop_last)
    pred, _ = tr.predict("test")
    assert len(pred.labels) == len(tr.splits.test)


class CrashAfter:
    """A uniform sampler that raises after ``n`` decisions (a simulated interruption)."""

    def __init__(self, n):
        self.n = n

    def __call__(self, obs):
        self.n -= 1
        if self.n < 0:
            raise KeyboardInterrupt
        return {m: 16 + 8 * i for i, m in enumerate(obs.modalities)}


@pytest.mark.parametrize("method", ["joint", "ogm_ge"])
def test_resume_gives_the_same_result_as_an_uninterrupted_run(tiny_config, tmp_path, method):
    cfg = replace(tiny_config, method=method, epochs=3)
    full = Trainer(cfg).fit(CrashAfter(10**6), run_dir=tmp_path / "full", progress=False)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg).fit(CrashAfter(6), run_dir=tmp_path / "cut", progress=False)  # dies inside epoch 2
    assert len((tmp_path / "cut" / "metrics.csv").read_text().splitlines()) == 2  # header + epoch 1
    resumed = Trainer(cfg).fit(CrashAfter(10**6), run_dir=tmp_path / "cut", resume=True, progress=False)
    assert resumed.test == full.test and resumed.best_epoch == full.best_epoch
    a = (tmp_path / "full" / "metrics.csv").read_text().splitlines()
    b = (tmp_path / "cut" / "metrics.csv").read_text().splitlines()
    drop_seconds = lambda lines: [",".join(line.split(",")[:-1]) for line in lines]  # noqa: E731
    assert drop_seconds(a) == drop_seconds(b)
    assert (tmp_path / "full" / "decisions.csv").read_text() == (tmp_path / "cut" / "decisions.csv").read_text()


def test_run_directory_contents(tiny_config, tmp_path):
    result = Trainer(tiny_config).fit(run_dir=tmp_path, progress=False)
    config = json.loads((tmp_path / "config.json").read_text())
    assert TrainerConfig.from_dict(config["trainer"]) == tiny_config.resolved()
    assert config["dataset"]["bayes_accuracy"]["all"] > 0.8
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 1 + tiny_config.epochs
    final = json.loads((tmp_path / "final.json").read_text())
    assert final["best_epoch"] == result.best_epoch and final["test"] == pytest.approx(result.test)
    assert (tmp_path / "checkpoints" / "best.pt").is_file()
    assert math.isfinite(final["seconds_per_epoch"])


def test_resume_refuses_a_checkpoint_of_other_settings(tiny_config, tmp_path):
    Trainer(tiny_config).fit(run_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="different settings"):
        Trainer(replace(tiny_config, batch_size=16)).fit(run_dir=tmp_path, resume=True, progress=False)
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"torn")
    with pytest.raises(DataError, match="cannot read checkpoint"):
        Trainer(tiny_config).fit(run_dir=tmp_path, resume=True, progress=False)


def test_unimodal_baseline_trains_one_modality(tiny_config):
    tr = Trainer(replace(tiny_config, modalities=("weak",)))
    assert tr.modalities == ("weak",) and list(tr.model.encoders) == ["weak"]
    with pytest.raises(DataError, match="unknown modality"):
        Trainer(replace(tiny_config, modalities=("smell",)))


def test_bad_trainer_configs_are_named():
    with pytest.raises(ConfigError, match="batch_size"):
        TrainerConfig(batch_size=0)
    with pytest.raises(ConfigError, match="observation feature"):
        TrainerConfig(observation_features=("gradient",))
    with pytest.raises(ConfigError, match="no field"):
        TrainerConfig.from_dict({"epochz": 3})
