"""From an experiment, a budget and a seed count to the list of runs, with their folders and dependencies.

A run's folder is named after the fingerprint of its settings (:func:`run_settings`), so calling the same
command again finds the same runs: finished ones are skipped, interrupted ones resume, and a larger
``--timesteps`` extends finished ones; a run under other settings (another budget, a changed default in the
code) gets a folder of its own and never reuses one.

The fingerprint sees the values the model is built with, not only those the YAML and the experiment set: each
condition's model is built once here, as its run would build it from scratch (a second or two), and what its
zip's data would hold is hashed (:func:`model_settings`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import io
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
import yaml
from rl_zoo3.utils import ALGOS
from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_latent.envs.registration import check_env_id
from sb3_latent.errors import UserInputError
from sb3_latent.experiments.manager import RunManager
from sb3_latent.experiments.runs import RunSpec, fingerprint, run_dir
from sb3_latent.experiments.specs import Budget, Condition, Experiment
from sb3_latent.experiments.transfers import TRANSFERS
from sb3_latent.zoo import register, zoo_config
from sb3_latent.zoo_runs import RunFolder


def check_condition(condition: Condition) -> None:
    """Refuse, before anything trains, a condition whose env, algorithm, YAML entry or transfer hook is unknown."""
    register()  # our envs, algorithms and YAMLs, also where the start-up hook is not installed
    what = f"Condition {condition.name!r}"
    for env_id in (condition.env_id, *(env_id for env_id, _ in condition.multitask)):
        check_env_id(env_id, what)
    if condition.algo not in ALGOS:
        raise UserInputError(
            f"{what}: rl-zoo3 has no --algo {condition.algo}. Use one of {', '.join(sorted(ALGOS))}, or register it in "
            "sb3_latent.zoo.ALGORITHMS."
        )
    if condition.source is not None and condition.source.transfer not in TRANSFERS:
        raise UserInputError(
            f"{what}: unknown transfer hook {condition.source.transfer!r}. Use one of {', '.join(TRANSFERS)}."
        )
    config = zoo_config(condition.algo, condition.env_id)  # refuses our algorithms on ids our YAML lacks
    with open(config) as file:
        entries = yaml.safe_load(file) or {}
    if condition.env_id not in entries and "default" not in entries:
        raise UserInputError(
            f"{what}: {config} has no entry for {condition.env_id}. Add one to a copy of that file, or use another env."
        )


# Attributes of a built model that are not settings: its state (set again by training and loading), or output-only
# options (verbosity, tensorboard, logging window). The rest of what its zip's data holds is hashed.
NOT_SETTINGS = frozenset(
    {
        "num_timesteps",
        "_total_timesteps",
        "_num_timesteps_at_start",
        "seed",
        "start_time",
        "_last_obs",
        "_last_episode_starts",
        "_last_original_obs",
        "_episode_num",
        "_current_progress_remaining",
        "ep_info_buffer",
        "ep_success_buffer",
        "_n_updates",
        "_n_generator_updates",
        "_generator_warmed_up",
        "_stats_window_size",
        "tensorboard_log",
        "verbose",
    }
)
# Progress values at which a schedule (learning rate, clip range) is sampled.
SCHEDULE_POINTS = (1.0, 0.5, 0.0)


def canonical(value: Any) -> Any:
    """A JSON form of a model attribute that is the same in every process: classes by name, schedules by their
    values, tensors and arrays as lists, other objects by class and attributes (never a repr with an address)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else repr(value)
    if isinstance(value, (th.Tensor, np.ndarray, np.generic)):
        return canonical(value.tolist())
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    if isinstance(value, dict):
        return {str(key): canonical(item) for key, item in sorted(value.items(), key=lambda item: str(item[0]))}
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if isinstance(value, gym.Space):
        return repr(value)
    if isinstance(value, th.device):
        return None
    name = f"{type(value).__module__}.{type(value).__qualname__}"
    if callable(value):
        try:
            return {"callable": name, "at": [float(value(point)) for point in SCHEDULE_POINTS]}
        except Exception:  # not a schedule: its name is all we can compare
            return {"callable": name}
    if hasattr(value, "__dict__"):
        return {"class": name, **canonical({key: item for key, item in vars(value).items() if not key.startswith("__")})}
    return {"class": name}


def model_settings(model: BaseAlgorithm) -> dict[str, Any]:
    """What ``model.save`` would write as its data, less :data:`NOT_SETTINGS`, plus the shape of every network and
    the hyperparameters of every optimiser and the policy's constructor parameters (its resolved defaults):
    hyperparameters, ``policy_kwargs``, generator architecture, spaces."""
    state_dicts, torch_variables = model._get_torch_save_params()
    excluded = set(model._excluded_save_params()) | {name.split(".")[0] for name in state_dicts} | NOT_SETTINGS
    data = {key: value for key, value in vars(model).items() if key not in excluded}
    # Initial values of the saved tensors (log_ent_coef): set by the constructor, not by the seed.
    for name in torch_variables:
        data[name] = getattr(model, name, None)
    # The policy as built: policy_kwargs above hold only what was given, and a default of the policy's own code
    # (a decoder, a latent bound) may change no network shape.
    data["policy_constructor"] = model.policy._get_constructor_parameters()
    parameters = model.get_parameters()
    data["networks"] = {
        name: {
            key: list(value.shape) if isinstance(value, th.Tensor) else value
            for key, value in state.items()
            if key != "state"  # an optimiser's running moments: empty before training
        }
        for name, state in parameters.items()
    }
    return canonical(data)


