"""``dus tune`` (and ``python -m benchmarks.tuning``): every row tuned with the same budget, then compared.

    dus tune mild --trials 30 --workers 2                       search every default row on mild, then report
    dus tune mild --rows joint,joint+heuristic --trials 8       two rows
    dus tune mild --trials 30 --retrain 5                       and retrain the best and the paper configurations
    dus tune mild --report                                      the report of what OUT holds (runs nothing)
    dus tune my_world.json --rows joint,mymethod --knob mymethod.strength=0.1:10:log --dry-run

Everything goes to OUT (default tuning/<world>): studies.db (Optuna, SQLite), trials.csv, retrain.csv,
search.png, report.md. A killed run continues where it stopped when the same command runs again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.tuning.rows import policy_name
from benchmarks.tuning.space import SharedSpace, parse_range, space_with
from mml_backbones.errors import ConfigError, DUSError

if TYPE_CHECKING:  # pandas is imported where it is used: `dus --help` imports this module to list `dus tune`
    import pandas as pd

#: the rows of the tuned table (issue 20; the best learned policy is added per world on the command line)
DEFAULT_ROWS = ("joint", "concat", "ogm_ge", "mie", "mla", "remix", "valuation", "mmpareto", "joint+heuristic")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command's options (defaults: SharedSpace's)."""
    d = SharedSpace()
    p.add_argument(
        "world", help="mild, strong, three_modal, hapt, an environment id (dus_env/DUS-Tiny-v1) or a JSON file"
    )
    p.add_argument(
        "--rows",
        action="append",
        help=f"rows METHOD[+SAMPLER], comma-separated or repeated (default: {','.join(DEFAULT_ROWS)}); "
        "e.g. joint+heuristic, joint+policy:A.zip or joint+policy:A.zip|B.zip (the policy becomes a knob)",
    )
    p.add_argument("--trials", type=int, default=30, help="trials per row, the paper default included (default 30)")
    p.add_argument("--out", help="output folder (default: tuning/<world>)")
    p.add_argument(
        "--workers",
        type=int,
        help="trials (and retrained runs) at once: local processes (default 1) or Ray tasks "
        "(default: the cluster's CPUs)",
    )
    p.add_argument("--batch", type=int, help="trials a row asks at once (default ceil(workers / rows); kept on resume)")
    p.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler")
    p.add_argument("--backend", default="local", choices=["local", "ray"], help="ray: each trial a Ray task")
    p.add_argument("--address", help="Ray cluster address, e.g. auto (default: start Ray locally)")
    g = p.add_argument_group("search space (shared by every row)")
    g.add_argument("--optimizers", default=",".join(d.optimizers), help="optimiser families (sgd: momentum 0.9)")
    g.add_argument("--lr", default=f"{d.lr[0]:g}:{d.lr[1]:g}", help="learning-rate range LOW:HIGH (log-uniform)")
    g.add_argument(
        "--weight-decay",
        default=f"{d.weight_decay[0]:g}:{d.weight_decay[1]:g}",
        help="weight-decay range LOW:HIGH (log-uniform)",
    )
    g.add_argument(
        "--knob",
        action="append",
        metavar="SCOPE.NAME=LOW:HIGH[:log][:int]",
        help="change or add a row's knob (a method Config field or a sampler option), or SCOPE.NAME=off",
    )
    g = p.add_argument_group("after the search")
    g.add_argument("--retrain", type=int, default=0, metavar="N", help="retrain best and paper configs on N seeds")
    g.add_argument("--reference", default="joint", help="the row every row is paired with (default joint)")
    g.add_argument("--report", action="store_true", help="only write the report of what OUT holds; run nothing")
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="check the rows and the space on the data, print the space, train nothing",
    )
    g.add_argument("--no-progress", action="store_true")


def _rows(args: argparse.Namespace) -> list[str]:
    items = [r for chunk in (args.rows or [",".join(DEFAULT_ROWS)]) for r in chunk.split(",") if r.strip()]
    if len(set(items)) != len(items):
        raise ConfigError(f"--rows names a row twice: {items}")
    return items


