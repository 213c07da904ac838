"""The main job (``make demo`` / ``dus demo``): a learned sampler against uniform and the heuristic on ``DUS-v1``.

1. Load the PPO policy committed in the repository (trained on ``dus_env/DUS-v1`` with ``dus train-policy``, kept
   on the selection seeds), or with ``train=True`` train one on the spot.
2. Score uniform, the equal-budget heuristic and the policy in the environment on held-out seeds: final
   validation accuracy, paired with uniform on the same seed (the paired reward's return, without its reference run).
3. Plug each into ordinary downstream training runs (``Trainer.fit``, seeds never seen by the agent), select on
   validation, report test accuracy: mean +- std and the paired difference against uniform.
4. Plot each modality's quantity over training for the heuristic and the learned sampler.
5. The instance-set generalist (``COMMITTED_GENERALIST``) on two test instances of ``two_modal`` it never saw, one
   where the weak modality should be favoured and one where uniform should be left alone, beside uniform and the
   heuristic, each paired with uniform on held-out seeds (the kept epoch's validation score).
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import pandas as pd

import dus_env  # noqa: F401
from agents.evaluation import evaluate_downstream, evaluate_in_env, summarise
from agents.heuristic import V1_HEURISTIC
from agents.policy_sampler import COMMITTED_GENERALIST, PolicySampler
from agents.seeds import downstream_seeds, eval_seeds
from mml_backbones.errors import ConfigError
from mml_backbones.samplers import UniformSampler, make_sampler

ENV_ID = "dus_env/DUS-v1"
#: the repository's root (the committed policy's path is relative to it, not to the working directory)
REPO_ROOT = Path(__file__).resolve().parents[1]
#: the PPO policy committed for the demo, relative to the repository root
COMMITTED_POLICY = "benchmarks/results/policies_v1/DUS-v1_ppo/best/best_model.zip"
#: v1's named heuristic, the one ``dus eval-policy`` compares with too (the spec ``heuristic``)
HEURISTIC = V1_HEURISTIC
#: two test instances of two_modal the generalist never saw: favouring the weak modality pays on the first (its
#: oracle: 48/80), nothing beats uniform on the second (Adam)
DEMO_INSTANCES = ("strong-s101-sgd4e-3", "mild-s104-adam5e-4")


def plot_quantities(run_root: Path, samplers: list[str], seed: int, path: Path) -> None:
    """Each modality's quantity per decision for the given samplers, from their runs' decisions.csv."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(samplers), figsize=(4.5 * len(samplers), 3.2), sharey=True)
    for ax, name in zip(axes if len(samplers) > 1 else [axes], samplers):
        d = pd.read_csv(run_root / name / f"seed_{seed}" / "decisions.csv")
        for col in [c for c in d if c.startswith("n/")]:
            ax.step(d["iteration"], d[col], where="post", label=col[2:])
        ax.set_title(f"{name} (seed {seed})")
        ax.set_xlabel("iteration")
    (axes[0] if len(samplers) > 1 else axes).set_ylabel("samples per iteration $n_m$")
    (axes[-1] if len(samplers) > 1 else axes).legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def trained_on(default: str = "two_modal") -> str:
    """The instance set whose train instances the committed generalist imitated (its ``train_config.json``)."""
    config = committed_policy(COMMITTED_GENERALIST).parent / "train_config.json"
    return json.loads(config.read_text()).get("instance_set", default) if config.exists() else default


def committed_policy(relative: str | None = None) -> Path:
    """A committed policy's absolute path (the demo's by default); a clear error when this checkout lacks it."""
    relative = relative or COMMITTED_POLICY
    path = REPO_ROOT / relative
    if not path.is_file():
        raise ConfigError(
            f"the committed policy {relative} is missing under {REPO_ROOT} (it ships with a git checkout "
            "of the repository, not with an installed package); run `dus demo --train` to train one on the spot, "
            "or pass --policy PATH.zip"
        )
    return path


