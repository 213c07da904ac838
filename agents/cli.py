"""``dus train-policy``, ``eval-policy``, ``headroom`` and ``demo`` (registered through the dus.commands entry point).

This module is imported by every ``dus`` invocation (``dus --help`` lists its commands), so it imports only the
standard library and torch-free configs at the top; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mml_backbones.cli import TRUST_FILE_HELP
from mml_backbones.config import parse_options

#: what dus train-policy writes in its run directory (``--overwrite`` removes these and nothing else)
POLICY_RUN_FILES = ("train_config.json", "policy.zip", "best", "checkpoints", "eval", "logs", "timing.json", "plots")
#: the short flags of dus train-policy, beside the ones derived from PolicyTrainingConfig
POLICY_ALIASES = {
    "env_id": ["--env"],
    "env_kwargs": ["--env-option"],
    "hyperparams": ["--hyper"],
    "vec_env": ["--vec"],
    "eval_env_kwargs": ["--eval-env-option"],
}


def register_commands(sub: Any) -> None:
    """Add this package's subcommands to the ``dus`` parser."""
    from agents.policy_config import PolicyTrainingConfig
    from mml_backbones.cli_config import add_config_flags, add_run_dir_flags

    p = sub.add_parser(
        "train-policy",
        help="train a sampling policy with Stable-Baselines3 on a DUS environment",
        description="Train a sampling policy (every PolicyTrainingConfig field is a flag). Flags not given keep "
        "their default, or, with --resume, the run's saved train_config.json.",
    )
    add_config_flags(p, PolicyTrainingConfig, aliases=POLICY_ALIASES)
    g = p.add_argument_group("run directory")
    g.add_argument("--out", default="runs/policy", help="run directory (must be empty, or give --resume/--overwrite)")
    add_run_dir_flags(g, "train_config.json", "--timesteps may grow to train on")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--trust-file", action="store_true", help=TRUST_FILE_HELP)
    p.set_defaults(func=cmd_train_policy)

    from agents.imitation_config import ImitationConfig

    p = sub.add_parser(
        "imitate",
        help="train a generalist sampler by imitating each train instance's oracle (behaviour cloning + DAgger)",
        description="Fit an SB3 policy to the oracle shares of an instance set's train instances (agents.imitation); "
        "every ImitationConfig field is a flag. The run directory keeps the demonstrations as they are played "
        "(a re-run resumes them).",
    )
    add_config_flags(p, ImitationConfig, aliases={"instance_set": ["--set"]})
    p.add_argument("--out", default="runs/imitation", help="run directory (policy.zip, demonstrations.csv, fit.json)")
    p.set_defaults(func=cmd_imitate)

    p = sub.add_parser("eval-policy", help="score a policy (and baselines) on held-out environment seeds")
    p.add_argument("--policy", required=True, help="policy .zip written by dus train-policy")
    p.add_argument("--env", default=None, help="environment id (default: the policy's)")
    p.add_argument("--episodes", type=int, help="score on the first N evaluation seeds 10000... (default 5)")
    p.add_argument("--seeds", metavar="START:COUNT", help="score on seeds START..START+COUNT-1 instead")
    p.add_argument(
        "--compare",
        default="uniform,heuristic",
        help="baseline samplers to score too, comma-separated ('heuristic' is v1's: gamma 2, equal budget; "
        "'uniform,heuristic:gamma=1,budget=free' for v0's; '' for none)",
    )
    p.add_argument("--env-option", action="append", metavar="KEY=VALUE", help="DUSEnvConfig / TrainerConfig field")
    p.add_argument("--csv", help="write one row per (sampler, seed) here")
    p.add_argument(
        "--instances",
        choices=["train", "test"],
        help="score on every instance of this split of an instance set, paired per instance, beside the cached "
        "oracle share (agents.family_eval)",
    )
    p.add_argument("--instance-set", default="two_modal", help="with --instances: a shipped set's name or a .json")
    p.add_argument("--plot", help="with --instances: save the per-instance and aggregate figure here (.png)")
    p.add_argument("--trust-file", action="store_true", help=TRUST_FILE_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval_policy)

    p = sub.add_parser("headroom", help="is there a sampler that beats uniform in this world? (the headroom gate)")
    p.add_argument("env", help="environment id, e.g. dus_env/DUS-v1")
    p.add_argument("--seeds", type=int, default=8, help="gate seeds 40000... (paired; apart from evaluation seeds)")
    p.add_argument("--csv", help="append episodes here as they finish; a re-run resumes (default: none kept)")
    p.add_argument(
        "--probes",
        default="full",
        choices=["full", "core"],
        help="full: every probe; core: uniform, the constant shares and the heuristic (gamma 2), as an oracle",
    )
    p.add_argument("--env-option", action="append", metavar="KEY=VALUE", help="DUSEnvConfig / TrainerConfig field")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_headroom)

    p = sub.add_parser(
        "demo",
        help="the main job: a learned sampler (the committed PPO policy, or --train) against uniform and the "
        "heuristic on dus_env/DUS-v1, in the environment and downstream",
    )
    p.add_argument("--out", default="demo_out")
    p.add_argument("--env", default="dus_env/DUS-v1", help="environment id (the policy must fit its modalities)")
    p.add_argument("--policy", help="a policy .zip to load instead of the committed one")
    p.add_argument("--train", action="store_true", help="train a PPO policy on the spot instead (several minutes)")
    p.add_argument("--timesteps", type=int, default=1536, help="with --train: environment steps")
    p.add_argument("--n-envs", type=int, default=2, help="with --train: parallel environments")
    p.add_argument("--env-seeds", type=int, default=10, help="held-out environment seeds (10000...)")
    p.add_argument("--seeds", type=int, default=5, help="unseen downstream seeds")
    p.add_argument(
        "--instances",
        help="comma-separated test instances for the generalist's step ('' skips it; default: strong-s101-sgd4e-3, "
        "mild-s104-adam5e-4, agents.demo.DEMO_INSTANCES)",
    )
    p.add_argument("--instance-set", default="two_modal", help="the set the --instances belong to")
    p.add_argument("--instance-seeds", type=int, default=5, help="held-out seeds per instance (10000...)")
    p.add_argument("--trust-file", action="store_true", help=TRUST_FILE_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)


