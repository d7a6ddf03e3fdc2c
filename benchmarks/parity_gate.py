"""The LatentSAC-parity gate, from an experiment's evaluations.csv: each LatentSAC condition against SAC on its task.

    python benchmarks/parity_gate.py benchmarks/results/experiments/latent-ablation/evaluations.csv \
        --pair sac:candidate --pair sac:rung4-elbo
    python benchmarks/parity_gate.py runs/latent-ablation/evaluations.csv --pair sac-forward:candidate-forward

For final return (the last evaluation) and mean return over training (the mean of all evaluations), per pair:

- the normalised score (R - R_random) / (R_SAC - R_random), R the LatentSAC condition's mean over seeds, R_SAC SAC's,
  R_random the uniform-random policy's mean return on the task over 10 episodes
  (``benchmarks/results/random_returns.json``, written by ``benchmarks/random_returns.py``);
- the mean difference LatentSAC - SAC with its 95% percentile-bootstrap CI (seeds resampled within each condition,
  ``scipy.stats.bootstrap`` on the two independent samples);
- pass: score >= 0.9 and the CI's upper end >= 0 (the CI includes 0 or lies above it).

Only seeds that both conditions have evaluated to the same last step count. With 10 seeds this is a screening
standard, not a proof of equivalence.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

RANDOM_RETURNS = Path(__file__).parent / "results" / "random_returns.json"
SCORE_GATE = 0.9


def read_curves(path: Path) -> dict[str, dict[int, dict[int, float]]]:
    """condition -> seed -> step -> mean evaluation return."""
    curves: dict[str, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            curves[row["condition"]][int(row["seed"])][int(row["steps"])] = float(row["eval_return_mean"])
    return curves


def per_seed(curve: dict[int, float]) -> tuple[int, float, float]:
    """(last step, final return, mean over training) of one seed's curve."""
    steps = sorted(curve)
    return steps[-1], curve[steps[-1]], float(np.mean([curve[step] for step in steps]))


def difference_ci(latent: np.ndarray, sac: np.ndarray) -> tuple[float, float]:
    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    result = stats.bootstrap((latent, sac), statistic, n_resamples=10_000, method="percentile", rng=np.random.default_rng(0))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluations", type=Path, help="an experiment's evaluations.csv")
    parser.add_argument("--pair", action="append", required=True, help="SAC_CONDITION:LATENT_CONDITION (repeatable)")
    parser.add_argument("--task", action="append", default=[], help="CONDITION=ENV_ID where not in the CSV's summary")
    args = parser.parse_args()
    curves = read_curves(args.evaluations)
    summary = args.evaluations.parent / "summary.csv"
    tasks = {row["condition"]: row["env_id"] for row in csv.DictReader(summary.open())} if summary.is_file() else {}
    tasks |= dict(item.split("=", 1) for item in args.task)
    random_returns = {task: value["mean"] for task, value in json.loads(RANDOM_RETURNS.read_text()).items()}
    print("| pair | task | seeds | measure | SAC | LatentSAC | normalised score | LatentSAC - SAC (95% CI) | gate |")
    print("|---|---|---|---|---|---|---|---|---|")
    for pair in args.pair:
        sac_name, latent_name = pair.split(":")
        task = tasks[latent_name]
        sac, latent = curves[sac_name], curves[latent_name]
        seeds = sorted(s for s in set(sac) & set(latent) if per_seed(sac[s])[0] == per_seed(latent[s])[0])
        for index, measure in ((1, "final"), (2, "mean over training")):
            sac_values = np.array([per_seed(sac[s])[index] for s in seeds])
            latent_values = np.array([per_seed(latent[s])[index] for s in seeds])
            r_random = random_returns[task]
            score = (latent_values.mean() - r_random) / (sac_values.mean() - r_random)
            low, high = difference_ci(latent_values, sac_values) if len(seeds) > 1 else (np.nan, np.nan)
            passed = score >= SCORE_GATE and high >= 0
            print(
                f"| {latent_name} vs {sac_name} | {task} | {len(seeds)} | {measure} | {sac_values.mean():,.0f} "
                f"| {latent_values.mean():,.0f} | {score:.2f} "
                f"| {latent_values.mean() - sac_values.mean():,.0f} [{low:,.0f}, {high:,.0f}] "
                f"| {'pass' if passed else 'fail'} |"
            )


if __name__ == "__main__":
    main()
