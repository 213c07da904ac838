"""Downstream on the v1 worlds: DUS samplers against uniform, on every method, beside the data-level peers.

Each v1 world's training run (``dus_env/DUS-v1`` and friends: data, schedule, decision interval) is trained from
scratch with ``Trainer.fit`` on unseen downstream seeds (agents.seeds.downstream_seeds); the epoch is chosen on
validation and the test split is scored once. Every method runs with its paper's optimiser (``paper_optim``;
joint, concat and OGM-GE: SGD 1e-3, momentum 0.9, weight decay 1e-4, the v1 regime). All DUS rows are at an equal
budget (M * B samples per iteration, as uniform).

Rows per world:
    joint      uniform (the control) | heuristic (equal budget, gamma 2) | best share (the gate's best constant)
    learned    joint under each learned policy of LEARNED (zero-shot on the worlds it was not trained on)
    concat     alone (fusion loss only) | +unimodal (uniform, the DUS plug-in's fair control) | +DUS heuristic
    ogm_ge     the same three rows
    mie        uniform | heuristic
    peers      remix, valuation, mmpareto (their own rebalancing, uniform quantities), and joint (uniform and
               heuristic) with each peer's optimiser (Adam 5e-5 for Remix and valuation, SGD 2e-3 for MMPareto):
               how much of a peer's gain is its optimiser, and does DUS still help on top of that optimiser

    python -m benchmarks.v1_downstream --seeds 5 --workers 2
    python -m benchmarks.v1_downstream --worlds mild --rows joint,concat
    python -m benchmarks.v1_downstream --worlds hapt --rows learned --policies "DUS-v1 SAC" --csv HAPT_CSV

HAPT's rows are kept apart: HAPT_CSV is benchmarks/results/v1_downstream_hapt.csv.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.grid import Cell, run_cell, run_grid
from mml_backbones.errors import ConfigError

if TYPE_CHECKING:  # imported where used: `dus --help` builds `dus bench`'s parser from this module
    import pandas as pd
from mml_backbones.methods import METHODS

RESULTS = Path(__file__).parent / "results"
WORLDS = {
    "mild": "dus_env/DUS-v1",
    "strong": "dus_env/DUS-Strong-v1",
    "three_modal": "dus_env/DUS-ThreeModal-v1",
    "hapt": "dus_env/DUS-HAPT-v1",
}
HEURISTIC = "heuristic:gamma=2,budget=equal"
#: learned policies as (world trained on, algorithm, variant) of benchmarks.rl_scores; each is used zero-shot on
#: the other worlds. Of its agent seeds the one that did best on the selection seeds is used (rl_curves.kept_run).
LEARNED = (
    ("DUS-v1", "ppo", ""),
    ("DUS-v1", "reinforce", ""),
    ("DUS-v1", "sac", ""),
    ("DUS-Strong-v1", "ppo", ""),
    ("DUS-Strong-v1", "reinforce", ""),
    ("DUS-Strong-v1", "sac", ""),
    ("DUS-HAPT-v1", "ppo", ""),
)


def policies() -> dict[str, str]:
    """Row label -> policy file, for the policies of LEARNED that have been trained."""
    from benchmarks.rl_curves import kept_run

    out = {}
    for world, algo, variant in LEARNED:
        run = kept_run(world, algo, variant)
        if run is not None:
            label = f"{world} {algo.upper()}" + (f" ({variant})" if variant else "")
            out[label] = f"benchmarks/results/policies_v1/{run.name}/best/best_model.zip"
    return out


ROWS = ("joint", "learned", "concat", "ogm_ge", "mie", "peers")


def best_share(env_id: str) -> str | None:
    """The gate's best equal-budget constant share on ``env_id`` as a sampler spec (None before the gate ran)."""
    import pandas as pd

    from agents.headroom import best_constant, gate_table

    frames = [pd.read_csv(p) for p in RESULTS.glob("headroom_v1*.csv")]
    df = pd.concat(frames) if frames else pd.DataFrame({"env_id": []})
    df = df[df["env_id"] == env_id]
    if df.empty:
        return None
    best = best_constant(gate_table(df))
    if best is None:
        return None
    row = df[df["schedule"] == best].iloc[0]
    q = {c.split("/", 1)[1]: round(row[c]) for c in df if c.startswith("mean_n/") and pd.notna(row[c])}
    return "constant:" + ",".join(f"{m}={n}" for m, n in q.items())


