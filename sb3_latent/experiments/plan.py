"""From an experiment, a budget and a seed count to the list of runs, with their folders and dependencies.

Folders are stable, named from experiment, condition and seed only (not from the budget), so calling
the same command again finds the same runs: finished ones are skipped, interrupted ones resume, and
a larger ``--timesteps`` extends finished ones (a run refuses to resume under other settings).
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import yaml
from rl_zoo3.utils import ALGOS

from sb3_latent.errors import UserInputError
from sb3_latent.experiments.runs import RunSpec, run_dir
from sb3_latent.experiments.specs import Budget, Condition, Experiment
from sb3_latent.experiments.transfers import TRANSFERS
from sb3_latent.zoo import register, zoo_config
from sb3_latent.zoo_runs import RunFolder


def check_condition(condition: Condition) -> None:
    """Refuse, before anything trains, a condition whose env, algorithm, YAML entry or transfer hook is unknown."""
    register()  # our envs, algorithms and YAMLs, also where the start-up hook is not installed
    what = f"Condition {condition.name!r}"
    for env_id in (condition.env_id, *(env_id for env_id, _ in condition.multitask)):
        if env_id not in gym.registry:
            raise UserInputError(f"{what}: gymnasium has no env {env_id}. Use a registered id, e.g. HalfCheetah-v4.")
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
    specs: list[RunSpec] = []
    for condition in conditions:
        for seed in range(seeds):
            source = None
            if condition.source is not None:
                source_condition = experiment.condition(condition.source.condition)
                source_dir = run_dir(root, experiment, source_condition.name, seed)
                source = RunFolder(str(source_dir / source_condition.algo / f"{source_condition.env_id}_1"))
            specs.append(
                RunSpec(
                    experiment=experiment.name,
                    condition=condition,
                    seed=seed,
                    run_dir=str(run_dir(root, experiment, condition.name, seed)),
                    n_timesteps=steps,
                    eval_freq=budget.eval_freq,
                    n_eval_episodes=budget.n_eval_episodes,
                    checkpoint_freq=budget.checkpoint_freq,
                    layers=(budget.hyperparams(condition.algo), dict(condition.hyperparams)),
                    env_kwargs={**budget.env_kwargs, **condition.env_kwargs},
                    budget=budget.name,
                    source=source,
                    save_replay_buffer=condition.name in sources,
                )
            )
    order = {condition.name: index for index, condition in enumerate(conditions)}
    specs.sort(key=lambda spec: (spec.condition.name not in sources, spec.seed, order[spec.condition.name]))
    return specs


def dependency(spec: RunSpec) -> str | None:
    """Key of the run this one waits for (its source, same seed)."""
    if spec.condition.source is None:
        return None
    return f"{spec.condition.source.condition}/seed{spec.seed}"
