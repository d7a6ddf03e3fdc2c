"""rl-zoo3 sees our tasks, YAMLs and algorithms through the start-up hook, and nothing else changes."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from zoo_helpers import n_updates, run_python

import sb3_latent
from sb3_latent.errors import UserInputError
from sb3_latent.zoo import hyperparams_dir, resolve_config

ZOO_HYPERPARAMS = Path(__import__("rl_zoo3").__file__).parent / "hyperparams"


def run(command: str, env: dict[str, str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run `python <command>` in cwd (the test's tmp_path, also the log folder)."""
    return run_python(command, cwd, env=env, check=check)


def test_python_start_is_lazy_but_hooked():
    code = (
        "import sys; from sb3_latent._startup import _PostImportFinder;"
        "print(any(isinstance(f, _PostImportFinder) for f in sys.meta_path),"
        " 'torch' in sys.modules, 'rl_zoo3' in sys.modules, 'gymnasium' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # The hook is installed at start-up, yet has imported none of the heavy packages.
    assert result.stdout.split() == ["True", "False", "False", "False"]


@pytest.mark.parametrize(
    "algo, extra",
    [
        ("sac", "-params learning_starts:300"),
        ("td3", "-params learning_starts:300"),
        ("ddpg", "-params learning_starts:300"),
        ("tqc", "-params learning_starts:300"),
        ("ppo", "-params n_steps:256"),
    ],
)
def test_zoo_trains_on_backward_task_with_shipped_yaml(algo, extra, zoo_env, tmp_path):
    command = f"-m rl_zoo3.train --algo {algo} --env HalfCheetahBackward-v4 -n 600 -f . --eval-freq -1 --seed 1 {extra}"
    result = run(command, zoo_env, tmp_path)
    assert f"Loading hyperparameters from: {hyperparams_dir() / algo}.yml" in result.stdout
    model_path = tmp_path / algo / "HalfCheetahBackward-v4_1" / "HalfCheetahBackward-v4.zip"
    assert model_path.is_file()
    assert n_updates(model_path) > 0, "training stopped before its warm-up ended: no gradient step ran"


def test_zoo_falls_back_to_its_own_yaml(zoo_env, tmp_path):
    result = run("-m rl_zoo3.train --algo ppo --env CartPole-v1 -n 1000 -f . --eval-freq -1", zoo_env, tmp_path)
    assert f"Loading hyperparameters from: {ZOO_HYPERPARAMS / 'ppo.yml'}" in result.stdout
    assert (tmp_path / "ppo" / "CartPole-v1_1" / "CartPole-v1.zip").is_file()


def test_our_yamls_cover_the_task_family():
    expected = {"Pendulum-v1", "HalfCheetah-v4", "HalfCheetahBackward-v4", "HalfCheetah-v5", "HalfCheetahBackward-v5"}
    for algo in ("sac", "td3", "ddpg", "ppo", "tqc"):
        entries = yaml.safe_load((hyperparams_dir() / f"{algo}.yml").read_text())
        assert expected <= set(entries), algo


def test_resolve_config():
    zoo_sac = str(ZOO_HYPERPARAMS / "sac.yml")
    assert resolve_config("sac", "HalfCheetahBackward-v4", zoo_sac, zoo_sac) == str(hyperparams_dir() / "sac.yml")
    assert resolve_config("sac", "LunarLanderContinuous-v3", zoo_sac, zoo_sac) == zoo_sac
    assert resolve_config("sac", "HalfCheetah-v4", "mine.yml", zoo_sac) == "mine.yml"  # --conf-file wins
    missing = str(ZOO_HYPERPARAMS / "nosuchalgo.yml")
    with pytest.raises(UserInputError, match="--conf-file"):
        resolve_config("nosuchalgo", "HalfCheetah-v4", missing, missing)


def test_continuous_algo_on_discrete_actions_is_one_clear_line(zoo_env, tmp_path):
    conf = tmp_path / "sac.yml"
    conf.write_text("CartPole-v1:\n  policy: 'MlpPolicy'\n  n_timesteps: 100\n")
    for entry_point in ("rl_zoo3.train", "sb3_latent.train"):
        result = run(f"-m {entry_point} --algo sac --env CartPole-v1 -f . --conf-file sac.yml", zoo_env, tmp_path, check=False)
        assert result.returncode != 0
        assert "error: --algo sac needs continuous (Box) actions" in result.stderr
        assert "Traceback" not in result.stderr


def test_sb3_latent_train_takes_zoo_arguments(zoo_env, tmp_path):
    command = "-m sb3_latent.train --algo sac --env HalfCheetahTask-v5 -n 400 -f . --eval-freq -1 -params learning_starts:300"
    run(f"{command} --env-kwargs target_speed:1.5", zoo_env, tmp_path)
    assert (tmp_path / "sac" / "HalfCheetahTask-v5_1" / "HalfCheetahTask-v5.zip").is_file()


def test_zoo_enjoy_and_record_video(zoo_env, tmp_path):
    common = "--algo sac --env HalfCheetahBackward-v4 -f ."
    run(f"-m rl_zoo3.train {common} -n 400 --eval-freq -1 -params learning_starts:300", zoo_env, tmp_path)
    run(f"-m rl_zoo3.enjoy {common} -n 50 --no-render", zoo_env, tmp_path)
    run(f"-m rl_zoo3.record_video {common} -n 50 -o videos", zoo_env, tmp_path)
    assert list((tmp_path / "videos").glob("*.mp4"))


def test_zoo_optimize(zoo_env, tmp_path):
    command = "-m rl_zoo3.train --algo sac --env HalfCheetahBackward-v4 -optimize --n-trials 1 -n 300 --n-evaluations 1"
    result = run(
        f"{command} --eval-episodes 1 --sampler random --pruner none -f . -params learning_starts:200", zoo_env, tmp_path
    )
    # The study ends by writing trials_dataframe() as CSV, which needs pandas (rl-zoo3 does not declare it).
    assert "Best is trial 0" in result.stderr
    assert list((tmp_path / "sac").glob("report_HalfCheetahBackward-v4_*.csv"))


@pytest.mark.parametrize("setting, expected", [(None, "1"), ("3", "3"), ("-1", "default")])
def test_zoo_training_defaults_to_one_torch_thread(setting, expected):
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "SB3_LATENT_NUM_THREADS")}
    if setting is not None:
        env["SB3_LATENT_NUM_THREADS"] = setting
    code = "import torch; n = torch.get_num_threads(); import rl_zoo3.train; print(n, torch.get_num_threads())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    before, after = result.stdout.split()
    # rl-zoo3's train script then applies --num-threads N (N > 0) on top of this default.
    assert after == (before if expected == "default" else expected)


