"""rl-zoo3's plotting scripts on our runs: rl_zoo3.plots imports, and all_plots reads the evaluations.npz we write."""

import importlib
import os
import pickle
from pathlib import Path

import numpy as np
from zoo_helpers import SUBPROCESS_ENV, run_python

PLOT_ENV = {**os.environ, **SUBPROCESS_ENV, "MPLBACKEND": "Agg"}
TINY = "learning_starts:100 generator_warmup_steps:10 'policy_kwargs:dict(net_arch=[16], generator_net_arch=[16])'"


def test_rl_zoo3_plots_imports():
    # The [plots] extra pins what rliable's arch needs (setup.cfg); a broken pin fails here, on import.
    importlib.import_module("rl_zoo3.plots")


def all_plots(algo: str, folders: list[Path], output: Path, cwd: Path) -> dict:
    """Run rl-zoo3's all_plots on ``folders``; its post-processed results (the pickle it writes)."""
    command = f"-m rl_zoo3.plots.all_plots -a {algo} -e HalfCheetah -f {' '.join(map(str, folders))} --no-display -o {output}"
    run_python(command, cwd, env=PLOT_ENV)
    with open(f"{output}.pkl", "rb") as file:  # all_plots appends .pkl
        return pickle.load(file)


def test_all_plots_reads_a_zoo_latent_sac_run(tmp_path):
    run_python(
        "-m rl_zoo3.train --algo latent_sac --env HalfCheetah-v4 --env-kwargs max_episode_steps:100 -n 300 -f logs "
        f"--eval-freq 100 --eval-episodes 2 --seed 0 -params {TINY}",
        tmp_path,
        env=PLOT_ENV,
    )
    results = all_plots("latent_sac", [tmp_path / "logs"], tmp_path / "zoo", tmp_path)
    assert results["HalfCheetah"][f"LATENT_SAC-{tmp_path / 'logs'}"]["timesteps"].tolist() == [100, 200, 300]


def test_all_plots_reads_an_experiments_run(tmp_path):
    run_python(
        "-m sb3_latent.experiments baselines --budget smoke --seeds 1 --conditions latent_sac -f results --no-progress",
        tmp_path,
        env=PLOT_ENV,
    )
    (run,) = (tmp_path / "results/baselines/runs/latent_sac").glob("*/seed0")  # runs/<condition>/<fingerprint>/seed0
    evaluations = np.load(run / "latent_sac/HalfCheetah-v4_1/evaluations.npz")
    # The CSV's evaluations, per episode, with rl-zoo3's keys and shapes (evaluations x episodes).
    assert evaluations["timesteps"].tolist() == [0, 200, 400]
    assert evaluations["results"].shape == evaluations["ep_lengths"].shape == (3, 2)
    csv_means = [float(line.split(",")[1]) for line in (run / "evaluations.csv").read_text().splitlines()[1:]]
    assert np.allclose(evaluations["results"].mean(axis=1), csv_means)
    results = all_plots("latent_sac", [run], tmp_path / "experiment", tmp_path)
    assert results["HalfCheetah"][f"LATENT_SAC-{run}"]["timesteps"].tolist() == [0, 200, 400]
