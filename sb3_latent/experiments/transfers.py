"""Transfer hooks: how the saved run of a source condition initialises a target condition's model.

A condition names its hook (``Source("pretrain-forward", "finetune")``); the hook is resolved only
when the run starts, so an experiment can be declared before the code it calls exists. Each hook
lists what it needs as ``"module:attribute"``; while one is missing, the conditions that use the
hook are *pending* and say why.

A hook is a function ``hook(source, env, make_model, seed, **kwargs) -> model``:

- ``source``: :class:`SourceRun`, the finished source run (its model, replay buffer, statistics);
- ``env``: the target task's training env, built by rl-zoo3 exactly as for a run from scratch
  (Monitor into the run folder, VecNormalize if the YAML asks for it);
- ``make_model(**extra)``: builds the target model the zoo way (the target YAML, budget and
  condition hyperparameters) plus ``extra`` constructor arguments;
- ``seed``: the run's seed; ``kwargs``: the condition's ``Source.kwargs``.

The returned model must train on ``env``; the runner then calls ``learn`` with
``reset_num_timesteps=True``, so the x-axis of a transfer run counts target-task steps only.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sb3_latent.errors import UserInputError

if TYPE_CHECKING:  # SB3 is imported by the hooks only, inside workers: planning a run stays light.
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import VecEnv


class PendingDependency(UserInputError):
    """A condition needs code that does not exist yet (an algorithm, a transfer function, an env id)."""


@dataclass(frozen=True)
class SourceRun:
    """The finished run a transfer starts from, in rl-zoo3's layout.

    :param algo: its rl-zoo3 algorithm name
    :param env_id: its task
    :param save_path: ``<run>/<algo>/<env>_1``: the model ``<env>.zip``, ``replay_buffer.npz`` (compact,
        see :mod:`sb3_latent.experiments.checkpoints`) and ``<env>/vecnormalize.pkl`` if any
    """

    algo: str
    env_id: str
    save_path: str

    @property
    def model_path(self) -> Path:
        return Path(self.save_path) / f"{self.env_id}.zip"

    @property
    def replay_buffer_path(self) -> Path | None:
        path = Path(self.save_path) / "replay_buffer.npz"
        return path if path.is_file() else None

    @property
    def vecnormalize_path(self) -> Path | None:
        path = Path(self.save_path) / self.env_id / "vecnormalize.pkl"
        return path if path.is_file() else None

    def load(self, env: VecEnv | None = None, with_replay_buffer: bool = True, **kwargs: Any) -> BaseAlgorithm:
        """The source model (zoo class of ``algo``), with its replay buffer if saved and asked for."""
        from rl_zoo3.utils import ALGOS

        from sb3_latent.experiments.checkpoints import restore_replay_buffer

        model = ALGOS[self.algo].load(self.model_path, env=env, **kwargs)
        buffer_path = self.replay_buffer_path
        if with_replay_buffer and buffer_path is not None and getattr(model, "replay_buffer", None) is not None:
            restore_replay_buffer(model.replay_buffer, buffer_path)  # type: ignore[attr-defined]
        return model


TransferFunction = Callable[..., "BaseAlgorithm"]


@dataclass(frozen=True)
class TransferHook:
    """A named way to start a run from a source run.

    :param function: ``"module:function"`` of the hook (signature in this module's docstring)
    :param requires: ``"module:attribute"`` that must exist for the hook to run
    :param description: one line for the docs
    """

    function: str
    requires: tuple[str, ...]
    description: str

    def load(self) -> TransferFunction:
        return resolve(self.function)


def resolve(target: str) -> Any:
    """``"module:attribute"`` -> the attribute; :class:`PendingDependency` (with the reason) if it is missing."""
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            raise PendingDependency(f"{target} is not available: module {error.name} does not exist yet.") from None
        raise
    if not hasattr(module, attribute):
        raise PendingDependency(f"{target} is not available: {module_name} has no attribute {attribute!r} yet.")
    return getattr(module, attribute)


def missing(requirement: str) -> str | None:
    """Why ``requirement`` (``"module:attribute"``) cannot be used, or None if it can."""
    try:
        resolve(requirement)
    except PendingDependency as error:
        return str(error)
    except Exception as error:  # code being written by others may not import yet: report, don't crash the driver
        return f"{requirement} could not be imported: {type(error).__name__}: {error}"
    return None


def _call_with_supported(function: Callable[..., Any], *args: Any, optional: dict[str, Any], **kwargs: Any) -> Any:
    """Call ``function``, passing each ``optional`` keyword only if its signature accepts it."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    extra = {key: value for key, value in optional.items() if accepts_any or key in parameters}
    return function(*args, **extra, **kwargs)


def _check_model(model: Any, hook: str, env: VecEnv) -> BaseAlgorithm:
    from stable_baselines3.common.base_class import BaseAlgorithm

    if not isinstance(model, BaseAlgorithm):
        raise TypeError(f"transfer hook {hook!r} must return an SB3 model (BaseAlgorithm), got {type(model).__name__}.")
    if model.get_env() is None:
        model.set_env(env)
    return model


# ----------------------------------------------------------------------------------------------------------------------
# Naive transfer (poster Figure 4): the whole SAC agent of the base task keeps training on the target task.


def naive_finetune(
    source: SourceRun, env: VecEnv, make_model: Callable[..., BaseAlgorithm], seed: int, **kwargs: Any
) -> BaseAlgorithm:
    """Adapter to ``sb3_latent.transfer.finetune(source, target_env, **kwargs)``.

    ``source`` is passed as the loaded source model, replay buffer included (``finetune`` keeps it, relabelled,
    only with ``keep_buffer=True``); ``target_env`` is the zoo-built training env of this run. Also passed, where
    ``finetune`` accepts them: the run's ``seed``, ``verbose=1``, the source task (``source_env``, which a loaded
    model does not carry) and the source's VecNormalize statistics. The condition's ``Source.kwargs`` (e.g.
    ``keep_buffer``, ``warmup``, ``reset_entropy``) go through unchanged; by default ``finetune``'s own defaults apply.
    """
    from sb3_latent.transfer import finetune

    source_model = source.load(with_replay_buffer=True)
    optional: dict[str, Any] = {"seed": seed, "verbose": 1, "source_env": source.env_id}
    if source.vecnormalize_path is not None:
        optional["vecnormalize"] = str(source.vecnormalize_path)
    optional = {key: value for key, value in optional.items() if key not in kwargs}
    model = _call_with_supported(finetune, source_model, env, optional=optional, **kwargs)
    return _check_model(model, "finetune", env)


# ----------------------------------------------------------------------------------------------------------------------
# Latent transfer (poster Figure 5): a LatentSAC on the target task starts from the source's action generator
# g(a|s,z) (with its encoder and prior), with a fresh latent policy and critic. The mode is LatentSAC's
# ``generator_mode`` argument, so these hooks are configuration, not new code.


def _source_generator(source: SourceRun) -> Any:
    model = source.load(with_replay_buffer=False)
    generator = getattr(model, "action_generator", None)
    if generator is None:
        raise UserInputError(
            f"the source run {source.save_path} is a {type(model).__name__}, which has no action generator: "
            "generator transfer needs a LatentSAC source condition."
        )
    return generator


def _generator_transfer(mode: str) -> TransferFunction:
    def hook(
        source: SourceRun, env: VecEnv, make_model: Callable[..., BaseAlgorithm], seed: int, **kwargs: Any
    ) -> BaseAlgorithm:
        model = make_model(action_generator=_source_generator(source), generator_mode=mode, **kwargs)
        return _check_model(model, mode, env)

    hook.__doc__ = f"A fresh LatentSAC (zoo hyperparameters) with the source's action generator, generator_mode={mode!r}."
    return hook


generator_frozen = _generator_transfer("frozen")
generator_finetuned = _generator_transfer("finetune")
generator_residual = _generator_transfer("residual")


_HERE = "sb3_latent.experiments.transfers"
TRANSFERS: dict[str, TransferHook] = {
    "finetune": TransferHook(
        f"{_HERE}:naive_finetune",
        requires=("sb3_latent.transfer:finetune",),
        description="naive transfer: sb3_latent.transfer.finetune(source model, target env)",
    ),
    "generator-frozen": TransferHook(
        f"{_HERE}:generator_frozen",
        requires=("sb3_latent.latent_sac:LatentSAC",),
        description="LatentSAC with the source's action generator, frozen (generator_mode='frozen')",
    ),
    "generator-finetuned": TransferHook(
        f"{_HERE}:generator_finetuned",
        requires=("sb3_latent.latent_sac:LatentSAC",),
        description="LatentSAC with the source's action generator, fine-tuned by the ELBO (generator_mode='finetune')",
    ),
    "generator-residual": TransferHook(
        f"{_HERE}:generator_residual",
        requires=("sb3_latent.latent_sac:LatentSAC",),
        description="LatentSAC with the source's action generator, frozen, plus a bounded residual action "
        "(generator_mode='residual')",
    ),
}
