"""Showing the search and the comparison: trial curves, chosen configurations, importances, tuned beside untuned.

search_table        per row: trials, best and paper-default validation score, the chosen configuration, time
importance_table    per row: Optuna's fANOVA importance of each hyper-parameter (seeded, offline)
plot_search         best validation score so far against trials, and against the compute spent
comparison_table    test accuracy untuned and tuned, with paired 95% intervals against tuned joint-uniform
verdict             which rows beat tuned joint-uniform (interval above 0), which lose, which tie
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.report import paired_difference, pm
from benchmarks.tuning.retrain import TUNED, UNTUNED, best_trial, group
from benchmarks.tuning.rows import policy_name
from benchmarks.tuning.study import RowStudy, interrupted

METRIC = "test/fused_acc"


def _complete(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(done, key=lambda t: t.user_attrs.get("slot", t.number))


def describe_params(params: dict[str, Any]) -> str:
    """``sgd lr 1.0e-03 wd 1.0e-04, ogm_ge.alpha 0.8`` (a policy by its run folder)."""
    head = f"{params['optimizer']} lr {params['lr']:.1e} wd {params['weight_decay']:.1e}"
    rest = []
    for k, v in params.items():
        if "." in k:
            shown = policy_name(v) if k == "policy.path" else f"{v:.3g}" if isinstance(v, float) else v
            rest.append(f"{k} {shown}")
    return ", ".join([head, *rest])


def trials_frame(studies: list[RowStudy]) -> pd.DataFrame:
    """Every trial of every row, flat: row, number, slot, state, value, seed, seconds, parameters, errors."""
    rows = []
    for s in studies:
        for t in s.study.get_trials(deepcopy=False):
            r = {"row": s.row.spec, "number": t.number, "state": t.state.name, "value": t.value}
            r.update({k: t.user_attrs.get(k) for k in ("slot", "seed", "seconds", "best_epoch", "paper_default")})
            r.update(t.params)
            r["interrupted"] = interrupted(t)
            r["error"] = t.user_attrs.get("error", "")
            rows.append(r)
    return pd.DataFrame(rows)


def search_table(studies: list[RowStudy]) -> pd.DataFrame:
    """Per row: completed and failed trials, best and paper-default validation accuracy, the chosen configuration."""
    from optuna.trial import TrialState

    out = []
    for s in studies:
        done = _complete(s.study)
        failed = [t for t in s.study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if not interrupted(t)]
        best = best_trial(s.study)
        paper = next((t for t in done if t.user_attrs.get("slot") == 0), None)
        seconds = [t.user_attrs["seconds"] for t in done if "seconds" in t.user_attrs]
        out.append(
            {
                "row": s.row.label,
                "trials": len(done),
                "failed": len(failed),
                "paper default val (%)": f"{100 * paper.value:.2f}" if paper else "",
                "best val (%)": f"{100 * best.value:.2f}" if best else "",
                "best slot": best.user_attrs.get("slot") if best else "",
                "chosen configuration": describe_params(best.params) if best else "",
                "s/trial": f"{np.mean(seconds):.1f}" if seconds else "",
                "total s": f"{np.sum(seconds):.0f}" if seconds else "",
            }
        )
    return pd.DataFrame(out).set_index("row")


def importance_table(studies: list[RowStudy], seed: int = 0) -> pd.DataFrame:
    """Per row, the fANOVA importance (summing to 1) of each hyper-parameter over its completed trials."""
    import optuna

    rows = []
    for s in studies:
        r: dict[str, Any] = {"row": s.row.label}
        try:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
            importances = optuna.importance.get_param_importances(s.study, evaluator=evaluator)
            r.update({k: f"{v:.2f}" for k, v in importances.items()})
        except (RuntimeError, ValueError):  # fewer than two completed trials, or no variance to explain
            pass
        rows.append(r)
    return pd.DataFrame(rows).set_index("row").fillna("")


def curves(study: Any) -> pd.DataFrame:
    """Slot, value, best so far and compute so far (seconds) of a study's completed trials, in slot order."""
    done = _complete(study)
    df = pd.DataFrame(
        {
            "slot": [t.user_attrs.get("slot", t.number) for t in done],
            "value": [t.value for t in done],
            "seconds": [t.user_attrs.get("seconds", np.nan) for t in done],
        }
    )
    df["best"] = df["value"].cummax()
    df["compute"] = df["seconds"].cumsum()
    return df


def plot_search(studies: list[RowStudy], path: str | Path, title: str = "") -> Path:
    """Best validation accuracy so far against trials and against compute, one line per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for s in studies:
        c = curves(s.study)
        if c.empty:
            continue
        axes[0].step(c["slot"] + 1, 100 * c["best"], where="post", label=s.row.label)
        axes[1].step(c["compute"] / 60, 100 * c["best"], where="post", label=s.row.label)
    axes[0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[0].set_xlabel("trials (trial 1: the paper default)")
    axes[1].set_xlabel("compute spent (CPU minutes, one thread per trial)")
    for ax in axes:
        ax.set_ylabel("best validation accuracy so far (%)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _interval(df: pd.DataFrame, a: str, b: str) -> tuple[str, dict[str, float] | None]:
    groups = set(df["group"])
    if a == b or a not in groups or b not in groups:
        return "", None
    d = paired_difference(df, METRIC, a, b)
    return f"{100 * d['mean']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]", d


def comparison_table(df: pd.DataFrame, studies: list[RowStudy], reference: str = "joint") -> pd.DataFrame:
    """Test accuracy of each row untuned and tuned, with paired differences (seeds shared)."""
    rows = []
    for s in studies:
        spec = s.row.spec
        tuned, untuned = group(spec, TUNED), group(spec, UNTUNED)
        r: dict[str, Any] = {
            "row": s.row.label,
            "untuned test acc (%)": pm(df.loc[df["group"] == untuned, METRIC]),
            "tuned test acc (%)": pm(df.loc[df["group"] == tuned, METRIC]),
        }
        r["tuned − untuned"] = _interval(df, tuned, untuned)[0]
        r["untuned vs untuned joint"] = _interval(df, untuned, group(reference, UNTUNED))[0]
        r["tuned vs tuned joint"] = _interval(df, tuned, group(reference, TUNED))[0]
        r["seeds"] = df.loc[df["group"] == tuned, "seed"].nunique()
        rows.append(r)
    return pd.DataFrame(rows).set_index("row")


def verdict(df: pd.DataFrame, studies: list[RowStudy], reference: str = "joint") -> str:
    """Plain sentences: the rows whose interval against tuned joint-uniform lies above 0, below 0, or across it."""
    above, below, across = [], [], []
    ref = group(reference, TUNED)
    for s in studies:
        if s.row.spec == reference:
            continue
        text, d = _interval(df, group(s.row.spec, TUNED), ref)
        if d is None or not np.isfinite(d["low"]):
            continue
        entry = f"{s.row.label} ({text})"
        (above if d["low"] > 0 else below if d["high"] < 0 else across).append(entry)
    lines = [
        f"Above tuned {reference} (95% interval above 0): {', '.join(above) or 'none'}.",
        f"Below it (interval below 0): {', '.join(below) or 'none'}.",
        f"Not distinguishable from it (interval across 0): {', '.join(across) or 'none'}.",
    ]
    return "\n".join(lines)
