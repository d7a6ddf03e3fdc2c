"""Checkpoints that resume a run exactly where it stopped: model, replay buffer, VecNormalize statistics.

A checkpoint folder has rl-zoo3's layout, so rl-zoo3's own loader (``ExperimentManager`` with
``trained_agent=<folder>/<env>.zip``) reads the model and the VecNormalize statistics::

    checkpoint/<env>.zip                   model (num_timesteps, optimisers, entropy coefficient, ...)
    checkpoint/<env>/vecnormalize.pkl      running observation/return statistics, if the run normalises
    checkpoint/replay_buffer.npz           the filled part of the replay buffer (off-policy algorithms)
    checkpoint/state.json                  num_timesteps, wall time, ... of this checkpoint

The replay buffer is stored compactly, only its filled rows, by :func:`sb3_latent.zoo_runs.save_replay_buffer`
(the run-folder reader reads it back). A checkpoint is written to a temporary folder and then swapped in, so an
interruption while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer

from sb3_latent.zoo_runs import REPLAY_BUFFER_FILE, save_replay_buffer

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """The state of the run's last complete checkpoint, or None if it has none."""
    state_path = run_dir / CHECKPOINT_DIR / STATE_FILE
    if not state_path.is_file():
        # Interrupted while swapping in a new checkpoint: the previous one is still whole.
        old = run_dir / f"{CHECKPOINT_DIR}.old" / STATE_FILE
        if old.is_file():
            (run_dir / f"{CHECKPOINT_DIR}.old").rename(run_dir / CHECKPOINT_DIR)
            return read_state(run_dir)
        return None
    return json.loads(state_path.read_text())


def save_checkpoint(model: BaseAlgorithm, run_dir: Path, env_name: str, state: dict[str, Any]) -> Path:
    """Write a checkpoint of ``model`` into ``run_dir/checkpoint`` (atomically replacing the previous one)."""
    final = run_dir / CHECKPOINT_DIR
    tmp = run_dir / f"{CHECKPOINT_DIR}.tmp"
    old = run_dir / f"{CHECKPOINT_DIR}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / env_name).mkdir(parents=True)
    model.save(tmp / f"{env_name}.zip")
    replay_buffer = getattr(model, "replay_buffer", None)
    if isinstance(replay_buffer, ReplayBuffer):
        state = {**state, "replay_buffer_size": save_replay_buffer(replay_buffer, tmp / REPLAY_BUFFER_FILE)}
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        vec_normalize.save(str(tmp / env_name / "vecnormalize.pkl"))
    # state.json last: a folder without it is incomplete.
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final