def world_trainer(env_id: str) -> dict[str, Any]:
    """The TrainerConfig fields of a world's training run (everything but the method's own settings)."""
    import dus_env
    from mml_backbones.config import to_dict

    t = to_dict(dus_env.make_config(**dus_env.ENV_IDS[env_id]).trainer)
    keep = ("batch_size", "decision_interval", "bounds", "statistics")
    return {"dataset": t["dataset"], "options": t["dataset_options"], "epochs": t["epochs"], **{k: t[k] for k in keep}}


def cells(worlds: list[str], rows: list[str], seeds: int, learned: list[str] | None = None) -> list[Cell]:
    """The grid's runs (``learned``: only the learned policies with these labels, e.g. "DUS-v1 SAC")."""
    from agents.seeds import downstream_seeds

    out = []
    for world in worlds:
        env_id = WORLDS[world]
        w = world_trainer(env_id)
        base = {k: w[k] for k in ("batch_size", "decision_interval", "bounds", "statistics")}
        variants: list[tuple[str, str, str, bool]] = []  # (group, method, sampler, dus_losses)
        optims: dict[str, dict[str, Any]] = {}  # group -> an optimiser other than the method's paper one
        if "joint" in rows:
            variants += [("joint|uniform", "joint", "uniform", False), ("joint|heuristic", "joint", HEURISTIC, False)]
            share = best_share(env_id)
            if share is not None:
                variants.append(("joint|best share", "joint", share, False))
        if "learned" in rows and world != "three_modal":  # the policies are for two modalities
            chosen = {k: v for k, v in policies().items() if learned is None or k in learned}
            variants += [(f"joint|{name}", "joint", f"policy:{path}", False) for name, path in chosen.items()]
        for method in ("concat", "ogm_ge"):
            if method in rows:
                variants += [
                    (f"{method}|alone", method, "uniform", False),
                    (f"{method}|+unimodal", method, "uniform", True),
                    (f"{method}|+DUS heuristic", method, HEURISTIC, True),
                ]
        if "mie" in rows:
            variants += [("mie|uniform", "mie", "uniform", False), ("mie|heuristic", "mie", HEURISTIC, False)]
        if "peers" in rows:
            variants += [(f"{m}|uniform", m, "uniform", False) for m in ("remix", "valuation", "mmpareto")]
            for peer in ("remix", "mmpareto"):  # valuation's optimiser is remix's
                optim = METHODS.get(peer).method_class().paper_optim
                for name, sampler in (("uniform", "uniform"), ("heuristic", HEURISTIC)):
                    group = f"joint|{name}, {peer}'s optimiser"
                    variants.append((group, "joint", sampler, False))
                    optims[group] = dict(optim)
        for seed in downstream_seeds(seeds):
            for group, method, sampler, dus_losses in variants:
                trainer = {**base, "optim": optims.get(group), "dus_losses": dus_losses}
                out.append(
                    Cell(
                        group=f"{world}|{group}",
                        dataset=w["dataset"],
                        dataset_options=w["options"],
                        method=method,
                        sampler=sampler,
                        seed=seed,
                        epochs=w["epochs"],
                        trainer=trainer,
                    )
                )
    return out


