"""The HalfCheetah task family: rewards on recorded steps, info keys, registration in other processes."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

from sb3_latent.envs import FORWARD, HalfCheetahTask, relabel_rewards, task_of


def record(env_id: str, n_steps: int = 50, seed: int = 0, **kwargs):
    """Random steps; returns actions, rewards and infos."""
    env = gym.make(env_id, **kwargs)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions, rewards, infos = [], [], []
    for _ in range(n_steps):
        action = env.action_space.sample()
        _, reward, _, _, info = env.step(action)
        actions.append(action)
        rewards.append(reward)
        infos.append(info)
    env.close()
    return np.array(actions), np.array(rewards), infos


@pytest.mark.parametrize("version", [4, 5])
def test_backward_reward_is_minus_velocity_minus_control_cost(version):
    actions, rewards, infos = record(f"HalfCheetahBackward-v{version}")
    x_velocity = np.array([info["x_velocity"] for info in infos])
    np.testing.assert_allclose(rewards, -x_velocity - 0.1 * np.sum(actions**2, axis=1), rtol=1e-10)
    # The robot and its dynamics are the base task's: same seed, same actions, same trajectory.
    forward_actions, _, forward_infos = record(f"HalfCheetah-v{version}")
    np.testing.assert_array_equal(actions, forward_actions)
    np.testing.assert_allclose(x_velocity, [info["x_velocity"] for info in forward_infos])


def test_same_info_keys_on_v4_and_v5():
    keys = {version: set(record(f"HalfCheetahBackward-v{version}", n_steps=1)[2][0]) for version in (4, 5)}
    assert keys[4] == keys[5]
    assert {"x_velocity", "reward_forward", "reward_run", "reward_ctrl"} <= keys[4]


def test_target_speed_task():
    actions, rewards, infos = record("HalfCheetahTask-v5", direction=-1, target_speed=2.0)
    x_velocity = np.array([info["x_velocity"] for info in infos])
    np.testing.assert_allclose(rewards, -np.abs(x_velocity + 2.0) - 0.1 * np.sum(actions**2, axis=1), rtol=1e-10)
    assert task_of("HalfCheetahTask-v5", {"direction": -1, "target_speed": 2.0}) == HalfCheetahTask(-1.0, 2.0)


@pytest.mark.parametrize("kwargs", [{"direction": 0.5}, {"target_speed": -1.0}])
def test_bad_task_kwargs_are_named(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        gym.make("HalfCheetahTask-v4", **kwargs)


def test_unknown_task_id_suggests_ours():
    with pytest.raises(gym.error.NameNotFound, match="HalfCheetahBackward"):
        gym.make("HalfCheetahBackwards-v4")


def test_relabel_forward_to_backward_matches_target_env():
    actions, forward_rewards, _ = record("HalfCheetah-v4")
    _, backward_rewards, _ = record("HalfCheetahBackward-v4")
    relabelled = relabel_rewards(FORWARD, task_of("HalfCheetahBackward-v4"), forward_rewards, actions)
    np.testing.assert_allclose(relabelled, backward_rewards, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(relabelled, -forward_rewards - 0.2 * np.sum(actions**2, axis=1), rtol=1e-5, atol=1e-5)


def test_relabel_refuses_target_speed():
    with pytest.raises(ValueError, match="a target-speed reward does not determine the forward velocity"):
        relabel_rewards(FORWARD, HalfCheetahTask(target_speed=1.0), np.zeros(3), np.zeros((3, 6)))


def test_ids_resolve_in_a_fresh_interpreter_that_never_imports_us():
    code = "import gymnasium as gym; env = gym.make('HalfCheetahBackward-v5'); env.reset(seed=0); print(env.spec.id)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "HalfCheetahBackward-v5"


def test_ids_resolve_when_our_envs_module_imports_gymnasium_first():
    # Importing sb3_latent.envs imports gymnasium, whose start-up hook then registers from inside that import.
    code = "import sb3_latent.envs; import gymnasium as gym; gym.make('HalfCheetahTask-v5', target_speed=1.0)"
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_ids_resolve_in_subproc_vec_env_workers():
    # SubprocVecEnv starts its workers with forkserver: they import nothing of ours unless the hook does.
    vec_env = make_vec_env("HalfCheetahBackward-v4", n_envs=2, vec_env_cls=SubprocVecEnv)
    try:
        vec_env.reset()
        _, rewards, _, infos = vec_env.step(np.zeros((2, 6), dtype=np.float32))
        np.testing.assert_allclose(rewards, [-info["x_velocity"] for info in infos], rtol=1e-5)
    finally:
        vec_env.close()


def test_our_v4_ids_are_quiet():
    code = "import gymnasium as gym; gym.make('HalfCheetahBackward-v4').reset(seed=0)"
    result = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, check=True)
    assert "out of date" not in result.stderr
    assert "deprecated" not in result.stderr + result.stdout
