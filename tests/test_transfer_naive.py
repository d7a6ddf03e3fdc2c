"""Naive transfer: what finetune keeps and resets, relabelled buffers, refusals, rl-zoo3's -i and our CLI."""

import functools
import os
import pickle
import shlex
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from sb3_contrib import TQC
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.save_util import load_from_pkl
from zoo_helpers import n_updates, run_python

from sb3_latent.errors import UserInputError
from sb3_latent.transfer import PolicyWarmup, finetune
from sb3_latent.transfer.__main__ import main as cli_main

ALGOS: dict[str, type[OffPolicyAlgorithm]] = {"sac": SAC, "td3": TD3, "tqc": TQC}
TARGET = "HalfCheetahBackward-v4"
SOURCE_SEED = 1
SOURCE_STEPS = 300
SOURCE_LEARNING_STARTS = 200  # so the source has taken 100 gradient steps: its networks and temperature moved


@functools.cache
def trained_source(algo: str) -> OffPolicyAlgorithm:
    """A model trained briefly on the base task (HalfCheetah-v4), with its replay buffer."""
    model = ALGOS[algo](
        "MlpPolicy",
        "HalfCheetah-v4",
        learning_starts=SOURCE_LEARNING_STARTS,
        batch_size=64,
        buffer_size=2_000,
        policy_kwargs={"net_arch": [64, 64]},
        seed=SOURCE_SEED,
    )
    return model.learn(SOURCE_STEPS)


@pytest.fixture(params=list(ALGOS))
def source(request) -> OffPolicyAlgorithm:
    return trained_source(request.param)


def assert_modules_equal(module: th.nn.Module, expected: th.nn.Module) -> None:
    state, expected_state = module.state_dict(), expected.state_dict()
    assert state.keys() == expected_state.keys()
    for name, tensor in state.items():
        assert th.equal(tensor, expected_state[name]), name


def assert_modules_differ(module: th.nn.Module, other: th.nn.Module) -> None:
    """Every weight and bias differs (a re-initialised network), not just one of them."""
    other_state = other.state_dict()
    for name, tensor in module.state_dict().items():
        if tensor.is_floating_point():
            assert not th.equal(tensor, other_state[name]), f"{name} was kept"


def optimizer_tensors(optimizer: th.optim.Optimizer) -> list[th.Tensor]:
    """Adam's state (step, moments), parameter by parameter: empty for a fresh optimiser."""
    state = optimizer.state_dict()["state"]
    return [th.as_tensor(value) for index in sorted(state) for _, value in sorted(state[index].items())]


def assert_optimizer_equal(optimizer: th.optim.Optimizer, expected: th.optim.Optimizer) -> None:
    tensors, expected_tensors = optimizer_tensors(optimizer), optimizer_tensors(expected)
    assert len(tensors) == len(expected_tensors) > 0
    assert all(th.equal(a, b) for a, b in zip(tensors, expected_tensors, strict=True))


# --- What is kept and what is reset ---------------------------------------------------------------------------------


def test_default_keeps_every_network_and_empties_the_buffer(source):
    model = finetune(source, TARGET, seed=0)
    assert isinstance(model, type(source))
    assert model.get_env().get_attr("spec")[0].id == TARGET
    # Actor, critic and their targets, parameter by parameter; optimiser states too.
    assert_modules_equal(model.policy, source.policy)
    assert_optimizer_equal(model.actor.optimizer, source.actor.optimizer)
    assert_optimizer_equal(model.critic.optimizer, source.critic.optimizer)
    if hasattr(source, "log_ent_coef"):
        assert th.equal(model.log_ent_coef, source.log_ent_coef)
        assert_optimizer_equal(model.ent_coef_optimizer, source.ent_coef_optimizer)
    # SB3's load: an empty buffer; the policy acts during the source's learning_starts warm-up.
    assert model.replay_buffer.pos == 0 and not model.replay_buffer.full
    assert model.learning_starts == SOURCE_LEARNING_STARTS
    assert isinstance(model, PolicyWarmup)


