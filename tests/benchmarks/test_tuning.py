"""dus tune: end to end on the tiny world, resume after a kill, refusals, Ray equals local."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from agents.demo import COMMITTED_POLICY
from benchmarks.tuning.cli import DEFAULT_ROWS
from benchmarks.tuning.rows import check_knobs, parse_row, preflight
from benchmarks.tuning.space import SharedSpace, space_with
from benchmarks.tuning.study import run_trial, tune
from benchmarks.tuning.worlds import resolve_world
from dus_env.seeds import purpose_of
from mml_backbones.cli import main as dus
from mml_backbones.errors import ConfigError

TINY = "dus_env/DUS-Tiny-v1"
ROOT = Path(__file__).resolve().parents[2]


def fake_trial(cell):
    """A trial without training: its value a fixed function of the configuration and the seed."""
    o = cell.trainer["optim"]
    value = 0.5 + 0.1 * math.sin(3 * math.log(o["lr"]) + 0.01 * cell.seed) - 0.01 * (o["name"] == "adamw")
    return {"value": value, "seconds": 0.0}


class KilledAfter:
    """Runs ``k`` fake trials, then dies the way Ctrl-C or a kill does (nothing is told for the trial running)."""

    def __init__(self, k):
        self.k, self.calls = k, 0

    def __call__(self, cell):
        if self.calls == self.k:
            raise KeyboardInterrupt
        self.calls += 1
        return fake_trial(cell)


def studies_of(out, rows=("joint", "joint+heuristic")):
    import optuna

    url = f"sqlite:///{Path(out).resolve() / 'studies.db'}"
    return {r: optuna.load_study(study_name=r, storage=url) for r in rows}


def by_slot(study):
    from optuna.trial import TrialState

    done = study.get_trials(states=(TrialState.COMPLETE,))
    return {t.user_attrs["slot"]: (t.params, t.value) for t in done}


def setup(rows=("joint", "joint+heuristic"), knobs=None):
    space = space_with(SharedSpace(), knobs)
    return resolve_world(TINY), [parse_row(r, space) for r in rows], space


def test_dus_tune_runs_end_to_end_on_the_tiny_world(tmp_path):
    out = tmp_path / "tiny"
    rows = "joint,joint+heuristic"
    assert (
        dus(["tune", TINY, "--rows", rows, "--trials", "2", "--retrain", "2", "--out", str(out), "--no-progress"]) == 0
    )
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 4 and (trials["state"] == "COMPLETE").all()
    assert trials["value"].between(0, 1).all() and (trials["seconds"] > 0).all()
    assert {purpose_of(s) for s in trials["seed"]} == {"tuning"}  # never a downstream or evaluation seed
    paper = trials[trials["slot"] == 0].set_index("row")
    # trial 0 of each row is its paper default: SGD 1e-3, weight decay 1e-4, the heuristic's gamma 2
    assert (paper["optimizer"] == "sgd").all() and (paper["lr"] == 1e-3).all() and (paper["weight_decay"] == 1e-4).all()
    assert paper.loc["joint+heuristic", "heuristic.gamma"] == 2.0 and paper["paper_default"].all()
    retrained = pd.read_csv(out / "retrain.csv")
    assert retrained["group"].value_counts().to_dict() == {
        f"{r}|{w}": 2 for r in ("joint", "joint+heuristic") for w in ("tuned", "untuned")
    }
    assert {purpose_of(s) for s in retrained["seed"]} == {"downstream"}
    tuned = retrained[retrained["group"] == "joint|tuned"].iloc[0]
    best = trials[trials["row"] == "joint"].sort_values(["value", "slot"], ascending=[False, True]).iloc[0]
    assert tuned["val/fused_acc"] >= 0 and not pd.isna(tuned["test/fused_acc"])
    report = (out / "report.md").read_text()
    assert "tuned vs tuned joint" in report and "Not distinguishable" in report and "fANOVA" in report
    assert f"{best['optimizer']} lr {best['lr']:.1e}" in report  # the chosen configuration is shown
    assert (out / "search.png").stat().st_size > 0
    # --report rebuilds the same report from what the folder holds, running nothing
    before = (out / "retrain.csv").read_text()
    assert dus(["tune", TINY, "--rows", rows, "--trials", "2", "--retrain", "2", "--out", str(out), "--report"]) == 0
    assert (out / "retrain.csv").read_text() == before and (out / "report.md").read_text() == report


def test_validation_only_fit_never_reads_the_test_split(tiny_config, forbid_test_split):
    from mml_backbones.config import replace
    from mml_backbones.trainer import Trainer

    trainer = Trainer(replace(tiny_config, epochs=1))
    forbid_test_split(trainer)
    result = trainer.fit(progress=False, validation_only=True)
    assert result.test == {} and 0 <= result.val["fused_acc"] <= 1 and "probe/weak" not in result.val


def test_a_real_trial_scores_validation_of_the_kept_epoch():
    world, rows, space = setup(("joint",))
    cell = rows[0].cell(world, rows[0].paper_params(space), space, 50_000, "joint")
    out = run_trial(cell)
    assert out["value"] == out["val/fused_acc"] and out["best_epoch"] == 1 and out["seconds"] > 0


def test_a_killed_search_resumes_without_duplicates_and_keeps_the_finished_trials(tmp_path):
    world, rows, space = setup()
    with pytest.raises(KeyboardInterrupt):
        tune(tmp_path / "cut", world, rows, space, trials=5, runner=KilledAfter(5), progress=False)
    before = {r: by_slot(s) for r, s in studies_of(tmp_path / "cut").items()}
    assert sum(len(v) for v in before.values()) == 5  # rows take turns: joint has slots 0-2, the other 0-1
    tune(tmp_path / "cut", world, rows, space, trials=5, runner=fake_trial, progress=False)
    tune(tmp_path / "straight", world, rows, space, trials=5, runner=fake_trial, progress=False)
    for row, study in studies_of(tmp_path / "cut").items():
        numbers = [t.number for t in study.trials]
        assert len(numbers) == len(set(numbers))
        after = by_slot(study)
        assert sorted(after) == list(range(5))  # the whole budget, once per slot
        assert all(after[slot] == kept for slot, kept in before[row].items())  # finished trials kept as they were
        interrupted = [t for t in study.trials if t.state.name == "FAIL" and "error" not in t.user_attrs]
        assert len(interrupted) == (1 if row == "joint+heuristic" else 0)
        for t in interrupted:  # rerun on its slot with its parameters
            assert after[t.user_attrs["slot"]][0] == t.params
        # an interruption changes nothing: the same study as a run that was never killed
        assert after == by_slot(studies_of(tmp_path / "straight")[row])


def test_more_trials_extend_a_finished_search(tmp_path):
    world, rows, space = setup(("joint",))
    tune(tmp_path, world, rows, space, trials=3, runner=fake_trial, progress=False)
    first = by_slot(studies_of(tmp_path, ("joint",))["joint"])
    tune(tmp_path, world, rows, space, trials=5, runner=fake_trial, progress=False)
    after = by_slot(studies_of(tmp_path, ("joint",))["joint"])
    assert sorted(after) == list(range(5)) and all(after[s] == first[s] for s in first)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "jont"], "unknown method 'jont'; valid:"),
        (["--rows", "joint+heuristc"], "unknown sampler 'heuristc'"),
        (["--rows", "joint,joint"], "names a row twice"),
        (["--rows", "joint+heuristic:gamma=3"], "as knobs"),
        (["--rows", "ogm_ge", "--knob", "ogm_ge.beta=0:1"], "ogm_ge has no field 'beta'; numeric fields: alpha"),
        (["--rows", "ogm_ge", "--knob", "ogm_ge.modulation=0:1"], "modulation is not numeric"),
        (["--rows", "ogm_ge", "--knob", "ogm_ge.alpha=-1:1"], "alpha must be >= 0"),
        (["--rows", "mie", "--knob", "mie.beta=0:1.5"], "beta must be in [0, 1]"),
        (["--rows", "joint+heuristic", "--knob", "heuristic.gamma=-2:2"], "gamma must be >= 0"),
        (["--rows", "joint", "--knob", "mie.rho=0.01:0.1"], "neither the method nor the sampler of any row"),
        (["--rows", "ogm_ge", "--knob", "ogm_ge.alpha=1:2"], "default 0.8 lies outside [1, 2]"),
        (["--rows", "ogm_ge", "--knob", "ogm_ge.alpha=2:1"], "needs LOW < HIGH"),
        (["--rows", "ogm_ge", "--knob", "ogm_ge.alpha=0:1:log"], "a log range needs LOW > 0"),
        (["--rows", "joint", "--lr", "1e-2:1e-1"], "paper lr 0.001 lies outside --lr"),
        (["--rows", "remix", "--optimizers", "sgd"], "paper optimiser adam is not in --optimizers sgd"),
        (["--rows", "joint", "--optimizers", "adam"], "not in the shared space"),
        (["--rows", "joint", "--trials", "0"], "--trials must be >= 1"),
        (["--rows", "ogm_ge", "--retrain", "3"], "add it to --rows"),
    ],
)
def test_a_space_or_row_it_cannot_run_is_refused_in_one_line(args, message, capsys):
    assert dus(["tune", TINY, *args, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("dus: error:") and message in err


def test_unknown_worlds_and_bad_world_files_are_refused(tmp_path, capsys):
    assert dus(["tune", "moon", "--dry-run"]) == 2
    assert "unknown world 'moon'" in capsys.readouterr().err
    bad = tmp_path / "w.json"
    bad.write_text(json.dumps({"dataset": "synthetic", "optim": {"name": "sgd"}}))
    assert dus(["tune", str(bad), "--dry-run"]) == 2
    assert "the tuner chooses these" in capsys.readouterr().err


def test_a_policy_for_another_number_of_modalities_is_refused_before_any_trial(tmp_path):
    world_file = tmp_path / "three.json"
    options = {"preset": "three_modal", "n_train": 64, "n_val": 32, "n_test": 32}
    world_file.write_text(json.dumps({"dataset": "synthetic", "dataset_options": options, "epochs": 1}))
    space = SharedSpace()
    rows = [parse_row(f"joint+policy:{ROOT / COMMITTED_POLICY}", space)]
    with pytest.raises(ConfigError, match="trained for 2 modalities"):
        preflight(resolve_world(str(world_file)), rows, space)


def test_a_resumed_study_must_use_the_same_space(tmp_path):
    world, rows, space = setup(("joint",))
    tune(tmp_path, world, rows, space, trials=1, runner=fake_trial, progress=False)
    _, rows, other = setup(("joint",))
    other = SharedSpace(lr=(1e-4, 1e-1))
    with pytest.raises(ConfigError, match="made with another world, search space or seed"):
        tune(tmp_path, world, [parse_row("joint", other)], other, trials=2, runner=fake_trial, progress=False)


def test_every_default_row_has_its_paper_point_inside_the_space():
    space = SharedSpace()
    rows = [parse_row(r, space) for r in DEFAULT_ROWS]
    check_knobs(rows, space)
    remix = next(r for r in rows if r.method == "remix").paper_params(space)
    # Remix's released Adam 5e-5 is counted as AdamW, the decoupled form the space holds
    assert remix["optimizer"] == "adamw" and remix["lr"] == 5e-5 and remix["remix.warmup_epochs"] == 10
    assert next(r for r in rows if r.method == "mie").paper_params(space)["lr"] == 1e-2


def test_a_policy_choice_becomes_a_knob():
    space = SharedSpace()
    row = parse_row("joint+policy:a/run1/best/best_model.zip|b/run2/best/best_model.zip", space)
    assert row.label == "joint+policy:{run1, run2}"
    assert row.paper_params(space)["policy.path"] == "a/run1/best/best_model.zip"
    assert row.sampler_spec({"policy.path": "b/run2/best/best_model.zip"}) == "policy:b/run2/best/best_model.zip"


def test_ray_and_local_trials_give_the_same_study(tmp_path, ray_session):
    world, rows, space = setup(("joint+heuristic",))
    # one local worker against two Ray tasks at once: the study depends on neither (batch 2 for both)
    tune(tmp_path / "local", world, rows, space, trials=3, batch=2, workers=1, progress=False)
    tune(tmp_path / "ray", world, rows, space, trials=3, batch=2, backend="ray", workers=2, progress=False)
    local, ray = (by_slot(studies_of(tmp_path / b, ("joint+heuristic",))["joint+heuristic"]) for b in ("local", "ray"))
    assert sorted(local) == [0, 1, 2] and local == ray  # same parameters and the same validation scores, exactly


def test_a_second_search_on_the_same_folder_is_refused(tmp_path):
    from benchmarks.tuning.study import folder_lock

    with folder_lock(tmp_path), pytest.raises(ConfigError, match="another dus tune is running"):
        world, rows, space = setup(("joint",))
        tune(tmp_path, world, rows, space, trials=1, runner=fake_trial, progress=False)