def run_settings(spec: RunSpec, budget: Budget, source_fingerprint: str | None) -> dict[str, Any]:
    """What the runs of ``spec``'s condition train under (its seed keys the folder below): the model built from
    scratch in a scratch folder, the resolved YAML entry, env, protocol, transfer source and multi-task list.

    Output-only options stay out: ``checkpoint_freq``, what is saved, progress bars, verbosity, tensorboard, and
    ``--timesteps`` (which extends a run).
    """
    condition = spec.condition
    with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(io.StringIO()):
        probe = dataclasses.replace(spec, run_dir=scratch, n_timesteps=budget.n_timesteps, source=None)
        # On the CPU: the fingerprint must not depend on the machine that plans the runs.
        manager = RunManager(probe, "scratch", spec.seed, "", device="cpu")
        setup = manager.setup_experiment()
        assert setup is not None
        model, hyperparams = setup
        try:
            built = model_settings(model)
        finally:
            if model.env is not None:
                model.env.close()
    return {
        "algo": condition.algo,
        "env_id": condition.env_id,
        "env_kwargs": canonical(spec.env_kwargs),
        "protocol": {
            "n_timesteps": budget.n_timesteps,
            "eval_freq": budget.eval_freq,
            "n_eval_episodes": budget.n_eval_episodes,
        },
        # The YAML entry after the overrides also holds what the model does not: normalize, env_wrapper, callback.
        "hyperparams": canonical({key: value for key, value in hyperparams.items() if key != "n_timesteps"}),
        "model": built,
        "source": None
        if condition.source is None
        else [condition.source.condition, condition.source.transfer, canonical(dict(condition.source.kwargs))],
        "source_fingerprint": source_fingerprint,
        "multitask": canonical(condition.multitask),
    }


def plan_runs(
    experiment: Experiment,
    budget: Budget,
    seeds: int,
    root: str | Path,
    conditions: list[Condition],
    n_timesteps: int | None = None,
) -> list[RunSpec]:
    """One RunSpec per (condition, seed), sources first, then seed by seed (early results cover every condition)."""
    for condition in conditions:
        check_condition(condition)
    steps = n_timesteps or budget.n_timesteps
    sources = {c.source.condition for c in conditions if c.source is not None}
    planned: dict[str, RunSpec] = {}  # condition -> its run of seed 0, fingerprinted

    def plan(condition: Condition) -> RunSpec:
        """The condition's run of seed 0, with its settings, fingerprint and folder (its source planned first)."""
        if condition.name in planned:
            return planned[condition.name]
        source_spec = None
        if condition.source is not None:
            source_spec = plan(experiment.condition(condition.source.condition))
        spec = RunSpec(
            experiment=experiment.name,
            condition=condition,
            seed=0,
            run_dir="",
            n_timesteps=steps,
            eval_freq=budget.eval_freq,
            n_eval_episodes=budget.n_eval_episodes,
            checkpoint_freq=budget.checkpoint_freq,
            layers=(budget.hyperparams(condition.algo), dict(condition.hyperparams)),
            env_kwargs={**budget.env_kwargs, **condition.env_kwargs},
            budget=budget.name,
            save_replay_buffer=condition.name in sources,
        )
        settings = run_settings(spec, budget, None if source_spec is None else source_spec.fingerprint)
        planned[condition.name] = dataclasses.replace(spec, fingerprint=fingerprint(settings), settings=settings)
        return planned[condition.name]

    def for_seed(spec: RunSpec, seed: int) -> RunSpec:
        return dataclasses.replace(
            spec, seed=seed, run_dir=str(run_dir(root, experiment, spec.condition.name, spec.fingerprint, seed))
        )

    specs: list[RunSpec] = []
    for condition in conditions:
        for seed in range(seeds):
            spec = for_seed(plan(condition), seed)
            if condition.source is not None:
                source = for_seed(plan(experiment.condition(condition.source.condition)), seed)
                spec = dataclasses.replace(spec, source=RunFolder(str(source.save_path)))
            specs.append(spec)
    order = {condition.name: index for index, condition in enumerate(conditions)}
    specs.sort(key=lambda spec: (spec.condition.name not in sources, spec.seed, order[spec.condition.name]))
    return specs


def dependency(spec: RunSpec) -> str | None:
    """Key of the run this one waits for (its source, same seed)."""
    if spec.condition.source is None:
        return None
    return f"{spec.condition.source.condition}/seed{spec.seed}"
