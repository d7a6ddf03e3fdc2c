"""Latent transfer: a LatentSAC on the target task that starts from another LatentSAC's action generator.

The poster's latent transfer reuses the action generator g(a|s,z), the skills learned on the base task, and learns
a fresh latent policy pi(z|s) and critic Q(s, a) on the target task. Each way of treating the generator is a
configuration of LatentSAC (``generator_mode``), not a class:

- ``"frozen"``: the generator never changes;
- ``"finetune"``: the generator keeps training by the ELBO on the target task's data, at ``generator_learning_rate``;
- ``"residual"``: frozen, and the latent policy also emits a small bounded residual action, added to the decoded
  one, so that a frozen generator cannot cap what the agent reaches.

:func:`train_multitask_generator` trains one generator on several tasks at once (poster, Figure 1): one LatentSAC
per task, each with its own latent policy, critic and replay buffer, all sharing one generator and its optimiser.
``python -m sb3_latent.transfer multitask`` runs it and transfers the generator to a new task in one command.
See ``docs/transfer.md``, "Latent transfer".
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import gymnasium as gym
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger, make_output_format
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.utils import get_latest_run_id
from stable_baselines3.common.vec_env import VecEnv

from sb3_latent.common.action_generator import ActionGenerator
from sb3_latent.errors import UserInputError
from sb3_latent.latent_sac import LatentSAC
from sb3_latent.latent_sac.latent_sac import TRANSFER_MODES
from sb3_latent.transfer.naive import make_target_env
from sb3_latent.zoo_runs import read_action_generator

# LatentSAC arguments that latent_transfer / train_multitask_generator set themselves.
_GENERATOR_ARGUMENTS = ("action_generator", "generator_mode")

Task = str | tuple[str, Mapping[str, Any]]
T = TypeVar("T")


def load_generator(
    source: ActionGenerator | LatentSAC | str | Path | io.BufferedIOBase, device: th.device | str = "cpu"
) -> ActionGenerator:
    """The action generator of ``source``.

    :param source: an ``ActionGenerator``; a generator file (``save_action_generator``); a LatentSAC model; its saved
        zip; or its rl-zoo3 run folder (``logs/latent_sac/HalfCheetah-v4_1``)
    :param device: where a generator read from a file is put
    :return: the generator (the source's own module for a module or a model: not a copy); it records the latent box
        its policy queried it in (``latent_bound``), which a model built from it takes
    """
    return read_action_generator(source, LatentSAC, device=device)


def _check_no_generator_arguments(kwargs: Mapping[str, Any], what: str) -> None:
    for name in _GENERATOR_ARGUMENTS:
        if name in kwargs:
            raise UserInputError(f"{what} sets {name} itself: leave it out of the LatentSAC arguments (use mode=...).")


def check_latent_sac_arguments(
    env_id: str, env_kwargs: Mapping[str, Any] | None, latent_sac_kwargs: Mapping[str, Any], what: str
) -> None:
    """The checks that ``what`` (``train_multitask_generator`` or ``latent_transfer``) makes of LatentSAC's
    arguments, on a model built on ``env_id`` and dropped: a CLI refuses them before it makes a folder or trains."""
    _check_no_generator_arguments(latent_sac_kwargs, what)
    kwargs = dict(latent_sac_kwargs)
    env = gym.make(env_id, **dict(env_kwargs or {}))
    try:
        LatentSAC(kwargs.pop("policy", "MlpPolicy"), env, **kwargs)
    finally:
        env.close()


def latent_transfer(
    source: ActionGenerator | LatentSAC | str | Path | io.BufferedIOBase,
    target_env: str | gym.Env | VecEnv,
    mode: str = "frozen",
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    n_envs: int = 1,
    monitor_dir: str | None = None,
    **latent_sac_kwargs: Any,
) -> LatentSAC:
    """A LatentSAC on ``target_env`` that starts from the action generator of ``source``: call ``.learn(n)`` on it.

    The generator (its encoder, decoder and prior, a learned p(z|s) included) is a copy of the source's, weight for
    weight; the latent policy, the critic and the temperature start afresh, and the replay buffer empty. The source
    is never modified. Hyperparameters are the caller's (LatentSAC's defaults otherwise), not the source's, but for
    the generator's architecture and its ``latent_bound`` (the box the source's policy queried it in).

    :param source: a LatentSAC model, its saved zip, its rl-zoo3 run folder, a generator file written by
        ``save_action_generator``, or an ``ActionGenerator``
    :param target_env: the target task: an env id, a gymnasium env or a VecEnv
    :param mode: ``"frozen"`` (default: the generator never changes), ``"finetune"`` (it keeps training on the
        target task's data, at ``generator_learning_rate``) or ``"residual"`` (frozen, plus a residual action bounded
        by ``residual_scale``)
    :param env_kwargs: kwargs of the target env, when ``target_env`` is an id (e.g. ``{"target_speed": 1.5}``)
    :param n_envs: number of envs, when ``target_env`` is an id
    :param monitor_dir: where the Monitor of a target env built from an id writes its CSV
    :param latent_sac_kwargs: LatentSAC's arguments (``learning_starts``, ``generator_learning_rate``,
        ``residual_scale``, ``policy_regularizer``, ``policy_kwargs``, ``seed``, ...)
    :return: the model, with the target env as its env
    """
    if mode not in TRANSFER_MODES:
        hint = " ('train' trains a generator from scratch: use LatentSAC itself)" if mode == "train" else ""
        raise UserInputError(f"mode must be one of {TRANSFER_MODES}, got {mode!r}{hint}.")
    _check_no_generator_arguments(latent_sac_kwargs, "latent_transfer")
    generator = load_generator(source)  # first, so that a bad source fails before any env is built
    policy = latent_sac_kwargs.pop("policy", "MlpPolicy")
    policy_kwargs = dict(latent_sac_kwargs.pop("policy_kwargs", None) or {})
    env = make_target_env(target_env, env_kwargs, n_envs, latent_sac_kwargs.get("seed"), monitor_dir)
    # LatentSAC checks the shapes and copies the generator's weights into its own module.
    return LatentSAC(
        policy, env, action_generator=generator, generator_mode=mode, policy_kwargs=policy_kwargs, **latent_sac_kwargs
    )


def task_name(task: Task) -> str:
    """``"HalfCheetah-v4"``, or ``"HalfCheetahTask-v4(target_speed=1.0)"`` for an id with kwargs."""
    if isinstance(task, str):
        return task
    env_id, kwargs = task
    return f"{env_id}({', '.join(f'{key}={value}' for key, value in kwargs.items())})" if kwargs else env_id


def train_multitask_generator(
    task_ids: Sequence[Task],
    total_timesteps_per_task: int,
    *,
    chunk: int = 1_000,
    seed: int | None = None,
    save_path: str | Path | None = None,
    log_dirs: Mapping[str, str] | None = None,
    log_interval: int = 4,
    **latent_sac_kwargs: Any,
) -> tuple[ActionGenerator, dict[str, LatentSAC]]:
    """Train one action generator on the pooled (s, a) data of several tasks (poster, Figure 1).

    Each task gets its own LatentSAC (latent policy, critic, temperature, replay buffer); all of them share one
    ``ActionGenerator`` module and one generator optimiser (``LatentSAC.share_action_generator``). Training
    alternates ``learn(chunk)`` calls between the tasks; inside each, the model's generator updates use its own
    task's replay minibatch, so over the rounds the shared generator fits the (s, a) pairs of every task. It sees the
    env state only, never a task id. Each model runs its own generator warm-up (``generator_warmup_steps``) on its
    task's random-exploration data at its first gradient step.

    :param task_ids: the tasks: env ids, or ``(env id, env kwargs)`` pairs; all with the same observation and
        action shapes
    :param total_timesteps_per_task: env steps on each task
    :param chunk: env steps per task before switching to the next. Smaller alternates the generator's data more
        finely (each switch costs a ``learn()`` set-up). Learning-rate schedules restart at every chunk (SB3's
        ``learn(..., reset_num_timesteps=False)``): use constant rates
    :param seed: seed of the first task's model and env; task i gets ``seed + i``
    :param save_path: where to save the trained generator (``ActionGenerator.save``), if given
    :param log_dirs: task name (:func:`task_name`) -> folder for that task's Monitor CSV (``0.monitor.csv``) and
        training log (:func:`run_logger`: ``progress.csv``, and stdout with ``verbose >= 1``). With a
        ``tensorboard_log`` among ``latent_sac_kwargs``, task i logs TensorBoard events under
        ``<tensorboard_log>/<env id>/``, as rl-zoo3's ``--tensorboard-log`` lays them out
    :param log_interval: episodes between two log prints of each model (with ``verbose=1``)
    :param latent_sac_kwargs: LatentSAC's arguments for every task's model (``learning_starts``, ``policy_kwargs``,
        ``generator_learning_rate``, ``verbose``, ...)
    :return: the shared generator, and the model of each task (keyed by task name)
    """
    if len(task_ids) < 1:
        raise UserInputError("train_multitask_generator needs at least one task (two or more to pool their data).")
    if chunk < 1 or total_timesteps_per_task < 1:
        raise UserInputError(f"chunk and total_timesteps_per_task must be >= 1, got {chunk} and {total_timesteps_per_task}.")
    _check_no_generator_arguments(latent_sac_kwargs, "train_multitask_generator")
    names = [task_name(task) for task in task_ids]
    if len(set(names)) != len(names):
        raise UserInputError(f"Each task must appear once, got {names}.")
    policy = latent_sac_kwargs.pop("policy", "MlpPolicy")
    tensorboard_root = latent_sac_kwargs.pop("tensorboard_log", None)

    models: dict[str, LatentSAC] = {}
    for index, (task, name) in enumerate(zip(task_ids, names, strict=True)):
        env_id, env_kwargs = (task, {}) if isinstance(task, str) else task
        task_seed = None if seed is None else seed + index
        log_dir = (log_dirs or {}).get(name)
        env = make_vec_env(env_id, seed=task_seed, env_kwargs=dict(env_kwargs), monitor_dir=log_dir)
        tensorboard_log = None if tensorboard_root is None else os.path.join(tensorboard_root, env_id)
        model = LatentSAC(policy, env, seed=task_seed, tensorboard_log=tensorboard_log, **latent_sac_kwargs)
        if log_dir is not None:
            model.set_logger(run_logger(log_dir, model))
        if models:
            try:
                model.share_action_generator(next(iter(models.values())))
            except ValueError as error:
                raise UserInputError(
                    f"The tasks cannot share one action generator: {name} differs from {names[0]}. {error}"
                ) from None
        models[name] = model

    take_turns(
        list(models.values()),
        lambda model: total_timesteps_per_task - model.num_timesteps,
        lambda model, steps: model.learn(steps, reset_num_timesteps=False, log_interval=log_interval),
        chunk,
    )
    for model in models.values():
        flush_log(model)

    generator = next(iter(models.values())).action_generator
    if save_path is not None:
        generator.save(save_path)
    return generator, models


def take_turns(learners: Sequence[T], remaining: Callable[[T], int], learn: Callable[[T, int], Any], chunk: int) -> None:
    """Round-robin over the tasks' learners, ``chunk`` env steps each, until none has steps left.

    The multi-task generator's schedule (poster, Figure 1), here and in the experiments' multi-task runs
    (:mod:`sb3_latent.experiments.multitask`): the shared generator sees every task's data in turn.
    """
    while any(remaining(learner) > 0 for learner in learners):
        for learner in learners:
            steps = min(chunk, remaining(learner))
            if steps > 0:
                learn(learner, steps)


def run_logger(log_dir: str, model: OffPolicyAlgorithm, tb_log_name: str = "LatentSAC") -> Logger:
    """A run's training log: ``progress.csv`` in ``log_dir``, stdout with ``verbose >= 1``, and, where the model has a
    ``tensorboard_log``, TensorBoard events in ``<tensorboard_log>/<tb_log_name>_<n>``, where SB3's ``learn()`` puts
    them (a logger set by ``set_logger`` replaces the one ``learn()`` would make)."""
    formats = ["csv", "stdout"] if model.verbose >= 1 else ["csv"]
    outputs = [make_output_format(name, log_dir) for name in formats]
    if model.tensorboard_log is not None:
        run_id = get_latest_run_id(model.tensorboard_log, tb_log_name) + 1
        outputs.append(make_output_format("tensorboard", os.path.join(model.tensorboard_log, f"{tb_log_name}_{run_id}")))
    return Logger(log_dir, outputs)


def flush_log(model: OffPolicyAlgorithm) -> None:
    """Write what the model recorded since its last log row. SB3's off-policy ``learn()`` writes a row only at the end
    of an episode, every ``log_interval`` episodes: a run shorter than that would leave ``progress.csv`` empty."""
    if model.logger.name_to_value:
        model.dump_logs()
