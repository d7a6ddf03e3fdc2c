"""One run (condition x seed) through rl-zoo3's own code path, in a stable, resumable folder.

rl-zoo3's ``ExperimentManager`` (subclassed in :mod:`~sb3_latent.experiments.manager`) reads the YAML
(ours first, through :func:`sb3_latent.zoo.resolve_config`), preprocesses it (schedules,
``policy_kwargs`` strings, ``noise_type``/``noise_std``, ``normalize``, ``n_envs``, env wrappers,
callbacks), builds the envs and the model, and writes the zoo layout. We then call ``learn`` with our
callbacks (:mod:`~sb3_latent.experiments.callbacks`) and ``reset_num_timesteps=False`` when resuming,
so ``num_timesteps`` continues from the checkpoint. This module itself imports nothing heavy: the
driver uses it to plan and to read results.

Everything a run writes lives in its folder::

    <run>/evaluations.csv            one row per evaluation, appended as it happens
    <run>/run.json                   what the run is (settings it must keep to be resumed)
    <run>/status.json                written when it finishes
    <run>/progress.json              num_timesteps while it trains (read by the progress bar)
    <run>/train.log                  rl-zoo3's and SB3's output
    <run>/checkpoint/                last checkpoint (see checkpoints.py)
    <run>/<algo>/<env>_1/            rl-zoo3 layout: <env>.zip, best_model.zip, 0.monitor.csv, evaluations.npz,
                                     <env>/config.yml
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sb3_latent.experiments.specs import Condition
from sb3_latent.experiments.transfers import SourceRun

if TYPE_CHECKING:  # heavy (SB3, rl-zoo3): the driver imports this module to plan runs and read results
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import VecEnv

    from sb3_latent.experiments.callbacks import Clock
    from sb3_latent.experiments.manager import RunManager

EVALUATIONS_FILE = "evaluations.csv"
EVALUATION_COLUMNS = ("steps", "eval_return_mean", "eval_return_std", "eval_length_mean", "wall_time_s", "time")
STATUS_FILE = "status.json"
PROGRESS_FILE = "progress.json"
RUN_FILE = "run.json"
LOG_FILE = "train.log"
ERROR_FILE = "error.txt"
LOCK_FILE = ".lock"
# Seconds between two writes of progress.json.
PROGRESS_PERIOD = 2.0


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to train one run (picklable, for process pools and Ray).

    :param experiment: experiment name
    :param condition: the condition
    :param seed: seed of this run (also its folder ``seed<k>``)
    :param run_dir: the run's folder
    :param n_timesteps: train until ``num_timesteps`` reaches this
    :param eval_freq: evaluate every this many env steps
    :param n_eval_episodes: episodes per evaluation
    :param checkpoint_freq: checkpoint every this many env steps
    :param layers: hyperparameter overrides applied in order on the YAML entry (budget, then condition)
    :param env_kwargs: env kwargs (budget's, then condition's)
    :param budget: budget name (recorded only)
    :param source: the finished source run, for a transfer run
    :param save_replay_buffer: keep the replay buffer beside the final model (the run is a source)
    """

    experiment: str
    condition: Condition
    seed: int
    run_dir: str
    n_timesteps: int
    eval_freq: int
    n_eval_episodes: int
    checkpoint_freq: int
    layers: tuple[dict[str, Any], ...] = ()
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    budget: str = ""
    source: SourceRun | None = None
    save_replay_buffer: bool = False

    @property
    def key(self) -> str:
        return f"{self.condition.name}/seed{self.seed}"

    @property
    def path(self) -> Path:
        return Path(self.run_dir)

    @property
    def save_path(self) -> Path:
        """rl-zoo3's ``<log folder>/<algo>/<env>_<id>`` with id fixed to 1."""
        return self.path / self.condition.algo / f"{self.condition.env_id}_1"