def test_reset_critic_reinitialises_critic_and_target_only(source):
    source_state = {name: tensor.clone() for name, tensor in source.policy.state_dict().items()}
    model = finetune(source, TARGET, reset_critic=True, seed=0)
    assert_modules_differ(model.critic, source.critic)
    assert_modules_equal(model.critic_target, model.critic)  # the target starts as a copy, as in SB3
    assert optimizer_tensors(model.critic.optimizer) == []
    assert_modules_equal(model.actor, source.actor)
    assert_optimizer_equal(model.actor.optimizer, source.actor.optimizer)
    if hasattr(source, "actor_target"):
        assert_modules_equal(model.actor_target, source.actor_target)
    if hasattr(source, "log_ent_coef"):
        assert th.equal(model.log_ent_coef, source.log_ent_coef)
    # The source model itself is untouched.
    assert all(th.equal(tensor, source_state[name]) for name, tensor in source.policy.state_dict().items())


def test_reset_entropy_resets_temperature_and_its_optimiser_only(source):
    if not hasattr(source, "log_ent_coef"):
        with pytest.raises(UserInputError, match="reset_entropy=False"):
            finetune(source, TARGET, reset_entropy=True)
        return
    model = finetune(source, TARGET, reset_entropy=True, seed=0)
    assert source.log_ent_coef.item() != 0.0  # it moved during the source's training
    assert model.log_ent_coef.item() == 0.0  # log(1.0): SAC's initial value for ent_coef="auto"
    assert optimizer_tensors(model.ent_coef_optimizer) == []
    assert model.ent_coef_optimizer.param_groups[0]["params"][0] is model.log_ent_coef
    assert_modules_equal(model.policy, source.policy)
    assert source.log_ent_coef.item() != 0.0


def test_kept_buffer_holds_the_target_tasks_rewards(source):
    model = finetune(source, TARGET, keep_buffer=True, seed=0)
    kept, recorded = model.replay_buffer, source.replay_buffer
    n = recorded.pos
    assert kept.pos == n == SOURCE_STEPS
    for name in ("observations", "next_observations", "actions", "dones", "timeouts"):
        assert np.array_equal(getattr(kept, name)[:n], getattr(recorded, name)[:n]), name
    # Replay the recorded steps in the target env itself: same start state, same actions (HalfCheetah's actions
    # are in [-1, 1], so SB3 stores them unscaled), hence the same states, and the target task's own rewards.
    env = gym.make(TARGET)
    observation, _ = env.reset(seed=SOURCE_SEED)
    assert np.allclose(observation, recorded.observations[0, 0])
    target_rewards = np.array([env.step(action)[1] for action in recorded.actions[:n, 0]])
    assert np.allclose(kept.rewards[:n, 0], target_rewards, atol=1e-4)
    assert not np.allclose(recorded.rewards[:n, 0], target_rewards, atol=1e-2)  # the source's buffer is untouched
    # A kept buffer has data to learn from: gradient steps start at once, with the policy acting.
    assert model.learning_starts == 0 and type(model) is type(source)


def test_learning_starts_delays_gradient_steps(source):
    model = finetune(source, TARGET, learning_starts=30, seed=0)
    model.learn(40)
    # No gradient step during the 30 warm-up steps, then one per step (train_freq=1, gradient_steps=1).
    assert model._n_updates == source._n_updates + 10


@pytest.mark.parametrize("warmup", ["policy", "random"])
def test_warmup_chooses_who_acts_before_learning_starts(warmup):
    source = trained_source("td3")  # deterministic actor, no action noise: its actions can be recomputed
    model = finetune(source, TARGET, warmup=warmup, learning_starts=50, seed=0)
    model.learn(40)
    assert model._n_updates == source._n_updates  # still warming up
    buffer = model.replay_buffer
    observations, actions = buffer.observations[:40, 0], buffer.actions[:40, 0]
    policy_actions, _ = source.predict(observations, deterministic=True)
    acted_by_policy = np.allclose(actions, policy_actions, atol=1e-5)
    assert acted_by_policy == (warmup == "policy")


def test_learning_starts_defaults():
    source = trained_source("sac")
    assert finetune(source, TARGET, keep_buffer=True).learning_starts == 0
    assert finetune(source, TARGET, keep_buffer=True, warmup="random").learning_starts == SOURCE_LEARNING_STARTS
    assert finetune(source, TARGET, warmup="random").learning_starts == SOURCE_LEARNING_STARTS
    assert finetune(source, TARGET, keep_buffer=True, learning_starts=7).learning_starts == 7


def test_a_finetuned_model_is_a_source_like_any_other():
    finetuned = finetune(trained_source("sac"), TARGET, learning_starts=10)
    assert type(finetuned).__name__ == "PolicyWarmupSAC"
    assert type(finetune(finetuned, "HalfCheetah-v4", warmup="random")) is SAC
    assert type(finetune(finetuned, "HalfCheetah-v4")) is type(finetuned)