def generalist_on_instances(
    instance_set: str, names: list[str], seeds: list[int], progress: bool = True
) -> pd.DataFrame:
    """The committed generalist, uniform and the heuristic on test instances, paired with uniform per instance."""
    from agents.family_eval import allocation_columns, evaluate_instances, instance_scores
    from agents.oracle import load_oracles

    generalist = PolicySampler(committed_policy(COMMITTED_GENERALIST))
    samplers = {"heuristic": HEURISTIC, "generalist": generalist}
    df = evaluate_instances(samplers, instance_set, "test", seeds, None, names=names, progress=progress)
    scores = instance_scores(df).set_index(["instance", "sampler"])
    table = scores[["vs uniform (pp)", "ci95"]].round(2).join(allocation_columns(df))
    oracles = load_oracles(instance_set)
    table["oracle share (gate seeds)"] = [
        oracles[i].share if i in oracles and oracles[i].headroom else "none: leave uniform" for i, _ in table.index
    ]
    return table


def _shown(path: Path) -> str:
    """``path`` relative to the repository root when it lies inside it, else as given."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def training_command(policy: Path, num_modalities: int = 2) -> str | None:
    """The ``dus train-policy`` command that wrote ``policy``, rebuilt from its run's train_config.json."""
    from agents.algorithms import algo_spec

    run_dir = policy.parent.parent if policy.parent.name == "best" else policy.parent
    config_file = run_dir / "train_config.json"
    if not config_file.is_file():
        return None
    c = json.loads(config_file.read_text())
    spec = algo_spec(c["algo"])
    args = ["dus", "train-policy", "--env", c["env_id"], "--algo", c["algo"], "--timesteps", str(c["timesteps"])]
    args += ["--n-envs", str(c["n_envs"]), "--seed", str(c["seed"]), "--out", _shown(run_dir)]
    for k, v in c.get("env_kwargs", {}).items():
        if not (k == "action_type" and v == spec.action_type):  # the algorithm's own action type is the default
            args += ["--env-option", f"{k}={json.dumps(v)}"]
    defaults = spec.defaults(c["episode_length"], num_modalities)
    for k, v in c.get("hyperparams", {}).items():
        d = defaults.get(k)
        if d is None or v != (d if isinstance(d, int | float | str | bool) else repr(d)):
            args += ["--hyper", f"{k}={v}"]
    return shlex.join(args)