@dataclass(frozen=True)
class RunResult:
    """What became of a run: ``done`` (trained now), ``skipped`` (already finished) or ``failed`` (see ``message``)."""

    key: str
    status: str
    num_timesteps: int = 0
    wall_time_s: float = 0.0
    message: str = ""


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_finished(spec: RunSpec) -> bool:
    """True if the run already trained for ``spec.n_timesteps`` steps (or stopped early by its own callback)."""
    status = read_json(spec.path / STATUS_FILE)
    if not status or status.get("status") != "done":
        return False
    return int(status.get("num_timesteps", 0)) >= spec.n_timesteps or bool(status.get("stopped_early"))


def progress_of(spec: RunSpec) -> int:
    """Steps trained so far (from progress.json), for progress bars."""
    progress = read_json(spec.path / PROGRESS_FILE)
    return int(progress.get("num_timesteps", 0)) if progress else 0


def read_evaluations(path: Path) -> list[dict[str, float]]:
    """The rows of an evaluations.csv (numbers as floats; the ``time`` column is dropped)."""
    if not path.is_file():
        return []
    with open(path, newline="") as file:
        return [
            {key: float(value) for key, value in row.items() if key != "time" and value not in ("", None)}
            for row in csv.DictReader(file)
        ]


def _truncate_evaluations(path: Path, max_steps: int) -> None:
    """Drop rows logged after the checkpoint we resume from: they will be logged again."""
    if not path.is_file():
        return
    with open(path, newline="") as file:
        rows = [row for row in csv.DictReader(file) if int(float(row["steps"])) <= max_steps]
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=EVALUATION_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _jsonable(value: Any) -> Any:
    """A JSON-comparable form of a hyperparameter value (objects by their repr)."""
    return json.loads(json.dumps(value, default=repr, sort_keys=True))


def write_progress(spec: RunSpec, num_timesteps: int) -> None:
    tmp = spec.path / f"{PROGRESS_FILE}.tmp"
    tmp.write_text(json.dumps({"num_timesteps": int(num_timesteps), "target": spec.n_timesteps}))
    tmp.replace(spec.path / PROGRESS_FILE)


def check_settings(spec: RunSpec, hyperparams: dict[str, Any]) -> None:
    """Record what the run is; refuse to resume a folder trained with other settings."""
    settings = _jsonable(
        {
            "algo": spec.condition.algo,
            "env_id": spec.condition.env_id,
            "env_kwargs": spec.env_kwargs,
            "hyperparams": {key: value for key, value in hyperparams.items() if key != "n_timesteps"},
            "eval_freq": spec.eval_freq,
            "n_eval_episodes": spec.n_eval_episodes,
            "source": None
            if spec.condition.source is None
            else [spec.condition.source.condition, spec.condition.source.transfer],
            # Only when set, so that the settings of every other run read as before.
            **({"multitask": spec.condition.multitask} if spec.condition.multitask else {}),
        }
    )
    path = spec.path / RUN_FILE
    recorded = read_json(path)
    if recorded is not None and recorded.get("settings") != settings:
        old = recorded.get("settings", {})
        diff = sorted(key for key in set(old) | set(settings) if old.get(key) != settings.get(key))
        if "hyperparams" in diff:
            old_h, new_h = old.get("hyperparams", {}), settings["hyperparams"]
            diff += [f"hyperparams.{k}" for k in sorted(set(old_h) | set(new_h)) if old_h.get(k) != new_h.get(k)]
        raise RuntimeError(
            f"{spec.path} holds a run with other settings (differs in: {', '.join(diff)}; budget {recorded.get('budget')!r}). "
            "Use another results folder (-f) or delete this run folder to train it again."
        )
    if recorded is None:
        record = {"experiment": spec.experiment, "condition": spec.condition.name, "seed": spec.seed, "budget": spec.budget}
        path.write_text(json.dumps({**record, "settings": settings}, indent=1))