def test_seed_makes_a_reset_critic_reproducible():
    source = trained_source("sac")
    first, again, other = (finetune(source, TARGET, reset_critic=True, seed=seed) for seed in (3, 3, 4))
    assert_modules_equal(first.critic, again.critic)
    assert_modules_differ(first.critic, other.critic)


# --- Refusals --------------------------------------------------------------------------------------------------------


def test_refuses_to_relabel_for_a_target_speed():
    source = trained_source("sac")
    with pytest.raises(UserInputError, match="keep_buffer=False"):
        finetune(source, "HalfCheetahTask-v4", env_kwargs={"target_speed": 2.0}, keep_buffer=True)
    # The fix the error names works.
    assert finetune(source, "HalfCheetahTask-v4", env_kwargs={"target_speed": 2.0}).replay_buffer.pos == 0


def test_refuses_to_relabel_non_half_cheetah_tasks():
    pendulum = SAC("MlpPolicy", "Pendulum-v1", learning_starts=100, policy_kwargs={"net_arch": [16]}, seed=0).learn(20)
    with pytest.raises(UserInputError, match=r"Pendulum-v1.*keep_buffer=False"):
        finetune(pendulum, "Pendulum-v1", keep_buffer=True)
    assert finetune(pendulum, "Pendulum-v1").replay_buffer.pos == 0


def test_a_bare_zip_needs_its_algorithm_and_task(tmp_path):
    source = trained_source("sac")
    source.save(tmp_path / "model.zip")
    with pytest.raises(UserInputError, match="algo='sac'"):
        finetune(tmp_path / "model.zip", TARGET)
    with pytest.raises(UserInputError, match=r"source_env='HalfCheetah-v4'.*keep_buffer=False"):
        finetune(tmp_path / "model.zip", TARGET, algo="sac", keep_buffer=True, replay_buffer=source.replay_buffer)
    with pytest.raises(UserInputError, match="--save-replay-buffer"):
        finetune(tmp_path / "model.zip", TARGET, algo="sac", keep_buffer=True, source_env="HalfCheetah-v4")
    # Named, the source task makes the relabelling possible again.
    model = finetune(
        tmp_path / "model.zip",
        TARGET,
        algo=SAC,
        source_env="HalfCheetah-v4",
        keep_buffer=True,
        replay_buffer=source.replay_buffer,
    )
    assert np.array_equal(model.replay_buffer.rewards, finetune(source, TARGET, keep_buffer=True).replay_buffer.rewards)


def test_mismatched_spaces_name_both():
    source = trained_source("sac")
    target = gym.make("Pendulum-v1")
    with pytest.raises(UserInputError) as error:
        finetune(source, "Pendulum-v1")
    for space in (source.observation_space, source.action_space, target.observation_space, target.action_space):
        assert str(space) in str(error.value)


# --- rl-zoo3 run folders, rl-zoo3's -i, our CLI ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory) -> Path:
    """An rl-zoo3 run on the base task, with a saved replay buffer and VecNormalize statistics."""
    folder = tmp_path_factory.mktemp("zoo")
    run_python(
        "-m rl_zoo3.train --algo sac --env HalfCheetah-v4 -n 300 -f . --eval-freq -1 --seed 1 --save-replay-buffer "
        "-params learning_starts:200 buffer_size:2000 batch_size:64 normalize:True 'policy_kwargs:dict(net_arch=[64, 64])'",
        folder,
    )
    return folder / "sac" / "HalfCheetah-v4_1"


@pytest.mark.parametrize("path", ["run folder", "model zip"])
def test_zoo_run_gives_buffer_task_and_vecnormalize(zoo_run, path):
    source = zoo_run if path == "run folder" else zoo_run / "HalfCheetah-v4.zip"
    model = finetune(source, TARGET, keep_buffer=True, seed=0)
    assert type(model) is SAC
    # The buffer of <run>/replay_buffer.pkl, relabelled: r_back = -r_fwd - 0.2 ||a||^2.
    recorded = load_from_pkl(zoo_run / "replay_buffer.pkl")
    n = recorded.pos
    assert model.replay_buffer.pos == n == 300
    expected = -recorded.rewards[:n] - 0.2 * np.sum(np.square(recorded.actions[:n]), axis=-1)
    assert np.allclose(model.replay_buffer.rewards[:n], expected, atol=1e-5)
    # The source's observation statistics, not fresh ones (rl-zoo3's -i would look under the target's name).
    with open(zoo_run / "HalfCheetah-v4" / "vecnormalize.pkl", "rb") as file:
        source_stats = pickle.load(file)
    vec_normalize = model.get_vec_normalize_env()
    assert vec_normalize is not None and source_stats.obs_rms.count > 1
    assert np.array_equal(vec_normalize.obs_rms.mean, source_stats.obs_rms.mean)
    assert finetune(source, TARGET, vecnormalize=False).get_vec_normalize_env() is None


