"""A training segment of one run: its model built, resumed from its checkpoint or transferred the zoo way, then saved.

rl-zoo3's ``ExperimentManager`` (subclassed in :mod:`~sb3_latent.experiments.manager`) reads the YAML
(ours first, through :func:`sb3_latent.zoo.resolve_config`), preprocesses it (schedules,
``policy_kwargs`` strings, ``noise_type``/``noise_std``, ``normalize``, ``n_envs``, env wrappers,
callbacks), builds the envs and the model, and writes the zoo layout. We then call ``learn`` with our
callbacks (:mod:`~sb3_latent.experiments.callbacks`) and ``reset_num_timesteps=False`` when resuming,
so ``num_timesteps`` continues from the checkpoint. A run trains in one segment
(:func:`sb3_latent.experiments.runner.train`), a multi-task run in one segment per task
(:mod:`~sb3_latent.experiments.multitask`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from sb3_latent.experiments.callbacks import Checkpoints, Clock, EvaluationCSV, Progress
from sb3_latent.experiments.checkpoints import CHECKPOINT_DIR, read_state, save_checkpoint
from sb3_latent.experiments.manager import RunManager
from sb3_latent.experiments.runs import (
    ERROR_FILE,
    EVALUATIONS_FILE,
    PROGRESS_FILE,
    RUN_FILE,
    STATUS_FILE,
    RunResult,
    RunSpec,
    truncate_evaluations,
    write_progress,
)
from sb3_latent.zoo_runs import REPLAY_BUFFER_FILE, save_replay_buffer


@dataclass(frozen=True)
class StartPoint:
    """Where a training segment starts: from scratch, from the source run (transfer), or from the checkpoint."""

    mode: str
    steps: int
    wall_time_s: float
    segment_seed: int
    trained_agent: str


def start_point(spec: RunSpec) -> StartPoint:
    """Read the run folder: resume from its checkpoint (the folder is left as it is until the settings are checked),
    or clean it for a fresh start (nothing in it can be resumed)."""
    checkpoint_model = str(spec.path / CHECKPOINT_DIR / f"{spec.condition.env_id}.zip")
    state = read_state(spec.path)
    if state is not None:
        steps = int(state["num_timesteps"])
        # A resumed segment must not replay the random streams of the first one: reseed from the step count.
        return StartPoint("resume", steps, float(state.get("wall_time_s", 0.0)), spec.seed + steps, checkpoint_model)
    if (spec.path / STATUS_FILE).is_file():
        raise RuntimeError(
            f"{spec.path} finished an earlier, shorter budget but its checkpoint/ folder is gone, so it cannot be "
            f"extended to {spec.n_timesteps} steps. Delete the run folder to train it again from scratch."
        )
    # A fresh start (or one interrupted before its first checkpoint): begin from a clean folder.
    for name in (EVALUATIONS_FILE, PROGRESS_FILE, RUN_FILE, ERROR_FILE):
        (spec.path / name).unlink(missing_ok=True)
    shutil.rmtree(spec.path / spec.condition.algo, ignore_errors=True)
    if spec.source is None:
        # No checkpoint exists, so rl-zoo3 finds no VecNormalize statistics there and starts fresh ones.
        return StartPoint("scratch", 0, 0.0, spec.seed, checkpoint_model)
    source_model = spec.source.model_path()
    if source_model is None:
        raise RuntimeError(f"the source run {spec.source.save_path} has no saved model; train its condition first.")
    return StartPoint("transfer", 0, 0.0, spec.seed, str(source_model))


@dataclass
class Segment:
    """A run opened for training: its model (built, resumed or transferred the zoo way), eval env and callbacks."""

    spec: RunSpec
    manager: RunManager
    model: BaseAlgorithm
    eval_env: VecEnv
    clock: Clock
    state: dict[str, Any]
    callbacks: list[BaseCallback]
    resumed: bool
    start_steps: int
    started: bool = False

    @property
    def remaining_steps(self) -> int:
        # Before the first learn() a transferred model may still count its source's steps: the segment's own count.
        done = int(self.model.num_timesteps) if self.started else self.start_steps
        return max(0, self.spec.n_timesteps - done)

    def learn(self, steps: int) -> None:
        """Train ``steps`` more env steps; the first call of a run that is not resumed starts counting at 0."""
        self.model.learn(steps, callback=self.callbacks, reset_num_timesteps=not (self.resumed or self.started))
        self.started = True


def open_segment(spec: RunSpec) -> Segment:
    """Build the run's model (from scratch, from its checkpoint, or from its source run) and its callbacks."""
    start = start_point(spec)
    print(
        f"[{spec.key}] {start.mode} at {start.steps} steps, target {spec.n_timesteps}, seed {start.segment_seed}", flush=True
    )
    manager = RunManager(spec, start.mode, start.segment_seed, start.trained_agent)
    setup = manager.setup_experiment()
    assert setup is not None
    model, _ = setup
    resumed = start.mode == "resume"
    if resumed:
        if model.num_timesteps != start.steps:
            raise RuntimeError(
                f"checkpoint state says {start.steps} steps but the checkpoint model has {model.num_timesteps}."
            )
        # The settings matched (RunManager.read_hyperparameters): evaluations after the checkpoint will be redone.
        truncate_evaluations(spec.path / EVALUATIONS_FILE, start.steps)
        (spec.path / STATUS_FILE).unlink(missing_ok=True)
    eval_env = manager.create_envs(manager.n_eval_envs, eval_env=True)
    clock = Clock(start.wall_time_s)
    state = {"seed": spec.seed, "segment_seed": start.segment_seed, "budget": spec.budget}
    callbacks = [
        *manager.callbacks,  # the YAML's own `callback:` entries, as rl-zoo3 adds them
        EvaluationCSV(spec, eval_env, Path(manager.params_path), clock),
        Checkpoints(spec, spec.condition.env_id, clock, state),
        Progress(spec),
    ]
    write_progress(spec, start.steps)
    return Segment(spec, manager, model, eval_env, clock, state, callbacks, resumed, start.steps)


def close_segment(segment: Segment) -> RunResult:
    """Save the final checkpoint, the zoo model (and replay buffer of a source run), and mark the run done."""
    spec, model = segment.spec, segment.model
    final_steps = int(model.num_timesteps)
    last = read_state(spec.path)
    if last is None or int(last["num_timesteps"]) != final_steps:
        state = {**segment.state, "num_timesteps": final_steps, "wall_time_s": round(segment.clock(), 2)}
        save_checkpoint(model, spec.path, spec.condition.env_id, state)
    segment.manager.save_trained_model(model)
    replay_buffer = getattr(model, "replay_buffer", None)  # off-policy algorithms only
    if spec.save_replay_buffer and replay_buffer is not None:
        save_replay_buffer(replay_buffer, spec.save_path / REPLAY_BUFFER_FILE)
    wall_time_s = round(segment.clock(), 2)
    status = {
        "status": "done",
        "num_timesteps": final_steps,
        "target": spec.n_timesteps,
        "stopped_early": final_steps < spec.n_timesteps,
        "wall_time_s": wall_time_s,
        "budget": spec.budget,
    }
    write_progress(spec, final_steps)
    (spec.path / STATUS_FILE).write_text(json.dumps(status, indent=1))
    return RunResult(spec.key, "done", final_steps, wall_time_s)


def release_segment(segment: Segment) -> None:
    segment.eval_env.close()
    if segment.model.env is not None:
        segment.model.env.close()
