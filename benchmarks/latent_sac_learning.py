"""Learning curves of LatentSAC against SB3's SAC, with the hyperparameters of our YAMLs.

Each (algorithm, env, seed) run trains in its own single-threaded process (at most ``--workers`` at a time),
evaluates the deterministic policy on a separate eval env every ``--eval-freq`` steps and appends one CSV row per
evaluation to ``benchmarks/results/<env>/<algo>_seed<seed>.csv`` as it goes. Runs whose CSV already reaches
``--steps`` are skipped (resumable; an unfinished run starts over). The plot shows mean +- 95% CI across seeds.

    python benchmarks/latent_sac_learning.py --env Pendulum-v1 --seeds 0 1 2 --steps 15000 --eval-freq 1000
    python benchmarks/latent_sac_learning.py --env HalfCheetah-v4 --seeds 0 --steps 40000 --eval-freq 5000
    python benchmarks/latent_sac_learning.py --env Pendulum-v1 --plot-only
    python benchmarks/latent_sac_learning.py --algos latent_sac --results benchmarks/results/speed-after   # elsewhere
    python benchmarks/latent_sac_learning.py --algos latent_sac --compare benchmarks/results/A benchmarks/results/B
    python benchmarks/latent_sac_learning.py --algos latent_sac --params generator_train_freq:2 --workers 1 ...
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ALGOS = ("latent_sac", "sac")
FIELDS = ("algo", "env", "seed", "timesteps", "mean_reward", "std_reward", "wall_time_s")
# rl-zoo3 2.9's sac.yml values, used when our hyperparams/sac.yml has no entry for the env.
ZOO_SAC_FALLBACK: dict[str, dict[str, Any]] = {
    "Pendulum-v1": {"learning_rate": 1e-3},
    "HalfCheetah-v4": {"learning_starts": 10000},
    "HalfCheetah-v5": {"learning_starts": 10000},
}


def hyperparams(algo: str, env_id: str) -> dict[str, Any]:
    """Keyword arguments for the algorithm from hyperparams/<algo>.yml (rl-zoo3 format), zoo-only keys dropped."""
    import yaml

    path = ROOT / "hyperparams" / f"{algo}.yml"
    entries = yaml.safe_load(path.read_text()) if path.exists() else {}
    entry = dict((entries or {}).get(env_id) or ({} if algo == "latent_sac" else ZOO_SAC_FALLBACK.get(env_id, {})))
    for key in ("n_timesteps", "policy", "n_envs", "normalize", "env_wrapper", "callback", "frame_stack"):
        entry.pop(key, None)
    if isinstance(entry.get("policy_kwargs"), str):
        from torch import nn  # noqa: F401  (rl-zoo3 policy_kwargs strings may name nn.* classes)

        entry["policy_kwargs"] = eval(entry["policy_kwargs"])
    return entry


def csv_path(env_id: str, algo: str, seed: int, results: Path = RESULTS) -> Path:
    return results / env_id / f"{algo}_seed{seed}.csv"


def finished(path: Path, steps: int) -> bool:
    if not path.exists():
        return False
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return bool(rows) and int(rows[-1]["timesteps"]) >= steps


def run(job: tuple[str, str, int, int, int, int, Path, dict[str, Any]]) -> str:
    """Train one (algo, env, seed) in this single-threaded process, appending a CSV row per evaluation."""
    algo, env_id, seed, steps, eval_freq, eval_episodes, results, params = job
    import gymnasium as gym
    import torch as th
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    from sb3_latent import LatentSAC
    from sb3_latent.envs import register_envs

    th.set_num_threads(1)
    register_envs()
    path = csv_path(env_id, algo, seed, results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # an unfinished run starts over
    eval_env = gym.make(env_id)
    eval_env.reset(seed=10_000 + seed)
    start = time.time()

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_freq == 0:
                mean, std = evaluate_policy(self.model, eval_env, n_eval_episodes=eval_episodes, deterministic=True)
                row = dict(algo=algo, env=env_id, seed=seed, timesteps=self.num_timesteps, mean_reward=mean,
                           std_reward=std, wall_time_s=round(time.time() - start, 1))  # fmt: skip
                new = not path.exists()
                with path.open("a", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=FIELDS)
                    if new:
                        writer.writeheader()
                    writer.writerow(row)
            return True

    cls = LatentSAC if algo == "latent_sac" else SAC
    kwargs = hyperparams(algo, env_id) | (params if algo == "latent_sac" else {})
    model = cls("MlpPolicy", env_id, seed=seed, verbose=0, **kwargs)
    model.learn(steps, callback=Evaluate())
    return f"{algo} {env_id} seed {seed}: {time.time() - start:.0f} s"


def plot(env_id: str, results: Path = RESULTS) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from scipy import stats

    fig, ax = plt.subplots(figsize=(6, 4))
    plotted = False
    for algo, label in (("sac", "SB3 SAC"), ("latent_sac", "LatentSAC")):
        curves = []
        for path in sorted((results / env_id).glob(f"{algo}_seed*.csv")):
            with path.open() as f:
                rows = list(csv.DictReader(f))
            if rows:
                curves.append({int(r["timesteps"]): float(r["mean_reward"]) for r in rows})
        if not curves:
            continue
        steps = sorted(set.intersection(*(set(c) for c in curves)))
        values = np.array([[c[s] for s in steps] for c in curves])
        mean = values.mean(axis=0)
        ax.plot(steps, mean, label=f"{label} ({len(curves)} seed{'s' if len(curves) > 1 else ''})")
        if len(curves) > 1:
            half = stats.t.ppf(0.975, len(curves) - 1) * values.std(axis=0, ddof=1) / np.sqrt(len(curves))
            ax.fill_between(steps, mean - half, mean + half, alpha=0.25)
        plotted = True
    if not plotted:
        plt.close(fig)
        return None
    ax.set_xlabel("env steps")
    ax.set_ylabel("deterministic eval return")
    ax.set_title(f"{env_id}: mean and 95% CI across seeds")
    ax.legend()
    ax.grid(alpha=0.3)
    out = results / f"{env_id}_learning.png"
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def final_returns(env_id: str, algo: str, results: Path, steps: int) -> list[float]:
    """The last evaluation's return of each finished seed under ``results``."""
    finals = []
    for path in sorted((results / env_id).glob(f"{algo}_seed*.csv")):
        with path.open() as f:
            rows = list(csv.DictReader(f))
        if rows and int(rows[-1]["timesteps"]) >= steps:
            finals.append(float(rows[-1]["mean_reward"]))
    return finals