def test_zoo_trained_agent_finetunes_past_its_warmup(zoo_run, tmp_path):
    source_zip = zoo_run / "HalfCheetah-v4.zip"
    result = run_python(
        f"-m rl_zoo3.train --algo sac --env {TARGET} -i {source_zip} -n 300 -f {tmp_path} --eval-freq -1 --seed 2 "
        "-params learning_starts:200",
        zoo_run,
    )
    target_zip = tmp_path / "sac" / f"{TARGET}_1" / f"{TARGET}.zip"
    # _n_updates is not reset by -i: gradient steps ran on the target only if it grew past the source's.
    assert n_updates(target_zip) > n_updates(source_zip)
    # rl-zoo3's -i reloads the saved buffer as is (source rewards); our start-up hook relabels it to the target
    # task. It still looks for VecNormalize statistics under the target env's name, so it does not find the source's.
    assert "Loading replay buffer" in result.stdout
    assert f"Relabelled the replay buffer from HalfCheetah-v4 to {TARGET} rewards" in result.stdout
    assert "Loading saved VecNormalize stats" not in result.stdout


def test_zoo_trained_agent_refuses_a_buffer_it_cannot_relabel(zoo_run, tmp_path):
    source_zip = zoo_run / "HalfCheetah-v4.zip"
    command = f"-m rl_zoo3.train --algo sac --env HalfCheetahTask-v4 --env-kwargs target_speed:1.0 -i {source_zip} -n 10"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    result = subprocess.run(
        [sys.executable, *shlex.split(f"{command} -f {tmp_path} --eval-freq -1")], capture_output=True, text=True, env=env
    )
    assert result.returncode != 0
    assert (
        "replay_buffer.pkl aside" in result.stderr and "keep_buffer" not in result.stderr and "Traceback" not in result.stderr
    )


def test_cli_writes_a_zoo_style_run(zoo_run, tmp_path):
    (tmp_path / "sac" / f"{TARGET}_1").mkdir(parents=True)  # an earlier run: ours gets the next id
    result = run_python(
        f"-m sb3_latent.transfer --source {zoo_run} --env {TARGET} -n 120 -f {tmp_path} --keep-buffer --seed 0 "
        "-params learning_starts:20 -P -tb tb --eval-freq 60 --eval-episodes 1",
        tmp_path,
    )
    run = tmp_path / "sac" / f"{TARGET}_2"
    # rl-zoo3's flags mean what they mean there: evaluations.npz and best_model.zip in the run, events in <tb>/<env>/.
    evaluations = np.load(run / "evaluations.npz")
    assert evaluations["timesteps"].tolist() == [60, 120] and evaluations["results"].shape == (2, 1)
    assert (run / "best_model.zip").is_file() and list((tmp_path / "tb" / TARGET / "SAC_1").glob("events.out.*"))
    last_line = result.stdout.strip().splitlines()[-1]
    assert last_line.startswith(f"Final evaluation on {TARGET} (1 episode, deterministic): mean return ")
    float(last_line.split("mean return ")[1].split(" +/- ")[0])
    assert n_updates(run / f"{TARGET}.zip") == n_updates(zoo_run / "HalfCheetah-v4.zip") + 100
    assert (run / "0.monitor.csv").is_file()
    assert (run / TARGET / "vecnormalize.pkl").is_file()
    assert f"env: {TARGET}" in (run / TARGET / "args.yml").read_text()
    assert "normalize: true" in (run / TARGET / "config.yml").read_text()


def test_cli_reports_bad_input_in_one_line(tmp_path):
    with pytest.raises(SystemExit, match="error: No saved model or run folder"):
        cli_main(["--source", str(tmp_path / "missing"), "--env", TARGET, "-n", "10", "-f", str(tmp_path)])


def test_cli_help_lists_the_multitask_subcommand(capsys):
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    assert "multitask" in capsys.readouterr().out
