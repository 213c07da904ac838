"""The v0 sampler benchmark: uniform vs heuristic vs learned (PPO, REINFORCE) samplers, across methods and datasets.

Steps, each resumable (finished work is found on disk and skipped):

1. Policies. PPO and REINFORCE are trained on ``dus_env/DUS-v0`` (two modalities, synthetic "mild", joint)
   and on ``dus_env/DUS-ThreeModal-v0`` (three modalities) with environment seeds in [0, 10000). The same
   two-modality policy then runs on every two-modality dataset and method: the observation does not name the
   dataset, so this also measures transfer.
2. Validation return in the environment, on held-out seeds (10000+), for every sampler
   (``results/samplers_env.csv``).
3. Downstream runs: ``Trainer.fit`` with each sampler, on seeds 20000+ that no agent saw, for datasets x
   methods x samplers x seeds, plus the Concat baseline; the epoch is chosen on validation, the test split is
   scored once (``results/samplers.csv``, one row appended per finished run).
4. Summary (pandas): mean +- std per cell, the paired difference of every sampler against uniform with a 95%
   interval over seeds, accuracy as a fraction of the Bayes accuracy on synthetic data; figures (matplotlib).

    python -m benchmarks.archive_v0.samplers --quick          # under 10 minutes on 2 cores (its own CSVs)
    python -m benchmarks.archive_v0.samplers --workers 2      # the full grid
    python -m benchmarks.archive_v0.samplers --backend ray    # cells as Ray tasks (pip install 'dus[ray]')

``dus bench`` was this grid in the first release; it now runs the v1 one (benchmarks/samplers.py).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.archive_v0.baselines import method_fusion
from benchmarks.grid import Cell, ResultsCsv, run_grid
from benchmarks.report import paired_difference, pm

HERE = Path(__file__).parent
RESULTS = HERE / "results"

# dataset label -> (environment id whose training schedule the runs use, environment overrides, modalities)
DATASETS: dict[str, tuple[str, dict[str, Any]]] = {
    "mild": ("dus_env/DUS-v0", {}),
    "strong": ("dus_env/DUS-Strong-v0", {}),
    "three_modal": ("dus_env/DUS-ThreeModal-v0", {}),
    "hapt": ("dus_env/DUS-HAPT-v0", {}),
}
# where the policies for M modalities are trained
POLICY_ENVS = {2: "dus_env/DUS-v0", 3: "dus_env/DUS-ThreeModal-v0"}
METHODS = ("joint", "ogm_ge", "mie")
SAMPLERS = ("uniform", "heuristic", "ppo", "reinforce")
#: the order of rows in tables and figures
RANK = {name: i for i, name in enumerate(("concat", *METHODS, *SAMPLERS, *DATASETS))}


@dataclass(frozen=True)
class Plan:
    """What one invocation runs.

    Attributes:
        datasets, methods, samplers: the grid's axes.
        seeds: downstream seeds per cell.
        env_seeds: held-out environment seeds for the validation return.
        timesteps: environment steps per policy.
        n_envs: parallel environments while training policies.
        tag: suffix of the result files ("" for the full grid, "_quick" for --quick).
        episode_epochs: override of the environments' schedule (None: each environment's own).
    """

    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    samplers: tuple[str, ...]
    seeds: int
    env_seeds: int
    timesteps: int
    n_envs: int
    tag: str = ""
    episode_epochs: int | None = None


def _env(env_id: str, plan: Plan, **extra: Any):
    import gymnasium as gym

    import dus_env  # noqa: F401

    kwargs = dict(extra)
    if plan.episode_epochs is not None:
        kwargs["epochs"] = plan.episode_epochs
    return gym.make(env_id, **kwargs).unwrapped


def train_policies(plan: Plan, modality_counts: set[int]) -> dict[tuple[int, str], Path]:
    """Train (or find) one policy per (number of modalities, algorithm)."""
    from agents.training import train_policy

    out: dict[tuple[int, str], Path] = {}
    for m in sorted(modality_counts):
        for algo in [s for s in plan.samplers if s in ("ppo", "reinforce")]:
            env_id = POLICY_ENVS[m]
            run = RESULTS / f"policies{plan.tag}" / f"{env_id.split('/')[-1]}_{algo}"
            final = run / "policy.zip"
            if not final.is_file():
                print(f"training {algo} on {env_id} for {plan.timesteps} steps", flush=True)
                kwargs = {"epochs": plan.episode_epochs} if plan.episode_epochs else {}
                train_policy(env_id, algo, plan.timesteps, run, n_envs=plan.n_envs, env_kwargs=kwargs, eval_episodes=4)
            best = run / "best" / "best_model.zip"
            out[(m, algo)] = best if best.is_file() else final
    return out


def sampler_specs(plan: Plan, m: int, policies: dict[tuple[int, str], Path]) -> dict[str, str]:
    """Sampler name -> spec for runs with ``m`` modalities."""
    from agents.heuristic import V0_HEURISTIC

    specs = {}
    for s in plan.samplers:
        if s in ("ppo", "reinforce"):
            specs[s] = f"policy:{policies[(m, s)].resolve()}"
        else:  # this v0 benchmark's heuristic is the first release's (gamma 1, free budget), not v1's default
            specs[s] = V0_HEURISTIC if s == "heuristic" else s
    return specs


def env_returns(plan: Plan, policies: dict[tuple[int, str], Path]) -> pd.DataFrame:
    """Validation return of every sampler on held-out environment seeds, per dataset (joint method)."""
    from agents.evaluation import run_episode
    from agents.seeds import eval_seeds
    from mml_backbones.samplers import make_sampler

    out = ResultsCsv(RESULTS / f"samplers_env{plan.tag}.csv")
    done = set(out.read()["key"])
    for dataset in plan.datasets:
        env_id, overrides = DATASETS[dataset]
        env = None
        for name, spec in sampler_specs(plan, _modalities(dataset), policies).items():
            for seed in eval_seeds(plan.env_seeds):
                key = f"{dataset}|{name}|{seed}|{spec}"
                if key in done:
                    continue
                env = env or _env(env_id, plan, **overrides)
                ep = run_episode(env, make_sampler(spec, modalities=env.modalities), seed)
                row = {"key": key, "dataset": dataset, "sampler": name, "seed": seed, "return": ep.ret}
                row["final_val_acc"] = ep.final_val_acc
                for m in env.modalities:
                    row[f"mean_n/{m}"] = sum(q[m] for q in ep.quantities) / len(ep.quantities)
                out.append(row)
    df = out.read()
    return df[df["dataset"].isin(plan.datasets) & df["sampler"].isin(plan.samplers)]


def _modalities(dataset: str) -> int:
    return 3 if dataset == "three_modal" else 2


def downstream_cells(plan: Plan, policies: dict[tuple[int, str], Path]) -> list[Cell]:
    """Every downstream run of the grid (the Concat baseline included)."""
    from agents.seeds import downstream_seeds

    cells = []
    for dataset in plan.datasets:
        env_id, overrides = DATASETS[dataset]
        env = _env(env_id, plan, **overrides)
        base = env.config.trainer_config(seed=0)
        trainer = {
            "batch_size": base.batch_size,
            "decision_interval": base.decision_interval,
            "max_quantity": base.max_quantity,  # v0 key; grid.legacy_trainer_fields reads it as bounds
        }
        common = {"dataset": base.dataset, "dataset_options": base.dataset_options, "epochs": base.epochs}
        specs = sampler_specs(plan, len(env.modalities), policies)
        keep_runs = str(RESULTS / f"runs{plan.tag}")
        for i, seed in enumerate(downstream_seeds(plan.seeds)):
            keep = keep_runs if i == 0 else None  # one seed's run directories feed the figures
            concat = {**trainer, "model": {"fusion": method_fusion("concat")}}
            cells.append(Cell(group=f"{dataset}|concat|uniform", method="concat", seed=seed, trainer=concat,
                              run_root=keep, **common))  # fmt: skip
            for method in plan.methods:
                t = {**trainer, "model": {"fusion": method_fusion(method)}}  # named: the rows' keys recorded it
                for name, spec in specs.items():
                    cells.append(Cell(group=f"{dataset}|{method}|{name}", method=method, sampler=spec, seed=seed,
                                      trainer=t, run_root=keep, **common))  # fmt: skip
    return cells


def sampler_summary(df: pd.DataFrame, bayes: dict[str, float]) -> pd.DataFrame:
    """One row per (dataset, method, sampler): test accuracy, difference to uniform, Bayes fraction, probes."""
    df = df.copy()
    df[["ds", "meth", "samp"]] = df["group"].str.split("|", expand=True)
    rows = []
    for (ds, meth, samp), part in df.groupby(["ds", "meth", "samp"], sort=False):
        row: dict[str, Any] = {
            "dataset": ds,
            "method": meth,
            "sampler": samp,
            "test acc (%)": pm(part["test/fused_acc"]),
        }
        if samp != "uniform" or meth == "concat":
            ref = f"{ds}|{'joint' if meth == 'concat' else meth}|uniform"
            d = paired_difference(df, "test/fused_acc", f"{ds}|{meth}|{samp}", ref)
            row["Δ vs uniform (pp)"] = f"{100 * d['mean']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]"
        if ds in bayes:
            row["acc / Bayes"] = f"{(part['test/fused_acc'] / bayes[ds]).mean():.3f}"
        probes = [c for c in part if c.startswith("test/probe/") and part[c].notna().any()]
        weakest = min(probes, key=lambda c: part[c].mean()) if probes else None
        if weakest:
            row["weakest probe (%)"] = f"{weakest.split('/')[-1]} {pm(part[weakest])}"
        row["seeds"] = part["seed"].nunique()
        rows.append(row)
    out = pd.DataFrame(rows).fillna("")
    keys = ["dataset", "method", "sampler"]
    return out.sort_values(keys, key=lambda col: col.map(lambda v: RANK.get(v, 99)), kind="stable").reset_index(
        drop=True
    )


def env_table(df: pd.DataFrame) -> pd.DataFrame:
    """Validation return per (dataset, sampler): mean +- std, paired difference to uniform, mean quantities."""
    rows = []
    for (ds, samp), part in df.groupby(["dataset", "sampler"], sort=False):
        row: dict[str, Any] = {"dataset": ds, "sampler": samp, "return (pp)": pm(part["return"], scale=1.0)}
        if samp != "uniform":
            g = df[df["dataset"] == ds].assign(group=lambda x: x["sampler"])
            d = paired_difference(g, "return", samp, "uniform")
            row["Δ vs uniform (pp)"] = f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"
        means = [
            f"{c[len('mean_n/') :]} {part[c].mean():.0f}"
            for c in part
            if c.startswith("mean_n/") and part[c].notna().any()
        ]
        row["mean quantities"] = ", ".join(means)
        row["seeds"] = part["seed"].nunique()
        rows.append(row)
    cols = ["dataset", "sampler", "return (pp)", "Δ vs uniform (pp)", "mean quantities", "seeds"]
    return pd.DataFrame(rows).reindex(columns=cols).fillna("")


def figures(df: pd.DataFrame, tag: str) -> list[Path]:
    """Accuracy with error bars; quantities, discrepancy and validation curves of the kept runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    df = df.copy()
    df[["ds", "meth", "samp"]] = df["group"].str.split("|", expand=True)
    datasets = list(dict.fromkeys(df["ds"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        part = df[df["ds"] == ds]
        stats_ = part.groupby(["meth", "samp"], sort=False)["test/fused_acc"].agg(["mean", "std"]) * 100
        stats_ = stats_.sort_index(key=lambda idx: idx.map(lambda v: RANK.get(v, 99)))
        labels = [f"{m}\n{s}" for m, s in stats_.index]
        ax.errorbar(range(len(stats_)), stats_["mean"], yerr=stats_["std"], fmt="o", capsize=3)
        ax.set_xticks(range(len(stats_)), labels, rotation=90, fontsize=7)
        ax.set_title(ds)
        ax.set_ylabel("test accuracy (%)")
    fig.tight_layout()
    p = RESULTS / f"samplers_accuracy{tag}.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)

    # run directories are kept for one seed and not committed; without them there are no curves to draw
    kept = df[df["run_dir"].fillna("").astype(str).map(lambda p: bool(p) and Path(p).is_dir())]
    first = kept[(kept["meth"] == "joint")]
    if first.empty:
        return paths
    ds = first["ds"].iloc[0]
    runs = {r["samp"]: Path(r["run_dir"]) for _, r in first[first["ds"] == ds].iterrows()}
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
    for samp, run in runs.items():
        dec = pd.read_csv(run / "decisions.csv")
        met = pd.read_csv(run / "metrics.csv")
        for col in [c for c in dec if c.startswith("n/")]:
            if samp != "uniform":
                axes[0].step(dec["iteration"], dec[col], where="post", label=f"{samp} {col[2:]}")
        s_cols = [c for c in dec if c.startswith("S/")]
        if len(s_cols) >= 2:
            ratio = dec[s_cols].div(dec[s_cols].mean(axis=1), axis=0)
            axes[1].plot(dec["iteration"], ratio[s_cols[-1]], label=f"{samp}: S({s_cols[-1][2:]})/mean")
        axes[2].plot(met["epoch"], 100 * met["val/fused_acc"], marker="o", label=samp)
    axes[0].set(title=f"quantities ({ds}, joint)", xlabel="iteration", ylabel="$n_m$")
    axes[1].set(title="cumulative discrepancy", xlabel="iteration", ylabel="S(m) / mean S")
    axes[2].set(title="validation accuracy", xlabel="epoch", ylabel="%")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    p = RESULTS / f"samplers_curves{tag}.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)
    return paths


def run(plan: Plan, workers: int = 1, backend: str = "local", address: str | None = None) -> dict[str, Any]:
    """Run (or finish) the benchmark of ``plan`` and write its tables and figures."""
    start = time.perf_counter()
    counts = {_modalities(d) for d in plan.datasets}
    policies = train_policies(plan, counts)
    t_policies = time.perf_counter() - start
    env_df = env_returns(plan, policies)
    t_env = time.perf_counter() - start - t_policies
    cells = downstream_cells(plan, policies)
    csv = RESULTS / f"samplers{plan.tag}.csv"
    df = run_grid(cells, csv, workers=workers, backend=backend, address=address).read()
    df = df[df["key"].isin({c.key for c in cells})]
    bayes = {d: df[df["group"].str.startswith(d + "|")]["bayes/all"].mean() for d in plan.datasets}
    bayes = {k: v for k, v in bayes.items() if pd.notna(v)}
    table = sampler_summary(df, bayes)
    envt = env_table(env_df)
    paths = figures(df, plan.tag)
    md = RESULTS / f"samplers{plan.tag}.md"
    md.write_text(
        "## Validation return in the environment (held-out seeds)\n\n"
        + envt.to_markdown(index=False)
        + "\n\n## Downstream test accuracy\n\n"
        + table.to_markdown(index=False)
        + "\n"
    )
    wall = time.perf_counter() - start
    print(md.read_text())
    print(f"wall time this invocation: {wall:.0f} s (policies {t_policies:.0f} s, environment {t_env:.0f} s)")
    return {"table": table, "env": envt, "figures": paths, "markdown": md, "seconds": wall}


def plan_from_args(args: argparse.Namespace) -> Plan:
    """The Plan an argument namespace describes (--quick shrinks everything)."""
    if args.quick:
        return Plan(
            datasets=("mild",),
            methods=("joint",),
            samplers=SAMPLERS,
            seeds=2,
            env_seeds=2,
            timesteps=256,
            n_envs=2,
            tag="_quick",
            episode_epochs=2,
        )
    return Plan(
        datasets=tuple(args.datasets.split(",")),
        methods=tuple(args.methods.split(",")),
        samplers=tuple(args.samplers.split(",")),
        seeds=args.seeds,
        env_seeds=args.env_seeds,
        timesteps=args.timesteps,
        n_envs=args.n_envs,
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's command-line options."""
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--samplers", default=",".join(SAMPLERS))
    p.add_argument("--seeds", type=int, default=5, help="downstream seeds per cell")
    p.add_argument("--env-seeds", type=int, default=10, help="held-out environment seeds")
    p.add_argument("--timesteps", type=int, default=8192, help="environment steps per policy")
    p.add_argument("--n-envs", type=int, default=2)
    p.add_argument("--workers", type=int, default=1, help="local worker processes for the downstream runs")
    p.add_argument("--backend", default="local", choices=["local", "ray"])
    p.add_argument("--address", help="Ray cluster address (default: start Ray locally)")
    p.add_argument("--quick", action="store_true", help="one dataset and method, 2 seeds, small policies")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point of ``python -m benchmarks.archive_v0.samplers``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    return run(plan_from_args(args), args.workers, args.backend, args.address)


if __name__ == "__main__":
    main()
