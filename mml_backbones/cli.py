"""The ``dus`` command line: ``dus train``, ``dus datasets``, ``dus methods``, ``dus plot`` and the plug-in commands.

Start-up is kept cheap: this module imports only the standard library and the torch-free config dataclasses at
the top; torch, scikit-learn, pandas and Stable-Baselines3 are imported when a command runs, so ``dus --help``
and ``dus train --help`` answer in well under two seconds (``python -m benchmarks.cli_startup`` measures it).

Plug-in commands. Higher layers (agents, benchmarks, any installed package) add subcommands through the
``dus.commands`` entry-point group: each entry is a function ``register(subparsers)`` that adds its parsers with
``subparsers.add_parser(name, help=...)`` and ``set_defaults(func=handler)``; ``handler(args) -> int`` runs the
command, and a DUSError it raises is printed as one line (exit status 2). The module an entry point names is
imported by every ``dus`` invocation, so it must import nothing heavy at the top (do that inside the handler).
A plug-in may derive its flags from a config dataclass with ``mml_backbones.cli_config.add_config_flags``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mml_backbones.cli_config import (
    DEST,
    add_config_flags,
    add_run_dir_flags,
    differences,
    format_differences,
    given_values,
    overlay,
)
from mml_backbones.errors import ConfigError, DUSError

if TYPE_CHECKING:
    import pandas as pd

    from mml_backbones.fit import FitResult
    from mml_backbones.samplers import Sampler
    from mml_backbones.trainer_config import TrainerConfig

#: the short flags kept beside the derived ``--parent.field`` ones (what the README and earlier releases used)
ALIASES: dict[str, list[str]] = {
    "dataset_options": ["--dataset-option"],
    "method_options": ["--method-option"],
    "model.encoder": ["--encoder"],
    "model.encoders": ["--encoders"],
    "model.encoder_options": ["--encoder-option"],
    "model.fusion": ["--fusion"],
    "model.feature_dim": ["--feature-dim"],
    "optim.name": ["--optimizer"],
    "optim.lr": ["--lr"],
    "optim.momentum": ["--momentum"],
    "optim.weight_decay": ["--weight-decay"],
    "optim.schedule": ["--lr-schedule"],
    "optim.scale_lr_by_quantity": ["--scale-lr-by-quantity"],
    "statistics.kind": ["--statistic"],
    "num_threads": ["--threads"],
}
#: loader options common enough for a flag of their own: flag name -> help (they set dataset_options[key])
DATASET_OPTION_FLAGS = {
    "path": "data file of datasets that read one (npz: FILE.npz; hapt: HAPT.pkl.gz)",
    "data_dir": "data directory of datasets that read one (crema_d, artelingo)",
    "preset": "synthetic preset: mild, strong, three_modal, balanced (default: mild)",
}
#: run settings a resumed run may change: where it runs, not what it computes
RESUME_MAY_CHANGE = ("device", "num_threads")
SAMPLER_HELP = (
    "uniform[:N], heuristic (v1's: gamma 2 on the equal budget; heuristic:gamma=1,budget=free for v0's), "
    "constant:MODALITY=N,..., or policy:PATH.zip (default: uniform)"
)

#: help of every command's --trust-file (agents' commands use it too)
TRUST_FILE_HELP = (
    "unpickle the policy .zip or checkpoint this command loads instead of reading it as data; it runs any code "
    "inside, so only for a file you wrote yourself or trust (e.g. one only SB3's own loader reads)"
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults (flags whose default is "not given" write theirs in the help) and keeps description layout."""


class DusParser(argparse.ArgumentParser):
    """ArgumentParser whose help shows defaults; subcommand parsers (plug-ins' too) are of this class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def package_version() -> str:
    """The installed package's version."""
    try:
        return version("dus")
    except PackageNotFoundError:  # running from a source tree that was not installed
        from mml_backbones import __version__

        return __version__