def test_version():
    assert sb3_latent.__version__


def test_latent_sac_zoo_train_enjoy_and_continue(zoo_env, tmp_path):
    common = "--algo latent_sac --env HalfCheetah-v4 -f ."
    train = f"-m rl_zoo3.train {common} --eval-freq -1 --seed 0 -params learning_starts:300 generator_warmup_steps:50"
    result = run(f"{train} -n 400", zoo_env, tmp_path)
    assert f"Loading hyperparameters from: {hyperparams_dir() / 'latent_sac.yml'}" in result.stdout
    model_path = tmp_path / "latent_sac" / "HalfCheetah-v4_1" / "HalfCheetah-v4.zip"
    assert n_updates(model_path) == 100
    # make demo's last line is the "Mean reward" enjoy prints after whole episodes (HalfCheetah's are 1000 steps).
    enjoyed = run(f"-m rl_zoo3.enjoy {common} -n 1000 --no-render", zoo_env, tmp_path)
    assert re.search(r"^1 Episodes\nMean reward: -?[0-9.]+ \+/- 0.00$", enjoyed.stdout, re.MULTILINE)
    run(f"-m rl_zoo3.record_video {common} -n 50 -o videos", zoo_env, tmp_path)
    assert list((tmp_path / "videos").glob("*.mp4"))
    # Continued training with -i: rl-zoo3 drops policy_kwargs on reload; the generator's shape comes from the zip.
    run(f"{train} -n 400 -i {model_path}", zoo_env, tmp_path)
    continued = tmp_path / "latent_sac" / "HalfCheetah-v4_2" / "HalfCheetah-v4.zip"
    assert n_updates(continued) == 200


