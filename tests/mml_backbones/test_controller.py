"""DUSController and the nested-prefix helpers: DUS in a user's own training loop."""

from __future__ import annotations

import ast
import contextlib
import copy
import io
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import mml_backbones
from mml_backbones import DUSController, nested_prefixes, true_class_score, unimodal_losses
from mml_backbones.errors import ConfigError
from mml_backbones.methods.base import IterationBatch, unimodal_loss
from mml_backbones.models.model import ModelOutput
from mml_backbones.statistics import StatisticsConfig

ROOT = Path(__file__).resolve().parents[2]
POLICY_2 = "benchmarks/archive_v0/results/policies/DUS-v0_ppo/policy.zip"
POLICY_3 = "benchmarks/archive_v0/results/policies/DUS-ThreeModal-v0_ppo/policy.zip"


class CountingSampler:
    """Records the iteration of every call and answers fixed quantities."""

    def __init__(self, answer=None) -> None:
        self.calls: list[int] = []
        self.answer = answer

    def __call__(self, observation):
        self.calls.append(observation.iteration)
        if self.answer is not None:
            return self.answer
        return dict.fromkeys(observation.modalities, observation.nominal_batch_size)


def hand_score(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean true-class softmax probability, written out."""
    rows = logits.tolist()
    probs = [math.exp(r[y]) / sum(math.exp(v) for v in r) for r, y in zip(rows, labels.tolist())]
    return sum(probs) / len(probs)


def test_running_mean_matches_a_hand_computation():
    gen = torch.Generator().manual_seed(0)
    c = DUSController(["a", "b"], batch_size=4)
    expected = {"a": [], "b": []}
    for _ in range(3):
        q = c.quantities()
        labels = torch.randint(0, 3, (4,), generator=gen)
        logits = {m: torch.randn(q[m], 3, generator=gen) for m in ("a", "b")}
        scores = c.update(logits, labels)
        for m in ("a", "b"):
            expected[m].append(hand_score(logits[m], labels))
            assert scores[m] == pytest.approx(expected[m][-1])
    # S_t = ((t-1)/t) S_{t-1} + s_t/t is the plain mean of s_1..s_t
    assert c.statistics.cumulative == pytest.approx([np.mean(expected["a"]), np.mean(expected["b"])])
    assert c.iteration == 3 and c.statistics.samples.tolist() == [12, 12]
    assert c.observation().cumulative == pytest.approx(c.statistics.cumulative)


def test_update_forms_agree_and_unscored_modalities_keep_their_statistic():
    logits = {"a": torch.tensor([[2.0, 0.0], [0.0, 1.0]]), "b": torch.tensor([[0.0, 0.0], [3.0, 0.0], [1.0, 1.0]])}
    chunk = torch.tensor([0, 1, 0])
    q = {"a": 2, "b": 3}
    one, two, three = (DUSController(["a", "b"], batch_size=2) for _ in range(3))
    one.update(logits, chunk, q)
    two.update(logits, {"a": chunk[:2], "b": chunk}, q)
    probs = {m: torch.softmax(x, -1).gather(1, chunk[: len(x), None]).squeeze(1) for m, x in logits.items()}
    three.update_probabilities(probs, q)
    for c in (two, three):
        assert c.statistics.cumulative == pytest.approx(one.statistics.cumulative)
    assert true_class_score(logits["a"], chunk[:2]) == pytest.approx(hand_score(logits["a"], chunk[:2]))
    before = one.statistics.cumulative.copy()
    one.update_scores({"b": 0.0}, q)  # "a" not run this iteration: not scored
    assert one.statistics.cumulative[0] == before[0] and one.statistics.cumulative[1] == pytest.approx(before[1] / 2)
    assert one.statistics.samples.tolist() == [4, 6]


def test_sampler_is_called_exactly_every_decision_interval():
    stub = CountingSampler({"a": 3, "b": 5})
    c = DUSController(["a", "b"], sampler=stub, batch_size=4, decision_interval=3)
    for _ in range(10):
        assert c.quantities() == {"a": 3, "b": 5}
        c.quantities()  # asking twice in one iteration does not call the sampler again
        c.update_scores({"a": 0.5, "b": 0.5})
    assert stub.calls == [0, 3, 6, 9] and c.sampler_calls == 4
    assert c.decision_due is False
    c.update_scores({"a": 0.5})
    assert c.decision_due is False  # iteration 11: inside the decision made at 9
    c.update_scores({"a": 0.5})
    assert c.decision_due is True
    c.set_quantities([2, 2])  # imposed quantities (the environment's action) hold for a whole interval
    for _ in range(3):
        assert c.quantities() == {"a": 2, "b": 2}
        c.update_scores({})
    c.quantities()
    assert stub.calls[-1] == 15


def test_heuristic_gives_more_samples_to_the_modality_with_the_lower_score():
    c = DUSController(["a", "b"], sampler="heuristic:gamma=2,budget=free", batch_size=64, decision_interval=1)
    assert c.quantities() == {"a": 64, "b": 64}  # no statistics yet: ratio 1
    c.update_scores({"a": 0.8, "b": 0.4})
    q = c.quantities()
    assert q["b"] > 64 > q["a"]
    ratio = c.observation().ratio
    assert q == {m: round(64 * r**-2) for m, r in zip("ab", ratio)}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"a": float("nan"), "b": 4}, "finite"),
        ({"a": 4, "c": 4}, "unknown modality"),
        ({"a": 4}, "miss"),
        ({"a": 0, "b": 4}, ">= 1"),
        ({"a": 17, "b": 4}, "above the maximum 16"),
        ([4, 4, 4], "expected 2 quantities"),
        ({"a": 2.5, "b": 4}, "integer"),
    ],
)
def test_bad_sampler_output_is_refused(answer, message):
    c = DUSController(["a", "b"], sampler=CountingSampler(answer), batch_size=4)
    with pytest.raises(ConfigError, match=message):
        c.quantities()
    with pytest.raises(ConfigError, match=message):
        c.update_scores({"a": 0.5}, answer)  # quantities passed by hand are checked the same way


def test_construction_errors():
    with pytest.raises(ConfigError, match="unknown sampler"):
        DUSController(["a", "b"], sampler="nonsense")
    with pytest.raises(ConfigError, match="decision_interval"):
        DUSController(["a", "b"], decision_interval=0)
    with pytest.raises(ConfigError, match="distinct"):
        DUSController(["a", "a"])
    c = DUSController(["a", "b"])
    with pytest.raises(ConfigError, match="call quantities"):
        c.update_scores({"a": 0.5})
    with pytest.raises(ConfigError, match="unknown modality"):
        c.update_scores({"z": 0.5}, {"a": 1, "b": 1})


def test_state_dict_round_trip_continues_identically():
    gen = np.random.default_rng(0)
    scores = [{"a": float(x), "b": float(y)} for x, y in gen.uniform(0.1, 0.9, (20, 2))]
    config = StatisticsConfig(kind="window", window=4)
    kwargs = dict(sampler="heuristic:gamma=2", batch_size=16, decision_interval=3, total_iterations=20)
    a = DUSController(["a", "b"], statistics=config, **kwargs)
    for s in scores[:7]:  # stop inside a decision interval
        a.quantities()
        a.update_scores(s)
    b = DUSController(["a", "b"], statistics=config, **kwargs)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    for s in scores[7:]:
        assert a.quantities() == b.quantities()
        a.update_scores(s)
        b.update_scores(s)
        assert np.array_equal(a.statistics.cumulative, b.statistics.cumulative)
    assert a.sampler_calls == b.sampler_calls and a.iteration == b.iteration == 20
    assert a.observation().progress == 1.0
    with pytest.raises(ConfigError, match="modalities"):
        DUSController(["x", "y"]).load_state_dict(a.state_dict())


def test_unimodal_losses_are_summed_cross_entropy_over_b():
    logits = {"a": torch.zeros(3, 2), "b": torch.tensor([[1.0, 0.0]])}
    labels = torch.tensor([1, 0, 1])
    losses = unimodal_losses(logits, labels, {"a": 3, "b": 1}, batch_size=4)
    assert losses["a"].item() == pytest.approx(3 * math.log(2) / 4)
    assert losses["b"].item() == pytest.approx(math.log(math.e + 1) / 4)  # label 1: p = 1 / (e + 1)
    per_modality = unimodal_losses(logits, {"a": labels, "b": labels[:1]}, None, batch_size=4)
    assert all(per_modality[m].item() == pytest.approx(losses[m].item()) for m in logits)
    # the Trainer's methods use the same function
    batch = IterationBatch(inputs={}, labels=labels, quantities={"a": 3, "b": 1}, n_paired=1, nominal_batch_size=4)
    output = ModelOutput(fused_logits=None, unimodal_logits=logits, features={})
    assert unimodal_loss(output, batch, "a").item() == pytest.approx(losses["a"].item())
    with pytest.raises(ConfigError, match="n_m = 2"):
        unimodal_losses(logits, labels, {"a": 2, "b": 1}, batch_size=4)


def test_nested_prefixes_slices_the_chunk_and_refuses_a_short_one():
    x = {"a": torch.arange(10.0)[:, None].repeat(1, 3), "b": torch.arange(10.0)[:, None]}
    labels = torch.arange(10)
    inputs, per_modality, n_paired = nested_prefixes(x, labels, {"a": 4, "b": 7})
    assert inputs["a"].shape == (4, 3) and inputs["b"].shape == (7, 1) and n_paired == 4
    assert per_modality["a"].tolist() == [0, 1, 2, 3] and per_modality["b"].tolist() == list(range(7))
    assert torch.equal(inputs["b"][:n_paired, 0], inputs["a"][:, 0])  # the paired prefix is the same samples
    with pytest.raises(ConfigError, match=r"max_m n_m = 12.*too short"):
        nested_prefixes(x, labels, {"a": 4, "b": 12})
    with pytest.raises(ConfigError, match="miss"):
        nested_prefixes(x, labels, {"a": 4})


def test_learned_policy_for_another_number_of_modalities_is_refused():
    with pytest.raises(ConfigError, match="trained for 2 modalities"):
        DUSController(["a", "b", "c"], sampler=f"policy:{POLICY_2}")
    with pytest.raises(ConfigError, match="trained for 3 modalities"):
        DUSController(["a", "b"], sampler=f"policy:{POLICY_3}")
    c = DUSController(["x", "y"], sampler=f"policy:{POLICY_2}", batch_size=32, total_iterations=100)
    q = c.quantities()
    assert set(q) == {"x", "y"} and all(1 <= n <= c.max_quantity for n in q.values())


def test_a_sampler_that_reads_the_decision_context_warns_a_users_loop():
    class ReadsEveryDecision:
        validation_context = "decision"

        def __call__(self, observation):
            return {m: 32 for m in observation.modalities}

    with pytest.warns(UserWarning, match="record_validation"):
        DUSController(["x", "y"], sampler=ReadsEveryDecision(), batch_size=32, total_iterations=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DUSController(["x", "y"], sampler="uniform", batch_size=32, total_iterations=100)


def test_controller_imports_nothing_from_the_higher_layers():
    tree = ast.parse(Path(mml_backbones.controller.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    top = {name.split(".")[0] for name in names}
    assert not top & {"agents", "dus_env", "gymnasium", "stable_baselines3"}


def readme_example() -> tuple[str, str]:
    """The README's own-loop example (the python block that builds a DUSController) and the output block after it."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"```python\n((?:(?!```).)*?DUSController\((?:(?!```).)*?)```\s*```text\n(.*?)```", text, re.S)
    assert match, "the README needs a python block with a DUSController followed by its output block"
    return match.group(1), match.group(2)


def test_readme_example_runs_and_prints_what_the_readme_shows(monkeypatch):
    code, shown = readme_example()
    assert len(code.splitlines()) <= 45
    assert '"policy:benchmarks/results/policies_v1/' in code and "controller.update(" in code  # a v1 policy
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "__main__"})
    printed = out.getvalue()
    pattern = r" *(uniform|heuristic|policy) iteration \d+: n = \{'audio': \d+, 'video': \d+\}, S = \[[\d. ]+\]"
    lines = printed.strip().splitlines()
    assert lines and all(re.fullmatch(pattern, line) for line in lines), printed
    # uniform is printed beside the policy, and the policy moves samples to the weak modality (video)
    n = {line.split()[0]: ast.literal_eval(line.split("n = ")[1].split(", S")[0]) for line in lines}
    assert n["uniform"] == {"audio": 64, "video": 64} and n["policy"]["video"] > 96
    # the example seeds everything and is deterministic on CPU: the output is the README's, exactly
    assert printed.strip() == shown.strip()
