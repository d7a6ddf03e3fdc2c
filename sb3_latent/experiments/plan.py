"""From an experiment, a budget and a seed count to the list of runs, with their folders and dependencies.

Folders are stable, named from experiment, condition and seed only (not from the budget), so calling
the same command again finds the same runs: finished ones are skipped, interrupted ones resume, and
a larger ``--timesteps`` extends finished ones (a run refuses to resume under other settings).
"""

from __future__ import annotations

from pathlib import Path

from sb3_latent.experiments.runner import RunSpec
from sb3_latent.experiments.specs import Budget, Condition, Experiment
from sb3_latent.experiments.transfers import TRANSFERS, SourceRun, missing


def experiment_dir(root: str | Path, experiment: Experiment) -> Path:
    return Path(root) / experiment.name


def run_dir(root: str | Path, experiment: Experiment, condition: str, seed: int) -> Path:
    return experiment_dir(root, experiment) / "runs" / condition / f"seed{seed}"


def _algo_missing(condition: Condition) -> str | None:
    import gymnasium as gym
    import yaml
    from rl_zoo3.utils import ALGOS

    from sb3_latent.zoo import our_config, register

    register()
    if condition.env_id not in gym.registry:
        return f"gymnasium has no env {condition.env_id}."
    if condition.algo not in ALGOS:
        return f"rl-zoo3 has no --algo {condition.algo} (not registered in sb3_latent.zoo.ALGORITHMS yet)."
    if our_config(condition.algo, condition.env_id) is not None:
        return None
    import rl_zoo3

    zoo_root = Path(rl_zoo3.__file__).parent
    zoo_yaml = (zoo_root if (zoo_root / "hyperparams").is_dir() else zoo_root.parent) / "hyperparams" / f"{condition.algo}.yml"
    if not zoo_yaml.is_file():
        return (
            f"no hyperparameters for {condition.algo} on {condition.env_id}: our hyperparams/{condition.algo}.yml "
            f"has no entry for it (or does not exist yet) and rl-zoo3 ships none for {condition.algo}."
        )
    entries = yaml.safe_load(zoo_yaml.read_text()) or {}
    if condition.env_id not in entries and "default" not in entries:
        return f"neither our hyperparams/{condition.algo}.yml nor rl-zoo3's has an entry for {condition.env_id}."
    return None


def pending_conditions(experiment: Experiment, conditions: list[Condition]) -> dict[str, str]:
    """Condition name -> why it cannot run yet (missing algorithm, YAML entry, transfer function, source)."""
    import gymnasium as gym

    reasons: dict[str, str] = {}
    for condition in conditions:  # declaration order: a source is checked before its targets
        reason = _algo_missing(condition)
        for env_id, _ in condition.multitask:
            if reason is None and env_id not in gym.registry:
                reason = f"gymnasium has no env {env_id} (one of its multitask tasks)."
        for requirement in condition.requires:
            reason = reason or missing(requirement)
        if reason is None and condition.source is not None:
            hook = TRANSFERS.get(condition.source.transfer)
            if hook is None:
                reason = f"unknown transfer hook {condition.source.transfer!r} (known: {', '.join(TRANSFERS)})."
            else:
                for requirement in hook.requires:
                    reason = reason or missing(requirement)
            if reason is None and condition.source.condition in reasons:
                reason = f"its source condition {condition.source.condition!r} is pending."
        if reason is not None:
            reasons[condition.name] = reason
    return reasons


def plan_runs(
    experiment: Experiment,
    budget: Budget,
    seeds: int,
    root: str | Path,
    conditions: list[Condition],
    n_timesteps: int | None = None,
) -> list[RunSpec]:
    """One RunSpec per (condition, seed), sources first, then seed by seed (early results cover every condition)."""
    steps = n_timesteps or budget.n_timesteps
    sources = {c.source.condition for c in conditions if c.source is not None}
    specs: list[RunSpec] = []
    for condition in conditions:
        for seed in range(seeds):
            source = None
            if condition.source is not None:
                source_condition = experiment.condition(condition.source.condition)
                source_dir = run_dir(root, experiment, source_condition.name, seed)
                source = SourceRun(
                    source_condition.algo,
                    source_condition.env_id,
                    str(source_dir / source_condition.algo / f"{source_condition.env_id}_1"),
                )
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
