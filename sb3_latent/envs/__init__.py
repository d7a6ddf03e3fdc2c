"""The HalfCheetah task family, registered as plain gymnasium ids.

=============================  ===================================================================
id                             task
=============================  ===================================================================
``HalfCheetahBackward-v4/v5``  run backward: reward = -x_velocity - 0.1 * ||a||^2 (the target task)
``HalfCheetahTask-v4/v5``      any task by kwargs: ``direction`` (+1/-1) and ``target_speed``
=============================  ===================================================================

gymnasium's own ``HalfCheetah-v4/v5`` is the base task (run forward).
"""

from __future__ import annotations

import warnings
from types import ModuleType

from sb3_latent.envs.half_cheetah import (
    FORWARD,
    HalfCheetahTask,
    HalfCheetahTaskWrapper,
    make_half_cheetah_task,
    relabel_rewards,
    task_of,
)

ENTRY_POINT = "sb3_latent.envs.half_cheetah:make_half_cheetah_task"

# id -> kwargs of make_half_cheetah_task
TASK_IDS: dict[str, dict] = {
    "HalfCheetahBackward-v4": {"version": 4, "direction": -1.0},
    "HalfCheetahBackward-v5": {"version": 5, "direction": -1.0},
    "HalfCheetahTask-v4": {"version": 4},
    "HalfCheetahTask-v5": {"version": 5},
}

__all__ = [
    "FORWARD",
    "TASK_IDS",
    "HalfCheetahTask",
    "HalfCheetahTaskWrapper",
    "make_half_cheetah_task",
    "register_envs",
    "relabel_rewards",
    "task_of",
]


def register_envs() -> None:
    """Register our ids with gymnasium. Idempotent, and cheap: nothing is built until ``gym.make``."""
    import gymnasium as gym

    for env_id, kwargs in TASK_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=ENTRY_POINT, max_episode_steps=1000, reward_threshold=4800.0, kwargs=kwargs)
    # gymnasium warns on every make of a v4 id that a v5 exists. The poster's task is v4, so our v4 ids
    # are deliberate: keep them quiet (gymnasium's own HalfCheetah-v4 still warns, as it always has).
    warnings.filterwarnings("ignore", message=r".*The environment HalfCheetah(Backward|Task)-v4 is out of date")


def register_envs_hook(module: ModuleType) -> None:
    """Called by the start-up hook once ``gymnasium`` has finished importing."""
    register_envs()