def compare(env_id: str, algo: str, before: Path, after: Path, steps: int) -> str:
    """Mean final return of two result sets, their standard errors, and the gap in units of the pooled SE."""
    import numpy as np

    lines, stats = [], []
    for name, results in (("before", before), ("after", after)):
        finals = np.array(final_returns(env_id, algo, results, steps))
        if len(finals) < 2:
            raise SystemExit(f"{results / env_id}: need >= 2 finished {algo} seeds to compare, found {len(finals)}.")
        se = finals.std(ddof=1) / np.sqrt(len(finals))
        stats.append((finals.mean(), se))
        per_seed = ", ".join(f"{value:.1f}" for value in finals)
        lines.append(f"{name:6s} ({results}): mean {finals.mean():.1f} +- {se:.1f} (SE, {len(finals)} seeds: {per_seed})")
    (mean_a, se_a), (mean_b, se_b) = stats
    pooled = float(np.sqrt(se_a**2 + se_b**2))
    gap = abs(mean_b - mean_a) / pooled
    verdict = "within" if gap < 2 else "NOT within"
    lines.append(f"difference {mean_b - mean_a:+.1f} = {gap:.2f} pooled SE ({verdict} 2 pooled SE)")
    return "\n".join(lines)


def main() -> None:
    from rl_zoo3.utils import StoreDict

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=15_000)
    parser.add_argument("--eval-freq", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="processes at a time (one thread each)")
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument(
        "--params",
        nargs="+",
        action=StoreDict,
        default={},
        help="extra LatentSAC arguments, in rl-zoo3's -params syntax (generator_train_freq:2)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="results root: <results>/<env>/<algo>_seed<k>.csv")
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("BEFORE", "AFTER"),
        help="print the final returns of two results roots (the first of --algos) and their gap in pooled SE",
    )
    args = parser.parse_args()

    if args.compare:
        print(compare(args.env, args.algos[0], *args.compare, steps=args.steps))
        return
    if not args.plot_only:
        # SAC and LatentSAC of the same seed side by side, so that both see the same machine load.
        jobs = [
            (algo, args.env, seed, args.steps, args.eval_freq, args.eval_episodes, args.results.resolve(), args.params)
            for seed in args.seeds
            for algo in args.algos
            if not finished(csv_path(args.env, algo, seed, args.results), args.steps)
        ]
        os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned workers before they import torch
        with multiprocessing.get_context("spawn").Pool(args.workers, maxtasksperchild=1) as pool:
            for message in pool.imap_unordered(run, jobs):
                print(message, flush=True)
    out = plot(args.env, args.results)
    print(f"plot: {out}")


if __name__ == "__main__":
    main()
