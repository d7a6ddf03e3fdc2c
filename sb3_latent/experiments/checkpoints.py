"""Checkpoints that resume a run exactly where it stopped: model, replay buffer, VecNormalize statistics.

A checkpoint folder has rl-zoo3's layout, so rl-zoo3's own loader (``ExperimentManager`` with
``trained_agent=<folder>/<env>.zip``) reads the model and the VecNormalize statistics::

    checkpoint/<env>.zip                   model (num_timesteps, optimisers, entropy coefficient, ...)
    checkpoint/<env>/vecnormalize.pkl      running observation/return statistics, if the run normalises
    checkpoint/replay_buffer.npz           the filled part of the replay buffer (off-policy algorithms)
    checkpoint/state.json                  num_timesteps, wall time, ... and the SHA-256 of each file above

The replay buffer is stored compactly, only its filled rows, by :func:`sb3_latent.zoo_runs.save_replay_buffer`
(the run-folder reader reads it back). The last two checkpoints are kept: ``checkpoint/`` and, one
``checkpoint_freq`` older, ``checkpoint.previous/``. A checkpoint is written to ``checkpoint.tmp/``, its
state.json last, and then rotated in, so an interruption while saving leaves both earlier ones intact. Before
a run resumes, :func:`settle_checkpoints` checks each file against its recorded hash: a truncated or corrupt
checkpoint is deleted with a one-line warning and the run resumes from the other one, or from step 0.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer

from sb3_latent.experiments.runs import RunWarning, read_json
from sb3_latent.zoo_runs import REPLAY_BUFFER_FILE, save_replay_buffer

CHECKPOINT_DIR = "checkpoint"
PREVIOUS_DIR = f"{CHECKPOINT_DIR}.previous"
TMP_DIR = f"{CHECKPOINT_DIR}.tmp"
STATE_FILE = "state.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _problem(folder: Path) -> str | None:
    """Why the checkpoint in ``folder`` cannot be resumed from (None if it is whole)."""
    state = read_json(folder / STATE_FILE)
    if not isinstance(state, dict) or "num_timesteps" not in state or not isinstance(state.get("files"), dict):
        return f"its {STATE_FILE} is missing or unreadable"
    for name, digest in state["files"].items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if _sha256(path) != digest:
            return f"{name} is truncated or corrupt (its SHA-256 differs from the one recorded when it was saved)"
    return None


def settle_checkpoints(run_dir: Path) -> dict[str, Any] | None:
    """The state of the newest whole checkpoint, moved to ``run_dir/checkpoint`` (None if the run has none).

    A checkpoint that fails its check is deleted with a one-line :class:`RunWarning` that says where the run
    resumes instead; one interrupted while being written (``checkpoint.tmp`` without its state.json) is deleted
    silently. The two newest whole ones are renamed ``checkpoint`` and ``checkpoint.previous``, as
    :func:`save_checkpoint` would have left them.
    """
    tmp, final, previous = run_dir / TMP_DIR, run_dir / CHECKPOINT_DIR, run_dir / PREVIOUS_DIR
    whole: list[Path] = []
    broken: list[str] = []
    for folder in (tmp, final, previous):  # newest first: the order in which save_checkpoint rotates them
        if not folder.is_dir():
            continue
        problem = _problem(folder)
        if problem is None:
            whole.append(folder)
            continue
        if folder != tmp or (folder / STATE_FILE).exists():
            broken.append(f"{folder.name}/: {problem}")
        shutil.rmtree(folder)
    for folder in whole[2:]:
        shutil.rmtree(folder)
    # Renamed oldest first, so that no rename lands on a folder that is kept.
    for folder, target in reversed(list(zip(whole[:2], (final, previous), strict=False))):
        if folder != target:
            shutil.rmtree(target, ignore_errors=True)
            folder.rename(target)
    state = read_json(final / STATE_FILE) if whole else None
    if broken:
        where = f"resuming from step {state['num_timesteps']}" if state else "training again from step 0"
        warnings.warn(f"{run_dir}: deleted the checkpoint {'; '.join(broken)}; {where}.", RunWarning, stacklevel=2)
    return state


def last_state(run_dir: Path) -> dict[str, Any] | None:
    """The state of the run's last checkpoint as saved (unchecked: for the run that has just written it)."""
    return read_json(run_dir / CHECKPOINT_DIR / STATE_FILE)


def save_checkpoint(model: BaseAlgorithm, run_dir: Path, env_name: str, state: dict[str, Any]) -> Path:
    """Write a checkpoint of ``model`` into ``run_dir/checkpoint``; the one it replaces becomes ``checkpoint.previous``."""
    tmp, final, previous = run_dir / TMP_DIR, run_dir / CHECKPOINT_DIR, run_dir / PREVIOUS_DIR
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / env_name).mkdir(parents=True)
    model.save(tmp / f"{env_name}.zip")
    replay_buffer = getattr(model, "replay_buffer", None)
    if isinstance(replay_buffer, ReplayBuffer):
        state = {**state, "replay_buffer_size": save_replay_buffer(replay_buffer, tmp / REPLAY_BUFFER_FILE)}
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        vec_normalize.save(str(tmp / env_name / "vecnormalize.pkl"))
    files = {path.relative_to(tmp).as_posix(): _sha256(path) for path in sorted(tmp.rglob("*")) if path.is_file()}
    # state.json last: a folder without it is incomplete.
    (tmp / STATE_FILE).write_text(json.dumps({**state, "files": files}, indent=1))
    shutil.rmtree(previous, ignore_errors=True)
    if final.exists():
        final.rename(previous)
    tmp.rename(final)
    return final
