"""Where runs execute, and the scheduler that feeds them in dependency order with a progress bar.

- :class:`LocalBackend` (default): a ``concurrent.futures`` process pool (``spawn``: no state
  inherited from the driver) of ``workers`` processes with one torch thread each.
- :class:`RayBackend`: each run is a Ray task (``num_cpus=1``) on an existing cluster
  (``ray.init(address=...)``); the results folder must be on storage that every node sees.

The scheduler submits a run once its source run (same seed) has finished, skips runs that are
already finished, and reads each running run's ``progress.json`` for the progress bar.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol

from sb3_latent.errors import UserInputError
from sb3_latent.experiments.plan import dependency
from sb3_latent.experiments.runner import run_one
from sb3_latent.experiments.runs import RunResult, RunSpec, finished_result, is_finished, progress_of

# Every worker (and its children) uses one torch/BLAS thread: on a shared 2-core machine, torch's default of one
# thread per core slows a SAC update down many times while another process holds the other core.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "SB3_LATENT_NUM_THREADS": "1"}


class Backend(Protocol):
    def capacity(self, running: int) -> bool: ...

    def submit(self, spec: RunSpec) -> Any: ...

    def wait(self, handles: list[Any], timeout: float) -> list[Any]: ...

    def result(self, handle: Any) -> RunResult: ...

    def cancel(self, handles: list[Any]) -> None: ...

    def shutdown(self) -> None: ...


class LocalBackend:
    """A process pool of ``workers`` processes, one run per process."""

    def __init__(self, workers: int) -> None:
        os.environ.update(WORKER_ENV)  # inherited by the spawned workers
        self.workers = workers
        # Workers are reused: importing torch, SB3 and rl-zoo3 takes ~10 s per process on a slow CPU.
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    def capacity(self, running: int) -> bool:
        return running < self.workers

    def submit(self, spec: RunSpec) -> Future:
        return self.pool.submit(run_one, spec)

    def wait(self, handles: list[Future], timeout: float) -> list[Future]:
        done, _ = wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Future) -> RunResult:
        return handle.result()

    def cancel(self, handles: list[Future]) -> None:
        pass  # Ctrl-C reaches the workers directly: they are in the driver's process group.

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class InlineBackend:
    """Runs each run in this process, one after the other (debugging, tests that patch things in-process)."""

    def __init__(self) -> None:
        self.done: dict[int, RunResult] = {}

    def capacity(self, running: int) -> bool:
        return running == 0

    def submit(self, spec: RunSpec) -> int:
        handle = len(self.done)
        self.done[handle] = run_one(spec)
        return handle

    def wait(self, handles: list[int], timeout: float) -> list[int]:
        return list(handles)

    def result(self, handle: int) -> RunResult:
        return self.done[handle]

    def cancel(self, handles: list[int]) -> None:
        pass

    def shutdown(self) -> None:
        pass


class RayBackend:
    """Each run is a Ray task with one CPU, on the cluster at ``address`` (``auto``, ``ray://host:10001``, ``local``)."""

    def __init__(self, address: str | None, workers: int | None) -> None:
        try:
            import ray
        except ImportError:
            raise UserInputError("--backend ray needs Ray: pip install 'sb3-latent[ray]' (or pip install ray).") from None
        self.ray = ray
        self.workers = workers
        if not ray.is_initialized():
            ray.init(address=address, runtime_env={"env_vars": WORKER_ENV}, log_to_driver=False)
        # max_retries=0: a run that died is reported, not restarted behind our back (rerunning the command resumes it).
        self.remote = ray.remote(num_cpus=1, max_retries=0)(run_one)

    def capacity(self, running: int) -> bool:
        return self.workers is None or running < self.workers

    def submit(self, spec: RunSpec) -> Any:
        return self.remote.remote(spec)

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        done, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        return list(done)

    def result(self, handle: Any) -> RunResult:
        return self.ray.get(handle)

    def cancel(self, handles: list[Any]) -> None:
        for handle in handles:
            self.ray.cancel(handle)  # KeyboardInterrupt inside the task: the run keeps its last checkpoint

    def shutdown(self) -> None:
        self.ray.shutdown()


def make_backend(name: str, workers: int | None, address: str | None) -> Backend:
    if name == "local":
        return LocalBackend(workers or 2)
    if name == "ray":
        return RayBackend(address, workers)
    raise UserInputError(f"unknown backend {name!r}: use local or ray.")


def execute(
    specs: list[RunSpec],
    make: Callable[[], Backend],
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, RunResult]:
    """Run ``specs`` (each after its source), skipping finished ones. Returns key -> result.

    The backend is created only if some run needs training. KeyboardInterrupt stops every run and is
    re-raised; each resumes from its last checkpoint on the next call.
    """
    from tqdm.auto import tqdm

    results: dict[str, RunResult] = {}
    waiting: list[RunSpec] = []
    for spec in specs:
        if is_finished(spec):
            results[spec.key] = finished_result(spec)
            log(f"skip      {spec.key}: finished ({results[spec.key].num_timesteps} steps)")
        else:
            waiting.append(spec)
    if not waiting:
        return results

    backend = make()
    running: dict[Any, RunSpec] = {}
    total = sum(spec.n_timesteps for spec in waiting)
    # disable=None: a bar on a terminal only; logs (CI, nohup) get the one-line-per-run messages.
    bar = tqdm(total=total, unit="step", desc="training", disable=None if show_progress else True, dynamic_ncols=True)
    say = bar.write if not bar.disable else log
    finished_steps = 0
    try:
        while waiting or running:
            for spec in list(waiting):
                before = dependency(spec)
                if before is not None and before not in results and any(s.key == before for s in specs):
                    continue
                if before is not None and before in results and results[before].status not in ("done", "skipped"):
                    waiting.remove(spec)
                    results[spec.key] = RunResult(
                        spec.key, "failed", message=f"its source run {before} {results[before].status}"
                    )
                    say(f"failed    {spec.key}: {results[spec.key].message}")
                    finished_steps += spec.n_timesteps
                    continue
                if not backend.capacity(len(running)):
                    break
                waiting.remove(spec)
                running[backend.submit(spec)] = spec
                say(f"start     {spec.key} ({spec.condition.algo} on {spec.condition.env_id}, {spec.n_timesteps} steps)")
            for handle in backend.wait(list(running), timeout=1.0) if running else []:
                spec = running.pop(handle)
                try:
                    result = backend.result(handle)
                except Exception as error:  # the worker itself died (killed, out of memory, Ray node lost)
                    result = RunResult(spec.key, "failed", progress_of(spec), message=f"its worker died: {error!r}")
                results[spec.key] = result
                finished_steps += spec.n_timesteps
                detail = (
                    f"{result.num_timesteps} steps in {result.wall_time_s:.0f} s"
                    if result.status == "done"
                    else result.message
                )
                say(f"{result.status:<9} {spec.key}: {detail}")
            bar.n = min(total, finished_steps + sum(min(progress_of(s), s.n_timesteps) for s in running.values()))
            bar.set_postfix_str(f"{len(results)}/{len(specs)} runs, running: {', '.join(s.key for s in running.values())}")
            bar.refresh()
    except BaseException:
        backend.cancel(list(running))
        raise
    finally:
        bar.close()
        backend.shutdown()
    return results
