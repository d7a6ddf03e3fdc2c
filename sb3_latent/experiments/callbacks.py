"""The callbacks of a run: evaluation CSV (and rl-zoo3's evaluations.npz), checkpoints and progress, all keyed on
``num_timesteps``.

rl-zoo3's ``EvalCallback`` and ``CheckpointCallback`` count ``n_calls``, which restart at 0 on every
``learn()`` call; ``num_timesteps`` continues across a resume, so evaluation and checkpoint steps stay
the same whether or not a run was interrupted.
"""

from __future__ import annotations

import csv
import datetime
import time
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from sb3_latent.experiments.checkpoints import save_checkpoint
from sb3_latent.experiments.runs import (
    EVALUATION_COLUMNS,
    EVALUATIONS_FILE,
    PROGRESS_PERIOD,
    RunSpec,
    read_evaluations,
    write_progress,
)

# rl-zoo3's EvalCallback file, in the run's rl-zoo3 folder: what rl_zoo3.plots.all_plots reads.
EVALUATIONS_NPZ = "evaluations.npz"


class Clock:
    """Wall time of the run, continued across resumed segments."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self.start = time.monotonic()

    def __call__(self) -> float:
        return self.offset + time.monotonic() - self.start


def _next_multiple(steps: int, every: int) -> int:
    return (steps // every + 1) * every


class EvaluationCSV(BaseCallback):
    """rl-zoo3's EvalCallback, keyed on num_timesteps and writing one CSV row per evaluation as it happens.

    A separate eval env, the deterministic policy, ``n_eval_episodes`` episodes at step 0 and every
    ``eval_freq`` env steps. As rl-zoo3 does, the best model so far is saved as ``best_model.zip``
    with its VecNormalize statistics (``<env>/vecnormalize.pkl``), and every evaluation's episodes go to
    ``evaluations.npz`` with rl-zoo3's keys (``timesteps``, ``results``, ``ep_lengths``); after a resume,
    "best" counts the evaluations already in the CSV, and the npz keeps the evaluations the CSV kept.
    """

    def __init__(self, spec: RunSpec, eval_env: VecEnv, params_path: Path, clock: Clock) -> None:
        super().__init__()
        self.spec = spec
        self.eval_env = eval_env
        self.params_path = params_path
        self.clock = clock
        self.csv_path = spec.path / EVALUATIONS_FILE
        rows = read_evaluations(self.csv_path)
        self.best_mean = max((row["eval_return_mean"] for row in rows), default=-np.inf)
        self.logged_steps = {int(row["steps"]) for row in rows}
        self.next_eval = 0
        self.npz_path = spec.save_path / EVALUATIONS_NPZ
        self.npz: dict[str, list[Any]] = {"timesteps": [], "results": [], "ep_lengths": []}
        if self.npz_path.is_file():
            with np.load(self.npz_path) as saved:
                for index, steps in enumerate(saved["timesteps"]):
                    if int(steps) in self.logged_steps:  # rows after the checkpoint were dropped from the CSV
                        for key, values in self.npz.items():
                            values.append(saved[key][index])

    def _on_training_start(self) -> None:
        steps = self.num_timesteps
        self.next_eval = _next_multiple(steps, self.spec.eval_freq)
        if steps % self.spec.eval_freq == 0 and steps not in self.logged_steps:
            self.evaluate()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_eval:
            self.next_eval = _next_multiple(self.num_timesteps, self.spec.eval_freq)
            self.evaluate()
        return True

    def evaluate(self) -> None:
        if self.model.get_vec_normalize_env() is not None:
            sync_envs_normalization(self.training_env, self.eval_env)
        returns, lengths = evaluate_policy(
            self.model,
            self.eval_env,
            n_eval_episodes=self.spec.n_eval_episodes,
            deterministic=True,
            return_episode_rewards=True,
            warn=False,
        )
        mean = float(np.mean(returns))
        row: dict[str, Any] = {
            "steps": self.num_timesteps,
            "eval_return_mean": mean,
            "eval_return_std": float(np.std(returns)),
            "eval_length_mean": float(np.mean(lengths)),
            "wall_time_s": round(self.clock(), 2),
            "time": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        new_file = not self.csv_path.is_file()
        with open(self.csv_path, "a", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=EVALUATION_COLUMNS)
            if new_file:
                writer.writeheader()
            writer.writerow(row)
        self.logged_steps.add(self.num_timesteps)
        for key, value in (("timesteps", self.num_timesteps), ("results", returns), ("ep_lengths", lengths)):
            self.npz[key].append(value)
        self.npz_path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {key: np.array(values) for key, values in self.npz.items()}
        np.savez(self.npz_path, timesteps=arrays["timesteps"], results=arrays["results"], ep_lengths=arrays["ep_lengths"])
        self.logger.record("eval/mean_reward", mean)
        self.logger.record("eval/mean_ep_length", row["eval_length_mean"])
        if mean > self.best_mean:
            self.best_mean = mean
            self.model.save(self.spec.save_path / "best_model")
            vec_normalize = self.model.get_vec_normalize_env()
            if vec_normalize is not None:
                self.params_path.mkdir(parents=True, exist_ok=True)
                vec_normalize.save(str(self.params_path / "vecnormalize.pkl"))


class Checkpoints(BaseCallback):
    """Saves model, replay buffer and VecNormalize statistics every ``checkpoint_freq`` env steps.

    At the end of a rollout, not inside it: the replay buffer then holds every transition up to
    ``num_timesteps``, so a resume loses nothing but the gradient steps of that last rollout (one, for
    SAC's ``train_freq=1``) and the episode in progress.
    """

    def __init__(self, spec: RunSpec, env_name: str, clock: Clock, state: dict[str, Any]) -> None:
        super().__init__()
        self.spec = spec
        self.env_name = env_name
        self.clock = clock
        self.state = state
        self.next_checkpoint = 0

    def _on_training_start(self) -> None:
        self.next_checkpoint = _next_multiple(self.num_timesteps, self.spec.checkpoint_freq)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.num_timesteps >= self.next_checkpoint:
            self.next_checkpoint = _next_multiple(self.num_timesteps, self.spec.checkpoint_freq)
            self.save()

    def save(self) -> None:
        state = {**self.state, "num_timesteps": self.num_timesteps, "wall_time_s": round(self.clock(), 2)}
        save_checkpoint(self.model, self.spec.path, self.env_name, state)


class Progress(BaseCallback):
    """Writes num_timesteps to progress.json every few seconds, for the driver's progress bar."""

    def __init__(self, spec: RunSpec) -> None:
        super().__init__()
        self.spec = spec
        self.last_write = 0.0

    def _on_step(self) -> bool:
        now = time.monotonic()
        if now - self.last_write > PROGRESS_PERIOD:
            self.last_write = now
            write_progress(self.spec, self.num_timesteps)
        return True