# ----------------------------------------------------------------------------------------------------- train
def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Every TrainerConfig field as a flag (nested configs too), with its docstring as help and its default."""
    from mml_backbones.methods import METHODS
    from mml_backbones.optim import OPTIMIZERS
    from mml_backbones.trainer_config import TrainerConfig

    add_config_flags(
        p,
        TrainerConfig,
        title="the run (TrainerConfig; a resumed run starts from its saved config.json)",
        aliases=ALIASES,
        choices={"method": METHODS.names(), "optim.name": OPTIMIZERS.names()},
        notes={
            "optim": "unset: the optimiser and schedule of the method's paper (dus methods); any optim flag "
            "starts from those",
            "model.fusion": "default: the method's paper's, else concat",
            "dus_losses": "default: on with a sampler other than uniform",
            "decision_interval": "default: 10, or the interval a policy sampler was trained with",
        },
    )
    g = p.add_argument_group("dataset options with a flag of their own (each sets --dataset-options KEY=VALUE)")
    for key, text in DATASET_OPTION_FLAGS.items():
        flag = "--" + key.replace("_", "-")
        g.add_argument(
            flag, dest=f"{DEST}dataset_options.{key}", default=argparse.SUPPRESS, metavar=key.upper(), help=text
        )


def trainer_config_from_flags(given: dict[str, Any], base: dict[str, Any] | None = None) -> TrainerConfig:
    """The one place a TrainerConfig is made from command-line values: ``given`` (dotted path -> value) on ``base``.

    ``base`` is a saved run's config (``--resume``) or None for TrainerConfig's defaults. An optimiser left unset
    is the method's paper's; optimiser flags start from it (or from the defaults of another ``--optim.name``).
    """
    from mml_backbones.config import from_dict, to_dict
    from mml_backbones.methods import METHODS
    from mml_backbones.trainer_config import TrainerConfig

    config = overlay(base if base is not None else to_dict(TrainerConfig()), {})
    optim_given = {k[len("optim.") :]: v for k, v in given.items() if k.startswith("optim.")}
    if config.get("optim") is None and optim_given:
        method = given.get("method", config["method"])
        paper = dict(METHODS.get(method).method_class().paper_optim)
        name = optim_given.get("name", paper["name"])
        config["optim"] = paper if name == paper["name"] else {"name": name}
    return from_dict(TrainerConfig, overlay(config, given)).resolved()


def _load_resumed(out: Path) -> dict[str, Any]:
    import json

    return json.loads((out / "config.json").read_text())


def resolve_run(args: argparse.Namespace) -> tuple[TrainerConfig, Sampler, str, bool]:
    """``dus train``'s config, sampler and sampler spec from the flags (and the run directory when resuming).

    Returns (config, sampler, spec, extending), ``extending`` True when a resumed run grows ``--epochs``.
    """
    from mml_backbones.run_dir import check_run_dir
    from mml_backbones.samplers import UniformSampler, make_sampler

    given = given_values(args)
    out = Path(args.out) if args.out else None
    saved = check_run_dir(out, resume=args.resume, overwrite=args.overwrite)
    spec = getattr(args, "sampler", None)
    extending = False
    if saved is not None:
        base = saved["trainer"]
        saved_spec = saved.get("sampler_spec")
        if saved_spec is None:  # a run written by Trainer.fit, not dus train: its config.json names no spec
            used = str(saved.get("sampler") or "UniformSampler")
            if not used.startswith("UniformSampler") and spec is None:
                raise ConfigError(f"{out}/config.json names no sampler spec (its sampler was {used}); give --sampler")
            saved_spec = spec or "uniform"
        changes = {k: v for k, v in differences(base, given).items() if k not in RESUME_MAY_CHANGE}
        if spec is not None and spec != saved_spec:
            changes["sampler"] = (saved_spec, spec)
        grown = changes.pop("epochs", None)
        if grown is not None and grown[1] > grown[0] and not changes:
            if (base.get("optim") or {}).get("schedule") == "cosine":
                raise ConfigError(
                    f"{out}: a cosine learning-rate schedule is fixed by the run's length ({grown[0]} epochs); "
                    "it cannot be extended: start a new run"
                )
            extending = True
        elif grown is not None:
            changes["epochs"] = grown
        if changes:
            raise ConfigError(
                f"{out} was run with other settings; a resumed run keeps its config.json (only --epochs may grow, "
                f"to extend it). Conflicting flags:\n{format_differences(changes)}\n"
                "drop them to resume as it was, or start a new run in another --out"
            )
        spec = saved_spec
        done = (out / "final.json").is_file()
        if done and not extending:
            raise ConfigError(
                f"{out} is a finished run ({base['epochs']} epochs); give --epochs N larger than {base['epochs']} "
                "with --resume to extend it, or --overwrite to start it again"
            )
    else:
        base = None
        spec = spec or "uniform"
    sampler = make_sampler(spec, trust_file=getattr(args, "trust_file", False))
    if saved is None:
        interval = getattr(sampler, "decision_interval", None)
        if interval is not None and "decision_interval" not in given:
            given["decision_interval"] = interval
            print(f"decision interval {interval}: the one {spec} was trained with", file=sys.stderr)
        elif interval is not None and given["decision_interval"] != interval:
            print(
                f"decision interval {given['decision_interval']} (--decision-interval) overrides the {interval} "
                f"{spec} was trained with",
                file=sys.stderr,
            )
        if getattr(sampler, "validation_context", None) == "decision" and "validation_context" not in given:
            given["validation_context"] = "decision"  # fit honours the policy either way; config.json says so
            print(f"validation context refreshed before every decision, as {spec} was trained", file=sys.stderr)
        # the DUS plug-in's unimodal losses come with every sampler but uniform (DESIGN.md); a flag decides too
        given.setdefault("dus_losses", not isinstance(sampler, UniformSampler))
    return trainer_config_from_flags(given, base), sampler, spec, extending


def result_table(result: FitResult, modalities: Sequence[str]) -> pd.DataFrame:
    """Fused and per-modality accuracies of a fit on validation and test, in percent."""
    import pandas as pd

    rows = []
    for split, metrics in (("val", result.val), ("test", result.test)):
        row = {
            "split": split,
            "fused_acc": metrics["fused_acc"],
            "macro_f1": metrics["macro_f1"],
            "mAP": metrics["map"],
        }
        for m in modalities:
            row[f"head/{m}"] = metrics[f"acc/{m}"]
            row[f"probe/{m}"] = metrics.get(f"probe/{m}", float("nan"))
        rows.append(row)
    df = pd.DataFrame(rows).set_index("split")
    return (100 * df).round(2)


def cmd_train(args: argparse.Namespace) -> int:
    """dus train."""
    from mml_backbones.samplers import check_modalities
    from mml_backbones.trainer import Trainer

    if args.tensorboard and not args.out:
        raise ConfigError("--tensorboard needs --out RUN_DIR (the events go to RUN_DIR/tensorboard)")
    config, sampler, spec, extending = resolve_run(args)
    loggers = []
    if args.tensorboard:  # before the data is loaded: a missing package is said at once
        from mml_backbones.tensorboard import TensorBoardLog

        loggers.append(TensorBoardLog(Path(args.out) / "tensorboard"))
    trainer = Trainer(config)
    check_modalities(sampler, trainer.modalities)
    out = Path(args.out) if args.out else None
    standardized = [m for m in trainer.splits.info.get("standardized", ()) if m in trainer.modalities]
    print(
        f"training {config.method} on {config.dataset} ({', '.join(trainer.modalities)}; "
        f"standardized: {', '.join(standardized) if standardized else 'none'}), sampler {spec}, "
        f"{config.epochs} epochs x {trainer.iterations_per_epoch} iterations, optimiser {config.optim.name} "
        f"lr {config.optim.lr:g}, fusion {config.model.fusion}, decision interval {config.decision_interval}, "
        f"seed {config.seed}, device {config.device}",
        file=sys.stderr,
    )
    result = trainer.fit(
        sampler,
        run_dir=out,
        resume=args.resume,
        progress=not args.no_progress,
        loggers=loggers,
        run_info={"sampler_spec": spec},
        log=lambda line: print(line, file=sys.stderr),
        trust_file=args.trust_file,
    )
    print(f"best epoch {result.best_epoch} (chosen on validation), {result.seconds:.1f} s")
    print(result_table(result, trainer.modalities).to_string())
    if out is not None:
        print(f"run directory: {out}" + (" (extended)" if extending else ""))
    return 0


# -------------------------------------------------------------------------------------------------- listings
def cmd_datasets(args: argparse.Namespace) -> int:
    """dus datasets [NAME]."""
    import pandas as pd

    from mml_backbones.data.registry import DATASETS, list_datasets, load_dataset

    if args.name:  # one dataset, loaded: sizes, shapes and what the loader reports (Bayes accuracies)
        from mml_backbones.config import parse_options

        options = parse_options(args.dataset_option)
        if args.preset:
            options["preset"] = args.preset
        s = load_dataset(DATASETS.get(args.name).name, **options)
        print(f"{args.name}: {s.info.get('description', DATASETS.get(args.name).summary)}")
        print(f"  modalities: {', '.join(f'{m}{list(s.train.input_shape(m))}' for m in s.modality_names)}")
        print(f"  classes: {s.num_classes}; train/val/test: {'/'.join(str(n) for n in s.sizes().values())}")
        for key, value in s.info.items():
            if key in ("bayes_accuracy", "split_rule", "preset"):
                print(f"  {key}: {value}")
        return 0
    rows = []
    for entry in list_datasets():
        described = entry.describe()
        if described is not None:
            rows.extend(described)
            continue
        row = {"dataset": entry.name, "modalities": "", "classes": "", "train/val/test": ""}
        if entry.needs_path:
            row["modalities"] = f"(local data: --path/--data-dir) {entry.summary}"
        else:
            missing = entry.missing_requirements()
            row["modalities"] = (
                f"(needs pip install 'dus[{entry.extra}]') {entry.summary}"
                if missing
                else f"{entry.summary} (sizes: dus datasets {entry.name})"
            )
        rows.append(row)
    print(pd.DataFrame(rows).fillna("").to_markdown(index=False, tablefmt="plain"))
    print("\nsizes, shapes and Bayes accuracies of one dataset, loaded: dus datasets NAME [--preset P]")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    """dus methods."""
    import json

    from mml_backbones.config import to_dict
    from mml_backbones.methods import METHODS, method_config

    for name in METHODS.names():
        entry = METHODS.get(name)
        cls = entry.method_class()
        print(f"{name}: {entry.summary}")
        if cls.reference:
            print(f"    reference: {cls.reference}")
        print(f"    config {cls.Config.__name__}: {json.dumps(to_dict(method_config(name)))}")
        print(f"    optimiser (paper): {json.dumps(cls.paper_optim)}; fusion: {cls.recommended_fusion or 'concat'}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """dus plot."""
    from mml_backbones.plots import plot_run_dir

    for path in plot_run_dir(Path(args.run_dir), Path(args.out) if args.out else None):
        print(path)
    return 0


# ------------------------------------------------------------------------------------------------- the parser
def _add_core_commands(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train one run with a sampler and report validation and test metrics",
        description="Train one run (every TrainerConfig field is a flag; nested configs as --optim.lr, "
        "--model.feature-dim, ...). Flags not given keep their default, or, with --resume, the run's "
        "saved config.json.",
    )
    add_run_arguments(p)
    g = p.add_argument_group("sampler and run directory")
    g.add_argument("--sampler", default=argparse.SUPPRESS, help=SAMPLER_HELP)
    g.add_argument("--out", help="run directory (config.json, metrics.csv, decisions.csv, checkpoints, final.json)")
    add_run_dir_flags(g, "config.json", "--epochs may grow to extend a finished run")
    g.add_argument("--trust-file", action="store_true", help=TRUST_FILE_HELP)
    g.add_argument(
        "--tensorboard",
        action="store_true",
        help="write TensorBoard events to OUT/tensorboard (needs dus[tensorboard])",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("datasets", help="list datasets (cheaply), or load one: dus datasets NAME")
    p.add_argument("name", nargs="?", help="load this dataset and print its sizes, shapes and Bayes accuracies")
    p.add_argument("--preset", help="synthetic preset")
    p.add_argument("--dataset-option", action="append", metavar="KEY=VALUE", help="loader option")
    p.set_defaults(func=cmd_datasets)
    sub.add_parser("methods", help="list training methods and their default configs").set_defaults(func=cmd_methods)
    p = sub.add_parser(
        "plot",
        help="draw a run directory's curves to PNG (dus train: quantities, discrepancy S, accuracy, loss; "
        "dus train-policy: the selection curve and the training return)",
    )
    p.add_argument("run_dir", help="a run directory written by dus train --out or dus train-policy --out")
    p.add_argument("--out", help="PNG file to write (default: RUN_DIR/plots/run.png or policy.png)")
    p.set_defaults(func=cmd_plot)


def build_parser() -> argparse.ArgumentParser:
    """The ``dus`` parser with the core commands and every plug-in command."""
    parser = DusParser(prog="dus", description="Rebalanced multimodal learning with DUS")
    parser.add_argument("--version", action="version", version=f"dus {package_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_core_commands(sub)
    for ep in entry_points(group="dus.commands"):
        ep.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dus`` console script."""
    if list(sys.argv[1:] if argv is None else argv) == ["--version"]:  # answered without building every parser
        print(f"dus {package_version()}")
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except DUSError as e:
        print(f"dus: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dus: interrupted; resume with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