def space_table(rows: list[Any], space: SharedSpace) -> pd.DataFrame:
    """Every row's parameters: range and paper default (trial 0)."""
    import pandas as pd

    out = []
    for row in rows:
        paper = row.paper_params(space)
        shared = {
            "optimizer": "{" + ", ".join(space.optimizers) + "}",
            "lr": f"[{space.lr[0]:g}, {space.lr[1]:g}] (log)",
            "weight_decay": f"[{space.weight_decay[0]:g}, {space.weight_decay[1]:g}] (log)",
        }
        for name, desc in shared.items():
            out.append({"row": row.label, "parameter": name, "range": desc, "paper default": paper[name], "why": ""})
        for k in row.knobs:
            shown, default = k.describe(), paper[k.param]
            if k.param == "policy.path":  # the run folders, not the whole paths
                shown, default = "{" + ", ".join(map(policy_name, k.choices)) + "}", policy_name(default)
            out.append({"row": row.label, "parameter": k.param, "range": shown, "paper default": default, "why": k.why})
    return pd.DataFrame(out)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Check, search, retrain and report, as the arguments ask."""
    import pandas as pd

    from benchmarks.tuning.retrain import current, retrain, retrain_cells
    from benchmarks.tuning.rows import check_knobs, parse_row, preflight
    from benchmarks.tuning.study import open_studies, tune
    from benchmarks.tuning.worlds import resolve_world

    if args.trials < 1:
        raise ConfigError(f"--trials must be >= 1 (trial 0 is the paper default), got {args.trials}")
    if args.retrain < 0:
        raise ConfigError(f"--retrain must be >= 0, got {args.retrain}")
    base = SharedSpace(
        optimizers=tuple(o for o in args.optimizers.split(",") if o),
        lr=parse_range(args.lr, "--lr"),
        weight_decay=parse_range(args.weight_decay, "--weight-decay"),
    )
    space = space_with(base, args.knob)
    world = resolve_world(args.world)
    rows = [parse_row(r, space) for r in _rows(args)]
    if args.retrain and args.reference not in {r.spec for r in rows}:
        raise ConfigError(f"--retrain pairs every row with {args.reference!r}: add it to --rows")
    check_knobs(rows, space)
    if args.dry_run:
        table = space_table(rows, space)  # before the data loads: a space without the paper point fails fast
        preflight(world, rows, space)
        print(table.to_markdown(index=False))
        return {}
    out = Path(args.out or Path("tuning") / world.slug)
    progress = not args.no_progress
    if args.report:
        studies = open_studies(out, world, rows, space, args.trials, args.seed, readonly=True)
    else:
        preflight(world, rows, space)
        print(f"tuning {len(rows)} rows x {args.trials} trials on {world.name} ({world.epochs} epochs) in {out}")
        studies = tune(
            out,
            world,
            rows,
            space,
            args.trials,
            workers=args.workers,
            batch=args.batch,
            seed=args.seed,
            backend=args.backend,
            address=args.address,
            progress=progress,
        )
    results: dict[str, Any] = {"studies": studies}
    if args.retrain:
        if args.report:
            csv = out / "retrain.csv"
            df = pd.read_csv(csv) if csv.is_file() else pd.DataFrame({"key": [], "group": []})
            results["retrain"] = current(df, retrain_cells(studies, args.retrain))
        else:
            results["retrain"] = retrain(
                out, studies, args.retrain, args.workers or 1, args.backend, args.address, progress
            )
    text = write_report(out, world.name, studies, results.get("retrain"), args.reference)
    print(text)
    return results


def write_report(out: Path, world: str, studies: list[Any], retrained: pd.DataFrame | None, reference: str) -> str:
    """Write trials.csv, search.png and report.md into ``out``; return the report's text."""
    from benchmarks.tuning import report

    out.mkdir(parents=True, exist_ok=True)
    report.trials_frame(studies).to_csv(out / "trials.csv", index=False)
    report.plot_search(studies, out / "search.png", title=f"{world}: best validation accuracy so far")
    parts = [
        f"## Tuning on {world}\n",
        "### The search (validation accuracy, tuning seeds)\n",
        report.search_table(studies).to_markdown(),
        "\n### Importance of each hyper-parameter (fANOVA over each row's completed trials)\n",
        report.importance_table(studies).to_markdown(),
        "\nTrial curves: search.png; every trial: trials.csv.\n",
    ]
    if retrained is not None and not retrained.empty:
        n = retrained["seed"].nunique()
        parts += [
            f"### Test accuracy, untuned (paper defaults) and tuned, {n} downstream seeds\n",
            report.comparison_table(retrained, studies, reference).to_markdown(),
            "",
            report.verdict(retrained, studies, reference),
        ]
    text = "\n".join(parts) + "\n"
    (out / "report.md").write_text(text)
    return text


def register_commands(sub: Any) -> None:
    """``dus tune``."""
    p = sub.add_parser("tune", help="tune every row with the same budget, then compare (benchmarks.tuning)")
    add_arguments(p)
    p.set_defaults(func=lambda a: (run(a), 0)[1])


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.tuning``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        run(args)
    except DUSError as e:
        print(f"tune: error: {e}", file=sys.stderr)
        return 2
    return 0
