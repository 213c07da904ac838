"""The ``dus`` command line: ``dus train``, ``dus datasets``, ``dus methods`` and the plug-in commands.

Higher layers (agents, benchmarks) add subcommands through the ``dus.commands`` entry-point group: each entry
is a function ``register(subparsers)`` that adds its parsers with ``set_defaults(func=...)``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pandas as pd

from mml_backbones.config import from_dict, parse_options, to_dict
from mml_backbones.errors import DUSError
from mml_backbones.fit import FitResult
from mml_backbones.methods import METHODS, method_config
from mml_backbones.models.fusion import FUSIONS
from mml_backbones.models.model import ModelConfig
from mml_backbones.optim import OPTIMIZERS, SCHEDULES, OptimConfig
from mml_backbones.statistics import StatisticsConfig
from mml_backbones.trainer import Trainer
from mml_backbones.trainer_config import TrainerConfig

#: help of every command's --trust-file (agents' commands use it too)
TRUST_FILE_HELP = (
    "unpickle the policy .zip or checkpoint this command loads instead of reading it as data; it runs any code "
    "inside, so only for a file you wrote yourself or trust (e.g. one only SB3's own loader reads)"
)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by every command that builds a TrainerConfig (defaults: TrainerConfig's and the method's)."""
    d = TrainerConfig()
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default=d.dataset, help="dataset name (see `dus datasets`)")
    g.add_argument("--path", help="data file for datasets that read one (npz: FILE.npz; hapt: HAPT.pkl.gz)")
    g.add_argument("--data-dir", help="data directory for datasets that read one (crema_d, artelingo)")
    g.add_argument("--preset", help="synthetic preset (mild, strong, three_modal, balanced)")
    g.add_argument("--dataset-option", action="append", metavar="KEY=VALUE", help="extra loader option")
    g.add_argument("--modalities", help="comma-separated subset of modalities (one gives a unimodal baseline)")
    g = p.add_argument_group("method and model")
    g.add_argument("--method", default=d.method, help=f"training method: {', '.join(METHODS.names())}")
    g.add_argument("--method-option", action="append", metavar="KEY=VALUE", help="override a method config field")
    g.add_argument("--encoder", help="encoder for every modality (default: by input shape)")
    g.add_argument("--encoders", help="per-modality encoders, e.g. text=minilm,image=mlp")
    g.add_argument(
        "--encoder-option",
        action="append",
        metavar="MODALITY.KEY=VALUE",
        help="encoder option for one modality (or *.KEY=VALUE for all), e.g. text.freeze=true",
    )
    g.add_argument(
        "--fusion", choices=FUSIONS.names(), help="fusion module (default: the method's paper's, else concat)"
    )
    g.add_argument("--feature-dim", type=int, default=d.model.feature_dim)
    g.add_argument(
        "--dus-losses",
        action="store_true",
        help="DUS plug-in: a fusion-only method (concat, ogm_ge) also gets one unimodal loss per modality over its "
        "n_m samples (on by default with a sampler other than uniform)",
    )
    g = p.add_argument_group("schedule (optimiser: the method's paper's unless one of these is given)")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="nominal batch size B")
    g.add_argument("--optimizer", choices=OPTIMIZERS.names())
    g.add_argument("--lr", type=float)
    g.add_argument("--momentum", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--lr-schedule", choices=SCHEDULES.names())
    g.add_argument(
        "--scale-lr-by-quantity", action="store_true", help="each modality's learning rate times n_m / B (for Adam)"
    )
    g.add_argument(
        "--decision-interval", type=int, default=d.decision_interval, help="iterations between sampler decisions"
    )
    g.add_argument("--statistic", default=d.statistics.kind, choices=["running_mean", "ema", "window"])
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--threads", type=int, help="torch CPU threads")
    g.add_argument("--device", default=d.device)


def optim_from_args(args: argparse.Namespace) -> OptimConfig | None:
    """The optimiser the arguments ask for: None (the method's paper's) unless an optimiser option is given."""
    given = {
        "lr": args.lr,
        "momentum": args.momentum,
        "weight_decay": args.weight_decay,
        "schedule": args.lr_schedule,
        "scale_lr_by_quantity": args.scale_lr_by_quantity or None,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if args.optimizer is None and not given:
        return None
    paper = dict(METHODS.get(args.method).method_class().paper_optim)
    base = paper if args.optimizer in (None, paper.get("name")) else {"name": args.optimizer}
    return from_dict(OptimConfig, {**base, **given})


def trainer_config_from_args(args: argparse.Namespace) -> TrainerConfig:
    """Build the TrainerConfig that ``args`` describe (unset optimiser and fusion: the method's paper's)."""
    options = parse_options(args.dataset_option)
    if args.path:
        options["path"] = args.path
    if args.data_dir:
        options["data_dir"] = args.data_dir
    if args.preset:
        options["preset"] = args.preset
    sampler = getattr(args, "sampler", "uniform") or "uniform"
    return TrainerConfig(
        dataset=args.dataset,
        dataset_options=options,
        modalities=tuple(args.modalities.split(",")) if args.modalities else None,
        method=args.method,
        method_options=parse_options(args.method_option),
        model=ModelConfig(
            encoder=args.encoder,
            encoders=dict(pair.split("=", 1) for pair in args.encoders.split(",")) if args.encoders else {},
            encoder_options=_encoder_options(args.encoder_option),
            fusion=args.fusion,
            feature_dim=args.feature_dim,
        ),
        optim=optim_from_args(args),
        batch_size=args.batch_size,
        epochs=args.epochs,
        decision_interval=args.decision_interval,
        dus_losses=args.dus_losses or not sampler.startswith("uniform"),
        statistics=StatisticsConfig(kind=args.statistic),
        seed=args.seed,
        device=args.device,
        num_threads=args.threads,
    ).resolved()


def _encoder_options(pairs: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in parse_options(pairs).items():
        modality, dot, option = key.partition(".")
        if not dot or not option:
            raise DUSError(f"--encoder-option needs MODALITY.KEY=VALUE, got {key!r}")
        out.setdefault(modality, {})[option] = value
    return out


def result_table(result: FitResult, modalities: Sequence[str]) -> pd.DataFrame:
    """Fused and per-modality accuracies of a fit on validation and test, in percent."""
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
    from mml_backbones.samplers import make_sampler

    config = trainer_config_from_args(args)
    trainer = Trainer(config)
    trust = args.trust_file
    sampler = make_sampler(args.sampler, modalities=trainer.modalities, batch_size=config.batch_size, trust_file=trust)
    out = Path(args.out) if args.out else None
    standardized = [m for m in trainer.splits.info.get("standardized", ()) if m in trainer.modalities]
    print(
        f"training {config.method} on {config.dataset} ({', '.join(trainer.modalities)}; "
        f"standardized: {', '.join(standardized) if standardized else 'none'}), sampler {args.sampler}, "
        f"{config.epochs} epochs x {trainer.iterations_per_epoch} iterations, optimiser {config.optim.name} "
        f"lr {config.optim.lr:g}, fusion {config.model.fusion}, seed {config.seed}",
        file=sys.stderr,
    )
    result = trainer.fit(sampler, run_dir=out, resume=args.resume, progress=not args.no_progress, trust_file=trust)
    print(f"best epoch {result.best_epoch} (chosen on validation), {result.seconds:.1f} s")
    print(result_table(result, trainer.modalities).to_string())
    if out is not None:
        print(f"run directory: {out}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    """dus datasets."""
    from mml_backbones.data.registry import list_datasets, load_dataset
    from mml_backbones.data.synthetic import PRESETS

    rows = []
    for entry in list_datasets():
        if entry.name == "synthetic":
            for preset in PRESETS:
                s = load_dataset("synthetic", preset=preset)
                bayes = s.info["bayes_accuracy"]
                rows.append(
                    {
                        "dataset": f"synthetic --preset {preset}",
                        "modalities": ", ".join(f"{m}{list(s.train.input_shape(m))}" for m in s.modality_names),
                        "classes": s.num_classes,
                        "train/val/test": "/".join(str(n) for n in s.sizes().values()),
                        "bayes_acc": ", ".join(f"{k} {100 * v:.1f}" for k, v in bayes.items()),
                    }
                )
            continue
        row = {"dataset": entry.name, "modalities": "", "classes": "", "train/val/test": "", "bayes_acc": ""}
        if entry.needs_path:
            row["modalities"] = f"(local data: --path/--data-dir) {entry.summary}"
        else:
            try:
                s = load_dataset(entry.name)
                row["modalities"] = ", ".join(f"{m}{list(s.train.input_shape(m))}" for m in s.modality_names)
                row["classes"] = s.num_classes
                row["train/val/test"] = "/".join(str(n) for n in s.sizes().values())
            except DUSError as e:
                row["modalities"] = f"(unavailable: {e})"
        rows.append(row)
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    """dus methods."""
    for name in METHODS.names():
        entry = METHODS.get(name)
        cls = entry.method_class()
        print(f"{name}: {entry.summary}")
        if cls.reference:
            print(f"    reference: {cls.reference}")
        print(f"    config {cls.Config.__name__}: {json.dumps(to_dict(method_config(name)))}")
        print(f"    optimiser (paper): {json.dumps(cls.paper_optim)}; fusion: {cls.recommended_fusion or 'concat'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full ``dus`` parser, plug-in commands included."""
    parser = argparse.ArgumentParser(prog="dus", description="Rebalanced multimodal learning with DUS")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)
    for ep in entry_points(group="dus.commands"):
        ep.load()(sub)
    taken = set(sub.choices)

    if "train" not in taken:
        p = sub.add_parser("train", help="train one run with a sampler and report validation and test metrics")
        add_run_arguments(p)
        p.add_argument("--sampler", default="uniform", help="uniform, heuristic[:k=v,...] or policy:PATH.zip")
        p.add_argument("--out", help="run directory (config, metrics.csv, checkpoints, final.json)")
        p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
        p.add_argument("--trust-file", action="store_true", help=TRUST_FILE_HELP)
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.set_defaults(func=cmd_train)
    if "datasets" not in taken:
        sub.add_parser("datasets", help="list datasets with modalities, sizes and Bayes accuracies").set_defaults(
            func=cmd_datasets
        )
    if "methods" not in taken:
        sub.add_parser("methods", help="list training methods and their default configs").set_defaults(func=cmd_methods)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dus`` console script."""
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
