"""Why LatentSAC's second-core mode is a process and not a thread: the measurements behind docs/performance.md.

    python benchmarks/concurrency_probe.py

On HalfCheetah-v4 (batch 256, 256x256 actor and critics, one torch thread per process), after 1,000 random steps
and 50 gradient steps, it times ``train(1)`` of a default LatentSAC

- alone;
- with a second such model training in a second thread of the same process (the GIL is shared);
- with a second such model training in a second process (nothing is shared but the cores);

and, for ``concurrent_update="process"``, how long the training process waits per step for its child. It also
times one latent-policy sample of 256 states, written out (``LatentActor.sample_latent``) and through SB3's
``SquashedDiagGaussianDistribution``. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import threading
import time
from pathlib import Path
from typing import Any


def make_model(**kwargs: Any) -> Any:
    import torch as th

    th.set_num_threads(1)
    from sb3_latent import LatentSAC

    model = LatentSAC(
        "HalfCheetah-v4", learning_starts=1000, batch_size=256, policy_kwargs={"net_arch": [256, 256]}, seed=0, **kwargs
    )
    model.learn(1050)  # the random steps, the generator's warm-up and 50 gradient steps
    return model


def ms_per_train(model: Any, n: int, start: threading.Barrier | None = None) -> float:
    if start is not None:
        start.wait()
    begin = time.perf_counter()
    for _ in range(n):
        model.train(1, 256)
    return (time.perf_counter() - begin) / n * 1e3


def _process_worker(n: int, ready: Any, go: Any, results: Any) -> None:
    model = make_model()
    ready.wait()
    go.wait()
    results.put(ms_per_train(model, n))


def side_by_side_processes(n: int) -> list[float]:
    context = multiprocessing.get_context("spawn")
    ready, go, results = context.Barrier(3), context.Event(), context.Queue()
    workers = [context.Process(target=_process_worker, args=(n, ready, go, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    ready.wait()  # both models built: start them together
    go.set()
    times = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    return times


def side_by_side_threads(n: int) -> list[float]:
    models = [make_model(), make_model()]
    start = threading.Barrier(2)
    times: list[float] = [0.0, 0.0]

    def run(index: int) -> None:
        times[index] = ms_per_train(models[index], n, start)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def process_mode_wait(n: int) -> dict[str, float]:
    """Median ms per train(1) of concurrent_update="process", and of the training process's wait for its child."""
    from sb3_latent.latent_sac.update_process import UpdateProcess

    waits: list[float] = []
    finish_step = UpdateProcess.finish_step

    def timed_finish_step(self: UpdateProcess) -> Any:
        begin = time.perf_counter()
        result = finish_step(self)
        waits.append(time.perf_counter() - begin)
        return result

    model = make_model(concurrent_update="process")
    UpdateProcess.finish_step = timed_finish_step  # type: ignore[method-assign]
    try:
        train_ms = ms_per_train(model, n)
    finally:
        UpdateProcess.finish_step = finish_step  # type: ignore[method-assign]
    return {"train_ms": train_ms, "wait_for_child_ms": statistics.median(waits) * 1e3}


def latent_sample_ms(n: int) -> dict[str, float]:
    model = make_model()
    actor = model.actor
    obs = model.replay_buffer.sample(256).observations

    def through_sb3() -> None:
        mean, log_std, _ = actor._distribution_and_residual(obs)
        actor.action_dist.log_prob_from_params(mean, log_std)

    result = {}
    for name, sample in (("written_out", lambda: actor.sample_latent(obs)), ("sb3_distribution", through_sb3)):
        for _ in range(50):
            sample()
        begin = time.perf_counter()
        for _ in range(n):
            sample()
        result[name] = (time.perf_counter() - begin) / n * 1e3
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=400, help="train(1) calls timed per measurement")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "concurrency_probe.json")
    args = parser.parse_args()
    n = args.updates
    summary = {
        "alone_ms": ms_per_train(make_model(), n),
        "two_threads_ms": side_by_side_threads(n),
        "two_processes_ms": side_by_side_processes(n),
        "process_mode": process_mode_wait(n),
        "latent_sample_ms": latent_sample_ms(2000),
    }
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
