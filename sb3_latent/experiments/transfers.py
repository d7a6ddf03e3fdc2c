"""Transfer hooks: how the saved run of a source condition initialises a target condition's model.

A condition names its hook (``Source("pretrain-forward", "finetune")``), one of :data:`TRANSFERS`. A hook is a
function ``hook(source, env, make_model, seed, **kwargs) -> model``:

- ``source``: :class:`~sb3_latent.zoo_runs.RunFolder`, the finished source run's rl-zoo3 folder (its model, replay
  buffer and statistics, read by :mod:`sb3_latent.zoo_runs`);
- ``env``: the target task's training env, built by rl-zoo3 exactly as for a run from scratch
  (Monitor into the run folder, VecNormalize if the YAML asks for it);
- ``make_model(**extra)``: builds the target model the zoo way (the target YAML, budget and
  condition hyperparameters) plus ``extra`` constructor arguments;
- ``seed``: the run's seed; ``kwargs``: the condition's ``Source.kwargs``.

The returned model must train on ``env``; the runner then calls ``learn`` with
``reset_num_timesteps=True``, so the x-axis of a transfer run counts target-task steps only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from sb3_latent.transfer import finetune
from sb3_latent.zoo_runs import RunFolder

TransferFunction = Callable[..., BaseAlgorithm]


# Naive transfer (poster Figure 4): the whole SAC agent of the base task keeps training on the target task.
def naive_finetune(
    source: RunFolder, env: VecEnv, make_model: Callable[..., BaseAlgorithm], seed: int, **kwargs: Any
) -> BaseAlgorithm:
    """``sb3_latent.transfer.finetune(source run folder, target env, seed=seed, verbose=1, **kwargs)``.

    ``finetune`` reads the source run (its model, task, replay buffer and VecNormalize statistics); the target env is
    the zoo-built training env of this run. The condition's ``Source.kwargs`` (e.g. ``keep_buffer``, ``warmup``,
    ``reset_entropy``) go through unchanged; by default ``finetune``'s own defaults apply.
    """
    return finetune(source.save_path, env, **{"seed": seed, "verbose": 1, **kwargs})


# Latent transfer (poster Figure 5): a LatentSAC on the target task starts from the source's action generator
# g(a|s,z) (with its encoder and prior), with a fresh latent policy and critic. The mode is LatentSAC's
# ``generator_mode`` argument, so these hooks are configuration, not new code.
def _generator_transfer(mode: str) -> TransferFunction:
    def hook(
        source: RunFolder, env: VecEnv, make_model: Callable[..., BaseAlgorithm], seed: int, **kwargs: Any
    ) -> BaseAlgorithm:
        # LatentSAC reads the generator from the run folder (a latent_sac run, or it says why not).
        return make_model(action_generator=source.save_path, generator_mode=mode, **kwargs)

    hook.__doc__ = f"A fresh LatentSAC (zoo hyperparameters) with the source's action generator, generator_mode={mode!r}."
    return hook


TRANSFERS: dict[str, TransferFunction] = {
    "finetune": naive_finetune,
    "generator-frozen": _generator_transfer("frozen"),
    "generator-finetuned": _generator_transfer("finetune"),
    "generator-residual": _generator_transfer("residual"),
}