def test_latent_sac_zoo_optimize(zoo_env, tmp_path):
    command = "-m rl_zoo3.train --algo latent_sac --env Pendulum-v1 -optimize --n-trials 1 -n 300 --n-evaluations 1"
    result = run(
        f"{command} --eval-episodes 1 --sampler random --pruner none -f . -params learning_starts:200", zoo_env, tmp_path
    )
    assert "Best is trial 0" in result.stderr


def test_latent_sac_without_yaml_entry_is_a_clear_error(zoo_env, tmp_path):
    result = run("-m rl_zoo3.train --algo latent_sac --env MountainCarContinuous-v0 -f .", zoo_env, tmp_path, check=False)
    assert result.returncode != 0
    assert "error: No hyperparameters for --algo latent_sac on MountainCarContinuous-v0" in result.stderr
    assert "--conf-file" in result.stderr and "Traceback" not in result.stderr


def test_parallel_train_callback_keeps_latent_sac():
    from rl_zoo3.callbacks import ParallelTrainCallback

    from sb3_latent import LatentSAC

    model = LatentSAC("Pendulum-v1", learning_starts=50, generator_warmup_steps=5, policy_kwargs={"net_arch": [16]}, seed=0)
    callback = ParallelTrainCallback(gradient_steps=5)
    model.learn(120, callback=callback)
    # rl-zoo3 alone would reload the training copy as plain SAC, without the action generator.
    assert type(callback._model) is LatentSAC
    assert callback._model.action_generator is not None and callback._model._n_updates > 0


# `python -m rl_zoo3.train ...` with the start-up hook's finder removed first: rl-zoo3 as it is without sb3-latent.
WITHOUT_SB3_LATENT = (
    "import runpy, sys; from sb3_latent._startup import _PostImportFinder;"
    "sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _PostImportFinder)];"
    "sys.argv = ['rl_zoo3.train', *sys.argv[1:]]; runpy.run_module('rl_zoo3.train', run_name='__main__')"
)


def test_zoo_continues_training_outside_the_task_family_as_without_sb3_latent(zoo_env, tmp_path):
    # rl-zoo3's -i on Pendulum-v1 with other --env-kwargs than the saved run continues on the saved replay buffer
    # as it is: sb3-latent relabels buffers of the HalfCheetah family only, and leaves other envs alone.
    common = "--algo sac --env Pendulum-v1 --eval-freq -1 --seed 0 --num-threads 1"
    params = "-params learning_starts:100 buffer_size:1000 batch_size:32 'policy_kwargs:dict(net_arch=[16])'"
    run(f"-m rl_zoo3.train {common} -n 200 -f source --save-replay-buffer {params}", zoo_env, tmp_path)
    source = tmp_path / "source" / "sac" / "Pendulum-v1_1" / "Pendulum-v1.zip"
    continued = f"{common} --env-kwargs g:9.0 -i {source} -n 100 -params learning_starts:0 buffer_size:1000 batch_size:32"
    runs = {}
    for name, entry in (("with", "-m rl_zoo3.train"), ("without", f'-c "{WITHOUT_SB3_LATENT}"')):
        result = run(f"{entry} {continued} -f {name}", zoo_env, tmp_path)
        assert "Loading replay buffer" in result.stdout
        runs[name] = tmp_path / name / "sac" / "Pendulum-v1_1" / "Pendulum-v1.zip"
    assert n_updates(runs["with"]) == n_updates(runs["without"]) == n_updates(source) + 100
    from stable_baselines3 import SAC

    weights = {name: SAC.load(path).policy.state_dict() for name, path in runs.items()}
    assert all((weights["with"][key] == weights["without"][key]).all() for key in weights["with"])
