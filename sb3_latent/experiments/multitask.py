"""A multi-task source run (poster, Figure 1): one LatentSAC per task, all sharing one action generator.

A condition with ``multitask=((env id, env kwargs), ...)`` trains, besides its own task, one LatentSAC per
listed task, each with its own latent policy, critic, temperature and replay buffer, and one action generator
for all of them (``LatentSAC.share_action_generator``), as :func:`sb3_latent.transfer.train_multitask_generator`
does. The models take turns, :data:`CHUNK` env steps each; every generator update uses the minibatch of the model
that makes it, so the generator fits the (s, a) pairs of every task while seeing states only, never a task id.

Each task is a run of its own, built, checkpointed, evaluated and resumed like any other
(:func:`~sb3_latent.experiments.segments.open_segment`): the condition's own task in the run folder itself, whose
model is the one later transfers load, the others in ``<run>/tasks/<task>/``. On resume, every task model comes
back from its checkpoint (the same step multiples for all, since they advance together) and shares the
generator, and the generator's optimiser, of the condition's own task again.
"""

from __future__ import annotations

import dataclasses

from sb3_latent.errors import UserInputError
from sb3_latent.experiments.runs import RunResult, RunSpec
from sb3_latent.experiments.segments import Segment, close_segment, open_segment, release_segment
from sb3_latent.latent_sac import LatentSAC
from sb3_latent.transfer.latent import take_turns, task_name

# Env steps each model takes before the next one's turn (train_multitask_generator's default).
CHUNK = 1_000


def task_runs(spec: RunSpec) -> list[RunSpec]:
    """The run of each task: ``spec`` itself for the condition's task, then one per ``multitask`` entry."""
    runs = [spec]
    for index, (env_id, env_kwargs) in enumerate(spec.condition.multitask, start=1):
        name = task_name((env_id, env_kwargs))
        condition = dataclasses.replace(
            spec.condition, name=f"{spec.condition.name}:{name}", env_id=env_id, multitask=(), label=None
        )
        runs.append(
            dataclasses.replace(
                spec,
                condition=condition,
                seed=spec.seed + index,  # as train_multitask_generator: task i gets seed + i
                run_dir=str(spec.path / "tasks" / name),
                env_kwargs={**spec.env_kwargs, **env_kwargs},
                save_replay_buffer=False,
            )
        )
    return runs


def train_multitask(spec: RunSpec) -> RunResult:
    """Train every task of ``spec`` to ``spec.n_timesteps`` env steps each, in turns, with one shared generator."""
    segments: list[Segment] = []
    try:
        for run in task_runs(spec):
            run.path.mkdir(parents=True, exist_ok=True)
            segments.append(open_segment(run))
        models = [segment.model for segment in segments if isinstance(segment.model, LatentSAC)]
        if len(models) != len(segments):
            raise UserInputError(
                f"condition {spec.condition.name!r} lists multitask tasks, which share one action generator: its "
                f"algorithm must be latent_sac, got {spec.condition.algo}."
            )
        first, *others = models
        for model in others:
            model.share_action_generator(first)
        take_turns(segments, lambda segment: segment.remaining_steps, Segment.learn, CHUNK)
        # The condition's own run last: its status.json marks the whole multi-task run finished.
        results = [close_segment(segment) for segment in reversed(segments)]
    finally:
        for segment in segments:
            release_segment(segment)
    return results[-1]
