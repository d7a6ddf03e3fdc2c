"""One run (condition x seed) through rl-zoo3's own code path, in a stable, resumable folder: the workers' entry point.

The run's folder is described in :mod:`~sb3_latent.experiments.runs`; its training segments (built, resumed or
transferred the zoo way) in :mod:`~sb3_latent.experiments.segments`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from pathlib import Path

from sb3_latent.experiments.multitask import train_multitask
from sb3_latent.experiments.runs import (
    ERROR_FILE,
    LOCK_FILE,
    LOG_FILE,
    RunResult,
    RunSpec,
    finished_result,
    is_finished,
    progress_of,
)
from sb3_latent.experiments.segments import close_segment, open_segment, release_segment


def train(spec: RunSpec) -> RunResult:
    """Train one run to ``spec.n_timesteps`` steps, resuming from its checkpoint if it has one."""
    if is_finished(spec):
        return finished_result(spec)
    if spec.condition.multitask:
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