def fair_control(row: str) -> str:
    """The row a row is paired with: the same method, losses and optimiser at uniform quantities."""
    method, _, variant = row.partition("|")
    if ", " in variant:  # joint with a peer's optimiser
        return f"joint|uniform, {variant.split(', ', 1)[1]}"
    peers = {"remix": "remix's", "valuation": "remix's", "mmpareto": "mmpareto's"}  # valuation uses remix's optimiser
    if method in peers:
        return f"joint|uniform, {peers[method]} optimiser"
    return {"concat": "concat|+unimodal", "ogm_ge": "ogm_ge|+unimodal", "mie": "mie|uniform"}.get(
        method, "joint|uniform"
    )


def table(df: pd.DataFrame, world: str) -> pd.DataFrame:
    """One world's rows: test accuracy, weakest probe, paired differences to the fair controls."""
    import pandas as pd

    from benchmarks.report import paired_difference, pm

    part = df[df["group"].str.startswith(world + "|")].copy()
    part["row"] = part["group"].str.split("|", n=1).str[1]
    rows = []
    for name, g in part.groupby("row", sort=False):
        probes = [c for c in g if c.startswith("test/probe/") and g[c].notna().any()]
        weakest = min(probes, key=lambda c: g[c].mean()) if probes else None
        r: dict[str, Any] = {"row": name, "test acc (%)": pm(g["test/fused_acc"])}
        if weakest:
            r[f"weakest probe ({weakest.split('/')[-1]}, %)"] = pm(g[weakest])
        r["s/epoch"] = round(g["seconds_per_epoch"].mean(), 2)
        controls = {
            "vs uniform control": f"{world}|{fair_control(name)}",
            "vs DUS heuristic": f"{world}|joint|heuristic",
        }
        for label, ref in controls.items():
            if ref == f"{world}|{name}" or ref not in set(df["group"]):
                r[label] = ""
                continue
            d = paired_difference(df, "test/fused_acc", f"{world}|{name}", ref)
            r[label] = f"{100 * d['mean']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]"
        r["seeds"] = g["seed"].nunique()
        rows.append(r)
    return pd.DataFrame(rows).set_index("row")


def add_arguments(
    p: argparse.ArgumentParser, worlds: str = "mild,strong,three_modal", rows: str = ",".join(ROWS)
) -> None:
    """The grid's command-line options (``dus bench`` shares them, with its own default worlds and rows)."""
    p.add_argument("--worlds", default=worlds, help=f"comma-separated, of {', '.join(WORLDS)} (default: %(default)s)")
    p.add_argument("--rows", default=rows, help=f"comma-separated, of {', '.join(ROWS)} (default: %(default)s)")
    p.add_argument("--policies", help='learned rows to run, by label (default all), e.g. "DUS-v1 SAC,DUS-v1 REINFORCE"')
    p.add_argument("--seeds", type=int, default=5, help="downstream seeds per row, from 20000 (default: %(default)s)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default: %(default)s)")
    p.add_argument("--csv", default=str(RESULTS / "v1_downstream.csv"), help="results file (default: %(default)s)")
    p.add_argument("--backend", default="local", choices=["local", "ray"], help="ray: each cell a Ray task")
    p.add_argument("--address", help="Ray cluster address, e.g. auto (default: start Ray locally)")


def run(args: argparse.Namespace, runner: Callable[[Cell], dict[str, Any]] = run_cell) -> dict[str, pd.DataFrame]:
    """Run (or finish) the grid that ``args`` describe and print one table per world."""
    worlds = args.worlds.split(",")
    unknown = [w for w in worlds if w not in WORLDS]
    if unknown:
        raise ConfigError(f"unknown world(s) {unknown}; valid: {', '.join(WORLDS)}")
    learned = args.policies.split(",") if args.policies else None
    grid = cells(worlds, args.rows.split(","), args.seeds, learned)
    out = run_grid(grid, args.csv, workers=args.workers, backend=args.backend, address=args.address, runner=runner)
    df = out.read()
    tables = {}
    for world in worlds:
        tables[world] = table(df, world)
        print(f"\n### {world} ({WORLDS[world]}), test split, downstream seeds\n")
        print(tables[world].to_markdown())
    return tables


def main(argv: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Entry point of ``python -m benchmarks.v1_downstream``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    main()
