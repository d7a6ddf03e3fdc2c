"""R_random: the uniformly random policy's mean return per task, the zero of the normalised score.

    python benchmarks/random_returns.py            # HalfCheetah-v4 and HalfCheetahBackward-v4, 10 episodes each

The LatentSAC-parity gate (docs/modules/latent_sac.md) scores a return R as (R - R_random) / (R_SAC - R_random).
Actions are drawn uniformly from the action space (seeded), one episode per seed 0..n-1, with the same
1,000-step episodes as the evaluations. Writes ``benchmarks/results/random_returns.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np

import sb3_latent  # noqa: F401  (registers HalfCheetahBackward-v4)


def random_return(env_id: str, seed: int) -> float:
    env = gym.make(env_id)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        total += float(reward)
        done = terminated or truncated
    env.close()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["HalfCheetah-v4", "HalfCheetahBackward-v4"])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "random_returns.json")
    args = parser.parse_args()
    results = {}
    for env_id in args.envs:
        returns = [random_return(env_id, seed) for seed in range(args.episodes)]
        results[env_id] = {"mean": float(np.mean(returns)), "returns": returns}
        print(f"{env_id}: {np.mean(returns):.1f} (std {np.std(returns):.1f}, {args.episodes} episodes)")
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
