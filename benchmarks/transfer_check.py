"""Single-seed forward -> backward transfer check (the skill-transfer issue's first check).

    python benchmarks/transfer_check.py              # trains what is missing (resumable), then plots
    python benchmarks/transfer_check.py --plot-only

Steps, each a command users can run by hand (1 torch thread per process):

1. sources on the base task HalfCheetah-v4, 50k steps: SAC (naive-transfer's ``pretrain-forward``) and
   LatentSAC (latent-transfer's ``pretrain-forward``);
2. targets on HalfCheetahBackward-v4, 30k steps each: SAC from scratch, naive SAC transfer, LatentSAC from
   scratch, and latent transfer with the generator frozen, fine-tuned and residual;
3. the multi-task generator (25k steps on each of HalfCheetah-v4 and HalfCheetahBackward-v4), transferred frozen
   to the held-out task HalfCheetahTask-v4 with target_speed=1.5 (30k steps), against LatentSAC from scratch there.

Steps 1-2 use the experiments runner at the quick budget's protocol (learning_starts 5000, deterministic eval of
5 episodes every 2,500 steps on a separate env). Step 3 compares training-episode returns (monitor files), since
the multi-task command has no separate evaluation.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "results" / "transfer-check"
PYTHON = sys.executable
SPEED = "target_speed:1.5"


def commands() -> list[list[list[str]]]:
    """Groups of commands; the commands of a group may run at the same time."""
    experiments = [PYTHON, "-m", "sb3_latent.experiments"]
    quick = ["--budget", "quick", "--seeds", "1", "-f", str(ROOT), "--no-progress"]
    sources = ["--conditions", "pretrain-forward", "--timesteps", "50000", "--workers", "1"]
    return [
        [
            [*experiments, "naive-transfer", *quick, *sources],
            [*experiments, "latent-transfer", *quick, *sources],
            [PYTHON, "-m", "sb3_latent.transfer", "multitask", "--tasks", "HalfCheetah-v4", "HalfCheetahBackward-v4",
             "--target", "HalfCheetahTask-v4", "--target-kwargs", SPEED, "-n", "25000", "--target-n-timesteps", "30000",
             "--mode", "frozen", "--chunk", "1000", "-f", str(ROOT / "multitask" / "logs"), "-params", "learning_starts:5000",
             "--seed", "0", "--verbose", "0"],
        ],
        [
            [*experiments, "latent-transfer", *quick, "--timesteps", "30000", "--workers", "2",
             "--conditions", "scratch", "frozen", "finetuned", "residual"],
            [*experiments, "naive-transfer", *quick, "--timesteps", "30000", "--workers", "1"],
            [PYTHON, "-m", "rl_zoo3.train", "--algo", "latent_sac", "--env", "HalfCheetahTask-v4", "--env-kwargs", SPEED,
             "-n", "30000", "-f", str(ROOT / "multitask" / "scratch"), "-params", "learning_starts:5000", "--seed", "0",
             "--eval-freq", "2500", "--eval-episodes", "5"],
        ],
    ]  # fmt: skip


def plot_multitask() -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    run = "latent_sac/HalfCheetahTask-v4_1"
    runs = {
        "multi-task generator (forward + backward data), frozen": ROOT / "multitask" / "logs" / run,
        "LatentSAC from scratch": ROOT / "multitask" / "scratch" / run,
    }
    figure, axis = plt.subplots(figsize=(7, 4))
    for label, folder in runs.items():
        monitor = folder / "0.monitor.csv"
        if not monitor.is_file():
            continue
        episodes = pd.read_csv(monitor, skiprows=1)
        axis.plot(episodes["l"].cumsum(), episodes["r"], label=label)
    axis.set(xlabel="env steps on the held-out task", ylabel="training episode return",
             title="HalfCheetahTask-v4, target_speed=1.5 (held out), 1 seed")  # fmt: skip
    axis.grid(alpha=0.3)
    axis.legend()
    path = ROOT / "multitask.png"
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if not args.plot_only:
        for group in commands():
            processes = [subprocess.Popen(command, env=env) for command in group]
            if any(process.wait() != 0 for process in processes):
                sys.exit("a step failed; rerun to resume")
    for experiment in ("naive-transfer", "latent-transfer"):
        subprocess.run(
            [*commands()[0][0][:3], experiment, "--plot-only", "-f", str(ROOT), "--seeds", "1", "--timesteps", "50000"],
            env=env,
            check=False,
        )
    print(plot_multitask())


if __name__ == "__main__":
    main()
