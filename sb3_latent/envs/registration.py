"""Registration of the task family's ids with gymnasium.

Kept apart from the env code, and free of module-level gymnasium imports: the start-up hook calls
:func:`register_envs_hook` as gymnasium finishes importing, which may happen in the middle of importing
``sb3_latent.envs`` itself.
"""

from __future__ import annotations

import warnings
from types import ModuleType

ENTRY_POINT = "sb3_latent.envs.half_cheetah:make_half_cheetah_task"

# id -> kwargs of make_half_cheetah_task
TASK_IDS: dict[str, dict] = {
    "HalfCheetahBackward-v4": {"version": 4, "direction": -1.0},
    "HalfCheetahBackward-v5": {"version": 5, "direction": -1.0},
    "HalfCheetahTask-v4": {"version": 4},
    "HalfCheetahTask-v5": {"version": 5},
}


def register_envs() -> None:
    """Register our ids with gymnasium. Idempotent, and cheap: nothing is built until ``gym.make``."""
    import gymnasium as gym

    for env_id, kwargs in TASK_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=ENTRY_POINT, max_episode_steps=1000, reward_threshold=4800.0, kwargs=kwargs)
    # gymnasium warns on every make of a v4 id that a v5 exists. The poster's task is v4, so our v4 ids
    # are deliberate: keep them quiet (gymnasium's own HalfCheetah-v4 still warns, as it always has).
    warnings.filterwarnings("ignore", message=r".*The environment HalfCheetah(Backward|Task)-v4 is out of date")


def check_env_id(env_id: str, where: str) -> None:
    """Refuse an id that gymnasium does not know, naming the closest registered one (as rl-zoo3's train does)."""
    import difflib

    import gymnasium as gym

    from sb3_latent.errors import UserInputError

    register_envs()
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=1)
        hint = f": did you mean {close[0]}?" if close else ", e.g. HalfCheetah-v4."
        raise UserInputError(f"{where}: gymnasium has no env {env_id}. Use a registered id{hint}")


def register_envs_hook(module: ModuleType) -> None:
    """Called by the start-up hook once ``gymnasium`` has finished importing."""
    register_envs()