def cmd_headroom(args: argparse.Namespace) -> int:
    """dus headroom."""
    from agents.headroom import format_gate, gate_table, run_gate

    df = run_gate(
        args.env,
        args.seeds,
        args.csv,
        args.probes,
        progress=not args.no_progress,
        **parse_options(args.env_option),
    )
    print(format_gate(gate_table(df), args.env))
    return 0


def policy_config_from_args(args: argparse.Namespace) -> Any:
    """dus train-policy's PolicyTrainingConfig: the flags given, on the defaults or the resumed run's saved config.

    A resumed run keeps its train_config.json; a flag that changes it is refused with ``key: old -> new``,
    except ``--timesteps`` growing (train on).
    """
    from agents.policy_config import PolicyTrainingConfig
    from mml_backbones.cli_config import differences, format_differences, given_values, overlay
    from mml_backbones.config import from_dict, to_dict
    from mml_backbones.errors import ConfigError
    from mml_backbones.run_dir import check_run_dir

    given = given_values(args)
    out = Path(args.out)
    saved = check_run_dir(out, args.resume, args.overwrite, "train_config.json", POLICY_RUN_FILES)
    if saved is None:
        return from_dict(PolicyTrainingConfig, overlay(to_dict(PolicyTrainingConfig()), given))
    base = {k: saved[k] for k in to_dict(PolicyTrainingConfig()) if k in saved}
    # the overrides alone (older runs saved only the resolved hyper-parameters, which the overrides must match)
    base["hyperparams"] = saved.get("hyper_overrides", saved.get("hyperparams", {}))
    base = overlay(to_dict(PolicyTrainingConfig()), base)
    changes = differences(base, given)
    grown = changes.pop("timesteps", None)
    if grown is not None and grown[1] < grown[0]:
        changes["timesteps"] = grown
    if changes:
        raise ConfigError(
            f"{out} was trained with other settings; a resumed run keeps its train_config.json (only --timesteps "
            f"may grow, to train on). Conflicting flags:\n{format_differences(changes)}\n"
            "drop them to resume as it was, or start a new run in another --out"
        )
    # the run's own overrides, never the resolved values (repr strings where they are not plain numbers)
    overrides = {**saved.get("hyper_overrides", {}), **given.pop("hyperparams", {})}
    return from_dict(PolicyTrainingConfig, overlay({**base, "hyperparams": overrides}, given))


