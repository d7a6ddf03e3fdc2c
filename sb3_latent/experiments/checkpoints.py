"""Checkpoints that resume a run exactly where it stopped: model, replay buffer, VecNormalize statistics.

A checkpoint folder has rl-zoo3's layout, so rl-zoo3's own loader (``ExperimentManager`` with
``trained_agent=<folder>/<env>.zip``) reads the model and the VecNormalize statistics::

    checkpoint/<env>.zip                   model (num_timesteps, optimisers, entropy coefficient, ...)
    checkpoint/<env>/vecnormalize.pkl      running observation/return statistics, if the run normalises
    checkpoint/replay_buffer.npz           the filled part of the replay buffer (off-policy algorithms)
    checkpoint/state.json                  num_timesteps, wall time, ... of this checkpoint

The replay buffer is stored compactly: only its filled rows, oldest first. SB3's
``save_replay_buffer`` pickles the whole preallocated array (about 300 MB for HalfCheetah's 1M
buffer even when it holds 5k transitions), which would make frequent checkpoints impractical.
A checkpoint is written to a temporary folder and then swapped in, so an interruption while
saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
REPLAY_BUFFER_FILE = "replay_buffer.npz"
# Bookkeeping of ReplayBuffer subclasses that is not per-transition data.
_META_KEYS = ("pos", "full")


def _transition_arrays(buffer: ReplayBuffer) -> dict[str, np.ndarray]:
    """Every per-transition array of the buffer (first axis = buffer_size), dict observations flattened."""
    arrays: dict[str, np.ndarray] = {}
    for name, value in vars(buffer).items():
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == buffer.buffer_size:
            arrays[name] = value
        elif isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
            for key, array in value.items():
                if array.shape[0] == buffer.buffer_size:
                    arrays[f"{name}/{key}"] = array
    return arrays


def save_replay_buffer(buffer: ReplayBuffer, path: Path) -> int:
    """Save the filled rows of ``buffer``, oldest first. Returns the number of rows saved."""
    if buffer.optimize_memory_usage:
        raise NotImplementedError("compact checkpoints do not support optimize_memory_usage=True replay buffers")
    size = buffer.buffer_size if buffer.full else buffer.pos
    order = (np.arange(size) + buffer.pos) % buffer.buffer_size if buffer.full else np.arange(size)
    rows = {name: array[order] for name, array in _transition_arrays(buffer).items()}
    with open(path, "wb") as file:
        np.savez(file, **rows)  # type: ignore[arg-type]
    return size


def restore_replay_buffer(buffer: ReplayBuffer, path: Path) -> int:
    """Fill ``buffer`` (freshly built, empty) with the rows saved at ``path``. Returns the number of rows.

    The buffer may be larger than the saved one (it keeps all rows) or smaller (it keeps the newest
    rows, as the smaller buffer would have).
    """
    arrays = _transition_arrays(buffer)
    with np.load(path) as saved:
        names = set(saved.files)
        if names != set(arrays):
            raise ValueError(
                f"{path} holds replay-buffer fields {sorted(names)}, but this model's buffer has {sorted(arrays)}: "
                "the checkpoint was written by another algorithm or buffer class."
            )
        n_saved = saved[next(iter(names))].shape[0] if names else 0
        keep = min(n_saved, buffer.buffer_size)
        for name, array in arrays.items():
            rows = saved[name][n_saved - keep :]
            if rows.shape[1:] != array.shape[1:]:
                raise ValueError(f"{path}: field {name} has rows of shape {rows.shape[1:]}, the buffer {array.shape[1:]}.")
            array[:keep] = rows
    buffer.pos = keep % buffer.buffer_size
    buffer.full = keep == buffer.buffer_size
    return keep


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
