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

from sb3_latent.envs.half_cheetah import (
    FORWARD,
    HalfCheetahTask,
    HalfCheetahTaskWrapper,
    in_task_family,
    make_half_cheetah_task,
    relabel_rewards,
    task_of,
)
from sb3_latent.envs.registration import ENTRY_POINT, TASK_IDS, register_envs, register_envs_hook

__all__ = [
    "ENTRY_POINT",
    "FORWARD",
    "TASK_IDS",
    "HalfCheetahTask",
    "HalfCheetahTaskWrapper",
    "in_task_family",
    "make_half_cheetah_task",
    "register_envs",
    "register_envs_hook",
    "relabel_rewards",
    "task_of",
]