def cmd_train_policy(args: argparse.Namespace) -> int:
    """dus train-policy."""
    from agents.training import train_policy
    from mml_backbones.config import to_dict

    config = policy_config_from_args(args)
    if args.resume:
        print(f"resuming {args.out} to {config.timesteps} steps (train_config.json: {config.algo} on {config.env_id})")
    result = train_policy(
        out_dir=args.out,
        progress_bar=not args.no_progress,
        resume=args.resume,
        trust_file=args.trust_file,
        **to_dict(config),
    )
    print(f"trained {config.algo} for {result.timesteps} steps on {config.env_id}")
    if result.eval_returns:
        print(
            f"mean return on {config.eval_episodes} selection seeds per evaluation (picks best/best_model.zip): "
            + ", ".join(f"{r:.2f}" for r in result.eval_returns)
        )
    print(f"policy: {result.policy}")
    return 0


def cmd_imitate(args: argparse.Namespace) -> int:
    """dus imitate."""
    from agents.imitation import train_imitation
    from agents.imitation_config import ImitationConfig
    from mml_backbones.cli_config import given_values
    from mml_backbones.config import from_dict

    config = from_dict(ImitationConfig, given_values(args))
    path = train_imitation(config, Path(args.out))
    print(f"imitation generalist on {config.instance_set!r} (train split, {config.rounds} DAgger rounds): {path}")
    return 0


def split_samplers(text: str) -> list[str]:
    """Split a comma-separated list of sampler specs, keeping a spec's own ``key=value`` options together.

    ``"uniform,heuristic:gamma=2,budget=equal"`` -> ``["uniform", "heuristic:gamma=2,budget=equal"]``.
    """
    specs: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if specs and "=" in part and ":" not in part:  # an option of the previous spec, not a new sampler
            specs[-1] += "," + part
        else:
            specs.append(part)
    return specs


def eval_seed_list(episodes: int | None, seeds: str | None) -> list[int]:
    """The seeds ``dus eval-policy`` scores on: ``--seeds START:COUNT``, else the first ``--episodes`` eval seeds."""
    from dus_env.seeds import eval_seeds, parse_seed_span
    from mml_backbones.errors import ConfigError

    if seeds is not None:
        if episodes is not None:
            raise ConfigError("give --episodes or --seeds, not both")
        return parse_seed_span(seeds)
    if episodes is not None and episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    return eval_seeds(5 if episodes is None else episodes)


