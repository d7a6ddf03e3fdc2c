"""Training throughput: LatentSAC against SB3's SAC, in env steps per second.

    python benchmarks/throughput.py                       # CPU, all arms, 2 rounds
    python benchmarks/throughput.py --rounds 3 --arms latent_sac latent_sac_2_threads latent_sac_side_by_side
    python benchmarks/throughput.py --device cuda --steps 2000 --arms sac_1_thread latent_sac   # eager, on a GPU

Each arm trains on HalfCheetah-v4 for ``--learning-starts`` random steps (not timed), then for
``--steps`` steps with one gradient step per env step, timed from the second (so that LatentSAC's
one-off generator warm-up on the random data is left out) (batch 256, 256x256 actor and critics,
UTD 1, the settings of the learning benchmarks). Every arm runs in a fresh process, and the arms are
interleaved (A B C A B C ...) so that a noisy shared machine hurts them alike. Besides env steps/s,
each run reports the FLOPs of one update (counted by torch's FlopCounterMode) and the GFLOP/s its
updates achieved, against a matmul probe run in the same process. The ``*_side_by_side`` arms run two 1-thread
processes of the same training at once (two seeds, as a sweep would): each one's env steps/s, and their total.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# name -> how the arm is built: algorithm, torch threads (None: torch's default), whether rl-zoo3's
# ParallelTrainCallback trains in a second thread, whether two processes of it run side by side, and the LatentSAC
# decoder (default: the residual one).
ARMS: dict[str, dict[str, Any]] = {
    "sac_default_threads": {"algo": "sac", "threads": None},
    "sac_1_thread": {"algo": "sac", "threads": 1},
    "sac_parallel_train": {"algo": "sac", "threads": 1, "parallel_train": True},
    "latent_sac": {"algo": "latent_sac", "threads": 1},
    "latent_sac_2_threads": {"algo": "latent_sac", "threads": 2},
    # The second core for a second run: two 1-thread processes at once (seeds 0 and 1).
    "sac_side_by_side": {"algo": "sac", "threads": 1, "side_by_side": True},
    "latent_sac_side_by_side": {"algo": "latent_sac", "threads": 1, "side_by_side": True},
    # The flow generator (decoder="flow"), to set its time per gradient step beside the residual decoder's.
    "latent_sac_flow": {"algo": "latent_sac", "threads": 1, "decoder": "flow"},
}
CPU_ARMS = list(ARMS)
# (arm, baseline) pairs whose ratio the issue asks for.
RATIOS = {
    "one core: latent_sac / sac_1_thread": ("latent_sac", "sac_1_thread"),
    "both cores: best latent_sac / best sac": ("best:latent_sac", "best:sac"),
    "both cores, two runs: latent_sac / sac, in total": ("latent_sac_side_by_side", "sac_side_by_side"),
    "one core: latent_sac_flow / latent_sac (env steps/s)": ("latent_sac_flow", "latent_sac"),
}


def matmul_gflops(device: str, size: int = 256, repeats: int = 400) -> float:
    import torch as th

    a = th.randn(size, size, device=device)
    b = th.randn(size, size, device=device)
    for _ in range(20):
        a @ b
    if device.startswith("cuda"):
        th.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.startswith("cuda"):
        th.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def run_arm(name: str, steps: int, learning_starts: int, device: str, seed: int) -> dict[str, Any]:
    """One timed training run, in this process."""
    import torch as th

    spec = ARMS[name]
    if spec["threads"] is not None:
        th.set_num_threads(spec["threads"])
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList
    from torch.utils.flop_counter import FlopCounterMode

    from sb3_latent import LatentSAC

    algo_class = {"sac": SAC, "latent_sac": LatentSAC}[spec["algo"]]
    model = algo_class(
        "MlpPolicy",
        "HalfCheetah-v4",
        learning_starts=learning_starts,
        batch_size=256,
        policy_kwargs={"net_arch": [256, 256], **({"decoder": spec["decoder"]} if "decoder" in spec else {})},
        seed=seed,
        device=device,
    )
    train_seconds = [0.0]
    original_train = model.train

    def timed_train(*args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        original_train(*args, **kwargs)
        train_seconds[0] += time.perf_counter() - start

    model.train = timed_train  # type: ignore[method-assign]

    parallel = None
    if spec.get("parallel_train"):
        from rl_zoo3.callbacks import ParallelTrainCallback

        parallel = ParallelTrainCallback()

    # The model whose gradient steps count: ParallelTrainCallback trains a copy in a second thread.
    def trained_model() -> Any:
        return parallel._model if parallel is not None and hasattr(parallel, "_model") else model

    class Clock(BaseCallback):
        start = 0.0
        n_updates_at_start = 0

        def _on_step(self) -> bool:
            # Start after the first train() call, so LatentSAC's one-off generator warm-up is not timed: SB3 calls
            # on_step while collecting step n and train() after it, so the first train() follows step
            # learning_starts + 1 and the clock starts at the next step.
            if self.num_timesteps == learning_starts + 2:
                if device.startswith("cuda"):
                    th.cuda.synchronize()
                Clock.start = time.perf_counter()
                Clock.n_updates_at_start = trained_model()._n_updates
                train_seconds[0] = 0.0
            return True

    callbacks: list[BaseCallback] = [Clock()] + ([parallel] if parallel is not None else [])
    model.learn(learning_starts + steps, callback=CallbackList(callbacks))
    if device.startswith("cuda"):
        th.cuda.synchronize()
    elapsed = time.perf_counter() - Clock.start
    updates_per_env_step = (trained_model()._n_updates - Clock.n_updates_at_start) / (steps - 1)

    model.train = original_train  # type: ignore[method-assign]
    with FlopCounterMode(display=False) as counter:
        original_train(gradient_steps=1, batch_size=256)
    flops_per_update = counter.get_total_flops()
    n_updates = (steps - 1) * model.gradient_steps if not spec.get("parallel_train") else None
    return {
        "arm": name,
        "algo": spec["algo"],
        "threads": th.get_num_threads(),
        "device": device,
        "env_steps_per_s": (steps - 1) / elapsed,
        # UTD: 1 for the plain arms; ParallelTrainCallback decouples collection from training, so it can collect
        # far faster than it trains, and is then not comparable in env steps/s.
        "updates_per_env_step": updates_per_env_step,
        # Time in train() per gradient step (LatentSAC's include its generator update), the rest being the env and acting.
        "ms_per_gradient_step": 1e3 * train_seconds[0] / n_updates if n_updates else None,
        "gflop_per_update": flops_per_update / 1e9,
        "update_gflop_per_s": (flops_per_update * n_updates / train_seconds[0] / 1e9) if n_updates else None,
        "matmul_probe_gflop_per_s": matmul_gflops(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=None, help="arms to run (default: all CPU arms)")
    parser.add_argument("--steps", type=int, default=1000, help="timed env steps per run, after learning_starts")
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds: each arm runs once per round")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "throughput.json")
    parser.add_argument("--worker", choices=list(ARMS), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(run_arm(args.worker, args.steps, args.learning_starts, args.device, args.seed)))
        return

    arms = args.arms or CPU_ARMS
    results: list[dict[str, Any]] = []
    for round_index in range(args.rounds):
        for arm in arms:
            command = [sys.executable, __file__, "--worker", arm, "--steps", str(args.steps), "--learning-starts",
                       str(args.learning_starts), "--device", args.device]  # fmt: skip
            env = dict(os.environ)
            if ARMS[arm]["threads"] is None:
                env.pop("OMP_NUM_THREADS", None)
            seeds = [args.seed, args.seed + 1] if ARMS[arm].get("side_by_side") else [args.seed]
            workers = [subprocess.Popen([*command, "--seed", str(seed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env) for seed in seeds]  # fmt: skip
            runs = []
            for worker in workers:
                stdout, stderr = worker.communicate()
                if worker.returncode != 0:
                    sys.exit(f"arm {arm} failed:\n{stderr[-4000:]}")
                runs.append(json.loads(stdout.strip().splitlines()[-1]))
            # Side by side, the arm's speed is the total of its two processes, each of which is also kept.
            result = runs[0] | {"round": round_index, "env_steps_per_s": sum(r["env_steps_per_s"] for r in runs)}
            if len(runs) > 1:
                result["per_process_env_steps_per_s"] = [r["env_steps_per_s"] for r in runs]
            results.append(result)
            each = " (" + ", ".join(f"{r['env_steps_per_s']:.1f}" for r in runs) + " each)" if len(runs) > 1 else ""
            print(
                f"round {round_index} {arm:24s} {result['env_steps_per_s']:7.1f} env steps/s{each}, "
                f"{result['updates_per_env_step']:.2f} gradient steps per env step",
                flush=True,
            )

    medians = {arm: statistics.median(r["env_steps_per_s"] for r in results if r["arm"] == arm) for arm in arms}
    for prefix in ("sac", "latent_sac"):
        # Only arms that kept one gradient step per env step compete for "best".
        candidates = [
            arm
            for arm in arms
            if ARMS[arm]["algo"] == prefix
            and not ARMS[arm].get("side_by_side")
            and "decoder" not in ARMS[arm]
            and statistics.median(r["updates_per_env_step"] for r in results if r["arm"] == arm) >= 0.95
        ]
        if candidates:
            medians[f"best:{prefix}"] = max(medians[arm] for arm in candidates)
    ratios = {label: medians[a] / medians[b] for label, (a, b) in RATIOS.items() if a in medians and b in medians}
    step_ms = {arm: statistics.median(r["ms_per_gradient_step"] for r in results if r["arm"] == arm)
               for arm in arms if all(r["ms_per_gradient_step"] for r in results if r["arm"] == arm)}  # fmt: skip
    summary = {"device": args.device, "steps": args.steps, "learning_starts": args.learning_starts,
               "median_env_steps_per_s": medians, "median_ms_per_gradient_step": step_ms, "ratios": ratios,
               "runs": results}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({"median_env_steps_per_s": medians, "median_ms_per_gradient_step": step_ms, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