# ----------------------------------------------------------------------------------------------------------------------


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
    from sb3_latent.experiments.checkpoints import CHECKPOINT_DIR, read_state

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
    if not spec.source.model_path.is_file():
        raise RuntimeError(f"the source run has no model at {spec.source.model_path}; train its condition first.")
    return StartPoint("transfer", 0, 0.0, spec.seed, str(spec.source.model_path))


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
    from sb3_latent.experiments.callbacks import Checkpoints, Clock, EvaluationCSV, Progress
    from sb3_latent.experiments.manager import RunManager

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
        _truncate_evaluations(spec.path / EVALUATIONS_FILE, start.steps)
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
    from sb3_latent.experiments.checkpoints import read_state, save_checkpoint, save_replay_buffer

    spec, model = segment.spec, segment.model
    final_steps = int(model.num_timesteps)
    last = read_state(spec.path)
    if last is None or int(last["num_timesteps"]) != final_steps:
        state = {**segment.state, "num_timesteps": final_steps, "wall_time_s": round(segment.clock(), 2)}
        save_checkpoint(model, spec.path, spec.condition.env_id, state)
    segment.manager.save_trained_model(model)
    replay_buffer = getattr(model, "replay_buffer", None)  # off-policy algorithms only
    if spec.save_replay_buffer and replay_buffer is not None:
        save_replay_buffer(replay_buffer, spec.save_path / "replay_buffer.npz")
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


def train(spec: RunSpec) -> RunResult:
    """Train one run to ``spec.n_timesteps`` steps, resuming from its checkpoint if it has one."""
    if is_finished(spec):
        status = read_json(spec.path / STATUS_FILE) or {}
        return RunResult(spec.key, "skipped", int(status.get("num_timesteps", 0)), float(status.get("wall_time_s", 0.0)))
    if spec.condition.multitask:
        from sb3_latent.experiments.multitask import train_multitask

        return train_multitask(spec)
    segment = open_segment(spec)
    try:
        segment.learn(segment.remaining_steps)
        return close_segment(segment)
    finally:
        release_segment(segment)


def _lock(stack: contextlib.ExitStack, path: Path) -> bool:
    """Hold an exclusive lock on ``path`` until ``stack`` closes; False if another process holds it.

    Two commands on the same results folder must not train the same run at once. Where ``fcntl`` is missing
    (Windows), no lock is taken.
    """
    try:
        import fcntl
    except ImportError:
        return True
    file = stack.enter_context(open(path, "a"))  # noqa: SIM115 (closed by the caller's ExitStack)
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def run_one(spec: RunSpec) -> RunResult:
    """Worker entry point (process pool or Ray task): one torch thread, output to the run's train.log.

    Errors are returned, not raised, so that one failed run does not stop the others; the traceback
    goes to ``<run>/error.txt``. Ctrl-C (KeyboardInterrupt) is raised: the run resumes from its last
    checkpoint next time.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch as th

    th.set_num_threads(1)
    # gymnasium before our envs module: the start-up hook registers our ids when gymnasium finishes loading, and it
    # cannot while sb3_latent.envs is itself half-imported (it imports gymnasium).
    import gymnasium  # noqa: F401

    from sb3_latent.envs import register_envs
    from sb3_latent.zoo import register

    register_envs()
    register()
    spec.path.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if not _lock(stack, spec.path / LOCK_FILE):
            return RunResult(spec.key, "failed", message=f"another process is training {spec.path} (it holds {LOCK_FILE})")
        log = stack.enter_context(open(spec.path / LOG_FILE, "a"))
        stack.enter_context(contextlib.redirect_stdout(log))
        stack.enter_context(contextlib.redirect_stderr(log))
        try:
            return train(spec)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:
            trace = traceback.format_exc()
            print(trace, file=sys.stderr)
            (spec.path / ERROR_FILE).write_text(trace)
            return RunResult(spec.key, "failed", progress_of(spec), 0.0, f"{type(error).__name__}: {error}")