def cmd_eval_policy(args: argparse.Namespace) -> int:
    """dus eval-policy."""
    import gymnasium as gym
    import pandas as pd

    import dus_env  # noqa: F401
    from agents.evaluation import evaluate_in_env, summarise
    from agents.policy_sampler import PolicySampler
    from dus_env.seeds import purpose_of
    from mml_backbones.samplers import make_sampler

    seeds = eval_seed_list(args.episodes, args.seeds)  # a bad value fails before anything is loaded
    seen = sorted({p for p in map(purpose_of, seeds) if p in ("train", "selection", "gate")})
    if seen:  # allowed (anyone may choose), but such scores are not held-out
        print(f"note: these seeds are in the {' and '.join(seen)} range(s) of dus_env.seeds", file=sys.stderr)
    policy = PolicySampler(args.policy, trust_file=args.trust_file)
    name = policy.metadata["algo"]
    if args.instances:
        return eval_on_instances(args, policy, seeds)
    env_id = args.env or policy.metadata["env_id"]
    env = gym.make(env_id, **parse_options(args.env_option)).unwrapped
    policy.check_modalities(env.modalities)  # before any baseline is played
    samplers: dict[str, Any] = {spec: make_sampler(spec) for spec in split_samplers(args.compare)}
    samplers[name] = policy
    df = evaluate_in_env(env, samplers, seeds, progress=not args.no_progress)
    if args.csv:
        df.to_csv(args.csv, index=False)
    reference = "uniform" if "uniform" in samplers else name
    ret = summarise(df, "return", reference=reference)
    acc = summarise(df, "final_val_acc", reference=reference)
    table = pd.DataFrame({"return": ret["mean"].round(2), "return_std": ret["std"].round(2)})
    table["final_val_acc"] = (100 * acc["mean"]).round(2)
    if "diff_vs_" + reference in acc:  # the paired difference of final validation accuracy, in points
        table[f"acc_vs_{reference}"] = (100 * acc["diff_vs_" + reference]).round(2)
        table["ci95"] = [
            "" if k == reference else f"[{100 * r['ci95_low']:+.2f}, {100 * r['ci95_high']:+.2f}]"
            for k, r in acc.iterrows()
        ]
    means = df.groupby("sampler", sort=False)[[c for c in df if c.startswith("mean_n/")]].mean().round(1)
    span = f"seeds {seeds[0]}..{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else f"seeds {seeds}"
    print(f"{env_id}: {len(seeds)} episodes per sampler ({span})")
    print(table.join(means).to_string())
    return 0


def eval_on_instances(args: argparse.Namespace, policy: Any, seeds: list[int]) -> int:
    """dus eval-policy --instances SPLIT: per instance, the policy and the baselines paired against uniform."""
    from agents.family_eval import evaluate_instances, instance_scores, summary
    from agents.oracle import load_oracles
    from mml_backbones.errors import DataFileNotFoundError

    try:
        oracles = load_oracles(args.instance_set)
    except DataFileNotFoundError as e:
        print(f"note: {e}; scoring without the oracle", file=sys.stderr)
        oracles = None
    # uniform is always played (the pairing); "heuristic" is v1's, the one the oracles are compared with
    samplers: dict[str, Any] = {s: s for s in split_samplers(args.compare) if s != "uniform"}
    samplers[policy.metadata["algo"]] = policy
    df = evaluate_instances(
        samplers,
        args.instance_set,
        args.instances,
        seeds,
        oracles,
        progress=not args.no_progress,
        **parse_options(args.env_option),
    )
    if args.csv:
        df.to_csv(args.csv, index=False)
    scores = instance_scores(df, oracles)
    span = f"{len(seeds)} seeds each ({seeds[0]}..{seeds[-1]})"
    print(f"{args.instance_set}, {args.instances} instances, {span}: kept epoch's validation score vs uniform (points)")
    print(scores.round(2).to_string(index=False))
    print(summary(scores).round(2).to_string())
    if oracles is not None:
        from agents.family_plot import plot_family
        from agents.family_stats import aggregate

        print("aggregates (stratified bootstrap 95% intervals; normalised on the instances with headroom):")
        print(aggregate(df, oracles).to_string(index=False))
        if args.plot:
            print(f"figure: {plot_family(df, oracles, args.plot)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """dus demo."""
    from agents.demo import run_demo
    from mml_backbones.errors import ConfigError

    if args.train and args.policy:
        raise ConfigError("give --train or --policy, not both")
    summary = run_demo(
        Path(args.out),
        env_id=args.env,
        policy=args.policy,
        train=args.train,
        timesteps=args.timesteps,
        n_envs=args.n_envs,
        env_seeds=args.env_seeds,
        seeds=args.seeds,
        progress=not args.no_progress,
        trust_file=args.trust_file,
        instance_set=args.instance_set,
        instances=None if args.instances is None else tuple(filter(None, args.instances.split(","))),
        instance_seeds=args.instance_seeds,
    )
    print(json.dumps(summary["files"], indent=2), file=sys.stderr)
    return 0