def run_demo(
    out: Path,
    env_id: str = ENV_ID,
    policy: str | Path | None = None,
    train: bool = False,
    timesteps: int = 1536,
    n_envs: int = 2,
    env_seeds: int = 10,
    seeds: int = 5,
    progress: bool = True,
    trust_file: bool = False,
    instance_set: str = "two_modal",
    instances: tuple[str, ...] | None = None,
    instance_seeds: int = 5,
) -> dict[str, Any]:
    """Run the demo and print its tables; returns the tables and the files written.

    ``trust_file`` loads ``policy`` with SB3's full loader, which unpickles it (logged); off by default.
    ``instances`` (test instances of ``instance_set``; None: ``DEMO_INSTANCES``; empty: skip step 4) are played
    ``instance_seeds`` times.
    """
    instances = DEMO_INSTANCES if instances is None else instances
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if train:
        from agents.training import train_policy

        print(f"[1/4] training PPO on {env_id} for {timesteps} steps with {n_envs} environments ...", flush=True)
        trained = train_policy(env_id, "ppo", timesteps, out / "ppo", n_envs=n_envs, progress_bar=progress)
        path = trained.policy
        policy_sampler = PolicySampler(path)
        print(f"      done in {time.perf_counter() - t0:.0f} s; policy {path}", flush=True)
    else:
        path = Path(policy) if policy is not None else committed_policy()
        if not path.is_file():
            raise ConfigError(f"policy file not found: {path}")
        policy_sampler = PolicySampler(path, trust_file=trust_file)
        meta = policy_sampler.metadata
        what = "the committed policy" if policy is None else "the policy"
        kept = "best on the selection seeds at step" if path.parent.name == "best" else "step"
        print(
            f"[1/4] loaded {what} {_shown(path)} ({meta['algo']} on {meta['env_id']}, {kept} "
            f"{meta.get('timesteps', '?')}; --train trains one on the spot instead)"
        )
        command = training_command(path, policy_sampler.num_modalities)
        print(f"      (trained with: {command})" if command else "      (no train_config.json beside it)", flush=True)
    name = policy_sampler.metadata["algo"]

    # uniform is one of the rows, so the environment's own reference run is not needed: its final accuracy is
    # uniform's on the same seed, and the paired difference below is the paired reward's return
    env = gym.make(env_id, reference=False, reward="delta_val_acc").unwrapped
    policy_sampler.check_modalities(env.modalities)  # before any episode is played
    samplers: dict[str, Any] = {"uniform": UniformSampler(), "heuristic": make_sampler(HEURISTIC), name: policy_sampler}
    ev = eval_seeds(env_seeds)
    t1 = time.perf_counter()
    print(
        f"[2/4] {env_id}: final validation accuracy on {len(ev)} held-out environment seeds "
        f"({ev[0]}..{ev[-1]}), paired with uniform; heuristic = {HEURISTIC} ...",
        flush=True,
    )
    env_df = evaluate_in_env(env, samplers, ev, progress=progress)
    acc = summarise(env_df, "final_val_acc")
    env_table = pd.DataFrame(
        {
            "val acc (%)": acc.apply(lambda r: f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f}", axis=1),
            "diff vs uniform (pp, 95% CI)": _diffs(acc),
            **{c: env_df.groupby("sampler", sort=False)[c].mean().round(1) for c in env_df if c.startswith("mean_n")},
        }
    )
    print(env_table.to_string(), flush=True)
    t2 = time.perf_counter()
    print(f"      {t2 - t1:.0f} s", flush=True)

    config = env.config.trainer_config(seed=0)
    ds_seeds = downstream_seeds(seeds)
    print(
        f"[3/4] downstream Trainer.fit, {len(ds_seeds)} unseen seeds ({ds_seeds[0]}..{ds_seeds[-1]}) per sampler, "
        "epoch chosen on validation, test split ...",
        flush=True,
    )
    ds_df = evaluate_downstream(config, samplers, ds_seeds, run_root=str(out / "downstream"), progress=progress)
    test = summarise(ds_df, "test/fused_acc")
    table = pd.DataFrame(
        {
            "test acc (%)": test.apply(lambda r: f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f}", axis=1),
            "diff vs uniform (pp, 95% CI)": _diffs(test),
        }
    )
    if "test/probe/weak" in ds_df:
        probe = summarise(ds_df, "test/probe/weak")
        table["test probe weak (%)"] = probe.apply(lambda r: f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f}", axis=1)
    print(table.to_string(), flush=True)
    t3 = time.perf_counter()
    print(f"      {t3 - t2:.0f} s", flush=True)
    plot = out / "quantities.png"
    plot_quantities(out / "downstream", ["heuristic", name], ds_seeds[0], plot)
    env_df.to_csv(out / "env_eval.csv", index=False)
    ds_df.to_csv(out / "downstream.csv", index=False)
    files = {"plot": str(plot), "env_eval": str(out / "env_eval.csv"), "downstream": str(out / "downstream.csv")}
    instance_table = None
    if instances:
        iseeds = eval_seeds(instance_seeds)
        print(
            f"[4/4] the instance-set generalist ({COMMITTED_GENERALIST}, dus imitate on {trained_on()}'s train "
            f"instances) on test instances it never saw, {len(iseeds)} held-out seeds each, kept epoch's validation "
            "score paired with uniform ...",
            flush=True,
        )
        instance_table = generalist_on_instances(instance_set, list(instances), iseeds, progress)
        print(instance_table.to_string(), flush=True)
        instance_table.to_csv(out / "instances.csv")
        files["instances"] = str(out / "instances.csv")
        print(f"      {time.perf_counter() - t3:.0f} s", flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s", flush=True)
    return {"env": env_table, "downstream": table, "instances": instance_table, "policy": str(path), "files": files}


def _diffs(summary: pd.DataFrame) -> list[str]:
    """``+d [low, high]`` in points per row of a summary ('' for the reference row)."""
    if "diff_vs_uniform" not in summary:
        return [""] * len(summary)
    return [
        "" if pd.isna(r["diff_vs_uniform"]) else _ci(r["diff_vs_uniform"], r["ci95_low"], r["ci95_high"])
        for _, r in summary.iterrows()
    ]


def _ci(mean: float, low: float, high: float) -> str:
    if pd.isna(low):
        return f"{100 * mean:+.2f}"
    return f"{100 * mean:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]"
