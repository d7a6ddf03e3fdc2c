"""HalfCheetah tasks that differ only in their reward: run forward, backward, or at a target speed.

A task is a :class:`HalfCheetahTask` (direction and optional target speed), so a new task is a
keyword argument, not a new class. The reward of every task is a function of the forward velocity
and the action alone, which is what makes exact reward relabelling between tasks possible
(:func:`relabel_rewards`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

# Default of gymnasium's HalfCheetah v4 and v5.
CTRL_COST_WEIGHT = 0.1


@dataclass(frozen=True)
class HalfCheetahTask:
    """The reward of one HalfCheetah task.

    :param direction: +1 runs forward (the base task), -1 backward (the poster's target task).
    :param target_speed: if given, reward closeness to ``direction * target_speed`` instead of speed itself.
    :param ctrl_cost_weight: weight of the control cost ``||a||^2``, as in gymnasium.
    """

    direction: float = 1.0
    target_speed: float | None = None
    ctrl_cost_weight: float = CTRL_COST_WEIGHT

    def __post_init__(self) -> None:
        if self.direction not in (1.0, -1.0):
            raise ValueError(f"direction must be +1 (forward) or -1 (backward), got {self.direction!r}.")
        if self.target_speed is not None and self.target_speed < 0:
            raise ValueError(f"target_speed is a speed (>= 0), got {self.target_speed!r}; use direction=-1 to run backward.")

    def task_term(self, x_velocity: np.ndarray | float) -> np.ndarray | float:
        if self.target_speed is None:
            return self.direction * x_velocity
        return -np.abs(x_velocity - self.direction * self.target_speed)

    def control_cost(self, action: np.ndarray) -> np.ndarray:
        return self.ctrl_cost_weight * np.sum(np.square(action), axis=-1)

    def reward(self, x_velocity: np.ndarray | float, action: np.ndarray) -> np.ndarray | float:
        return self.task_term(x_velocity) - self.control_cost(action)


FORWARD = HalfCheetahTask(direction=1.0)


class HalfCheetahTaskWrapper(gym.Wrapper):
    """Replaces gymnasium HalfCheetah's reward by the task's, with the same info keys on v4 and v5.

    v5 renamed ``reward_run`` to ``reward_forward``; we emit both, so code written for either reads
    the task term under its usual name.
    """

    def __init__(self, env: gym.Env, task: HalfCheetahTask) -> None:
        super().__init__(env)
        self.task = task

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        observation, _, terminated, truncated, info = self.env.step(action)
        task_term = float(self.task.task_term(info["x_velocity"]))
        control_cost = float(self.task.control_cost(np.asarray(action)))
        info["reward_forward"] = info["reward_run"] = task_term
        info["reward_ctrl"] = -control_cost
        return observation, task_term - control_cost, terminated, truncated, info


def make_half_cheetah_task(
    version: int = 5,
    direction: float = 1.0,
    target_speed: float | None = None,
    ctrl_cost_weight: float = CTRL_COST_WEIGHT,
    **kwargs: Any,
) -> gym.Env:
    """Entry point of our HalfCheetah ids: gymnasium's HalfCheetah with the task's reward."""
    if version == 4:
        from gymnasium.envs.mujoco.half_cheetah_v4 import HalfCheetahEnv as HalfCheetahV4

        env: gym.Env = HalfCheetahV4(ctrl_cost_weight=ctrl_cost_weight, **kwargs)
    elif version == 5:
        from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv as HalfCheetahV5

        env = HalfCheetahV5(ctrl_cost_weight=ctrl_cost_weight, **kwargs)
    else:
        raise ValueError(f"HalfCheetah version must be 4 or 5, got {version!r}.")
    return HalfCheetahTaskWrapper(env, HalfCheetahTask(float(direction), target_speed, ctrl_cost_weight))


def in_task_family(env_id: str) -> bool:
    """Whether ``env_id`` is registered and one of the HalfCheetah tasks (gymnasium's own or ours)."""
    try:
        spec = gym.spec(env_id)
    except gym.error.Error:
        return False
    return spec.name == "HalfCheetah" or (
        isinstance(spec.entry_point, str) and spec.entry_point.endswith(":make_half_cheetah_task")
    )


def task_of(env_id: str, env_kwargs: dict[str, Any] | None = None) -> HalfCheetahTask:
    """The task behind a registered HalfCheetah id (gymnasium's own ids are the forward task)."""
    if not in_task_family(env_id):
        raise ValueError(f"{env_id} is not a HalfCheetah task; the task family covers HalfCheetah* ids only.")
    spec = gym.spec(env_id)
    if spec.name == "HalfCheetah":
        return HalfCheetahTask(ctrl_cost_weight=float({**spec.kwargs, **(env_kwargs or {})}.get("ctrl_cost_weight", 0.1)))
    kwargs = {**spec.kwargs, **(env_kwargs or {})}
    return HalfCheetahTask(
        float(kwargs.get("direction", 1.0)), kwargs.get("target_speed"), float(kwargs.get("ctrl_cost_weight", 0.1))
    )


def relabel_rewards(source: HalfCheetahTask, target: HalfCheetahTask, rewards: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Turn rewards recorded on the source task into the target task's rewards for the same steps.

    Exact whenever both tasks reward plain direction (no target speed): then the recorded reward
    gives back the forward velocity, ``v = direction * (r + ctrl_cost)``. For HalfCheetah forward to
    backward this is ``r_back = -r_fwd - 2 * 0.1 * ||a||^2``. A target-speed reward hides the sign of
    ``v - target`` and the observation does not hold ``v`` exactly, so those cases are refused.
    """
    if source.target_speed is not None or target.target_speed is not None:
        raise ValueError(
            "Cannot relabel rewards between these HalfCheetah tasks: a target-speed reward does not determine "
            "the forward velocity."
        )
    x_velocity = source.direction * (np.asarray(rewards) + source.control_cost(np.asarray(actions)))
    return np.asarray(target.reward(x_velocity, np.asarray(actions)), dtype=np.float32)
