"""Naive transfer: fine-tune a saved off-policy model (SAC, TD3, TQC, LatentSAC, ...) on a target task.

The poster's "naive transfer" fine-tunes the base task's SAC on the target task. SB3 can already load a model onto
another env (``SAC.load(path, env=target)``) and rl-zoo3's ``-i`` does it from the command line; :func:`finetune`
makes explicit the choices that decide what such a transfer actually starts from:

- the replay buffer: emptied, or kept with its rewards relabelled to the target task (never the source task's);
- the entropy temperature of SAC/TQC: kept or reset;
- the warm-up: ``learn()`` restarts ``num_timesteps`` at 0, so SB3's ``learning_starts`` phase of uniformly random
  actions runs again; by default the transferred policy acts during it instead;
- the critic and its target: kept or re-initialised;
- the source run's VecNormalize statistics: carried over to the target env.

Only what SB3's off-policy algorithms share is used (``critic``, ``critic_target``, ``log_ent_coef``,
``ent_coef_optimizer``, ``learning_starts``, ``replay_buffer``), so any
:class:`~stable_baselines3.common.off_policy_algorithm.OffPolicyAlgorithm` works.
"""

from __future__ import annotations

import copy
import functools
import inspect
import io
import math
import pickle
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, is_vecenv_wrapped
from stable_baselines3.her.her_replay_buffer import HerReplayBuffer

from sb3_latent.common.checks import check_argument_names
from sb3_latent.envs import HalfCheetahTask, in_task_family, relabel_rewards, task_of
from sb3_latent.envs.registration import check_env_id
from sb3_latent.errors import UserInputError
from sb3_latent.zoo_runs import ZOO_REPLAY_BUFFER_FILE, SourceRun, env_spec, load_replay_buffer, load_vecnormalize, read_run

Warmup = Literal["policy", "random"]
WARMUPS: tuple[str, ...] = ("policy", "random")
# Arguments of finetune() that must not reach SB3's load() through **overrides as well.
_NAMED_ARGUMENTS = ("env", "seed", "learning_starts")


class PolicyWarmup(OffPolicyAlgorithm):
    """Acts with the policy during the ``learning_starts`` warm-up instead of uniformly at random.

    SB3 samples actions uniformly while ``num_timesteps < learning_starts``, and ``learn()`` restarts
    ``num_timesteps`` at 0, so a loaded model would throw its policy away for the whole warm-up. Here the
    (transferred) policy acts from the first step, while ``learning_starts`` keeps delaying the gradient steps
    exactly as in SB3 (``OffPolicyAlgorithm.learn``). Never used alone: :func:`with_policy_warmup` mixes it into an
    algorithm class. A model saved from it loads as the plain algorithm.
    """

    base_algorithm: ClassVar[type[OffPolicyAlgorithm]]

    def _sample_action(
        self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        return super()._sample_action(0, action_noise, n_envs)


def base_algorithm(algorithm_class: type[OffPolicyAlgorithm]) -> type[OffPolicyAlgorithm]:
    """The plain algorithm class behind a :func:`with_policy_warmup` class (the class itself otherwise)."""
    return cast(type[OffPolicyAlgorithm], getattr(algorithm_class, "base_algorithm", algorithm_class))


def with_policy_warmup(algorithm_class: type[OffPolicyAlgorithm]) -> type[OffPolicyAlgorithm]:
    """``algorithm_class`` whose ``learning_starts`` warm-up acts with the policy (see :class:`PolicyWarmup`)."""
    return _policy_warmup_class(base_algorithm(algorithm_class))


@functools.cache  # one class per algorithm, so that type(model) compares equal across calls
def _policy_warmup_class(algorithm_class: type[OffPolicyAlgorithm]) -> type[OffPolicyAlgorithm]:
    warmup_class = types.new_class(f"PolicyWarmup{algorithm_class.__name__}", (PolicyWarmup, algorithm_class))
    warmup_class.__module__ = __name__
    warmup_class.base_algorithm = algorithm_class  # type: ignore[attr-defined]
    return cast(type[OffPolicyAlgorithm], warmup_class)


def _check_off_policy(algorithm_class: type, where: str) -> None:
    if not issubclass(algorithm_class, OffPolicyAlgorithm):
        raise UserInputError(
            f"{where} is a {algorithm_class.__name__} model; naive transfer fine-tunes off-policy models (SAC, TD3, DDPG, "
            f"TQC, LatentSAC) and their replay buffers. For an on-policy model use {algorithm_class.__name__}.load(path, "
            "env=target_env).learn(...)."
        )


def load_source_run(
    source: str | Path | OffPolicyAlgorithm,
    *,
    algo: str | type[OffPolicyAlgorithm] | None = None,
    source_env: str | None = None,
    source_env_kwargs: dict[str, Any] | None = None,
) -> SourceRun:
    """Find the model, its algorithm, its task, replay buffer and VecNormalize statistics.

    :param source: an rl-zoo3 run folder (``logs/sac/HalfCheetah-v4_1``), a saved model (``.../HalfCheetah-v4.zip``,
        ``best_model.zip``, any SB3 zip), or a loaded model
    :param algo: rl-zoo3's name (``"sac"``) or the class; needed only for a zip outside an rl-zoo3 run folder
    :param source_env: the source task's env id, where the run does not tell it (or to override it)
    :param source_env_kwargs: the source task's env kwargs
    """
    if isinstance(source, BaseAlgorithm):
        _check_off_policy(type(source), "The source")
        model = cast(OffPolicyAlgorithm, source)
        env = model.get_env()
        env_id, env_kwargs = env_spec(env) if env is not None else (None, {})
        buffer = model.replay_buffer
        has_data = buffer is not None and (buffer.full or buffer.pos > 0)
        run = SourceRun(
            algorithm_class=base_algorithm(type(model)),  # a fine-tuned model's warm-up class is not inherited
            model=model,
            env_id=env_id,
            env_kwargs=env_kwargs,
            replay_buffer=buffer if has_data else None,
            vecnormalize=model.get_vec_normalize_env(),
        )
    else:
        run = read_run(Path(source), algo)
        _check_off_policy(run.algorithm_class, str(run.model_path))
    if source_env is not None:
        run.env_id, run.env_kwargs = source_env, dict(source_env_kwargs or {})
    elif source_env_kwargs:
        run.env_kwargs = {**run.env_kwargs, **source_env_kwargs}
    return run


def _relabelling_tasks(
    run: SourceRun,
    target_id: str | None,
    target_kwargs: dict[str, Any],
    action_dim: int,
    empty_buffer: str = "keep_buffer=False",
) -> tuple[HalfCheetahTask, HalfCheetahTask]:
    """The source and target tasks of a kept replay buffer; refuses, naming the fix, where rewards cannot be relabelled.

    :param empty_buffer: how the caller's interface starts from an empty buffer instead (the fix each refusal names)
    """
    if run.env_id is None:
        raise UserInputError(
            "The source's replay buffer is kept, but the task it was recorded on is unknown (no rl-zoo3 args.yml beside "
            "the model, and no env on the loaded model). Name it with source_env='HalfCheetah-v4' (and "
            f"source_env_kwargs), or start the target task with an empty replay buffer: {empty_buffer}."
        )
    if target_id is None:
        raise UserInputError(
            "The source's replay buffer is kept, but the target env has no registered id (env.spec is None), so its "
            "reward is unknown. Pass the target task as an id (e.g. 'HalfCheetahBackward-v4'), or start it with an empty "
            f"replay buffer: {empty_buffer}."
        )
    try:
        source_task = task_of(run.env_id, run.env_kwargs)
        target_task = task_of(target_id, target_kwargs)
        # A dry run on no data: relabel_rewards owns the rule of which task pairs it can relabel.
        relabel_rewards(source_task, target_task, np.zeros(0, np.float32), np.zeros((0, action_dim), np.float32))
    except (ValueError, gym.error.Error) as error:
        raise UserInputError(
            f"The source's replay buffer holds rewards recorded on {run.env_id} ({run.env_kwargs or 'no kwargs'}); they "
            f"must first be relabelled to the target task {target_id} ({target_kwargs or 'no kwargs'}), and that is "
            f"impossible: {error} Start the target task with an empty replay buffer instead: {empty_buffer}."
        ) from None
    return source_task, target_task


def relabel_replay_buffer(
    buffer: ReplayBuffer, source: HalfCheetahTask, target: HalfCheetahTask, action_space: spaces.Space
) -> None:
    """Replace, in place, the rewards of a replay buffer recorded on ``source`` by ``target``'s rewards.

    SB3 stores Box actions rescaled to [-1, 1] while the reward was computed on the action the env received, so
    the actions are unscaled first (``policy.unscale_action``); observations, actions and dones are unchanged.
    """
    if isinstance(buffer, HerReplayBuffer):
        raise UserInputError("A HerReplayBuffer recomputes goal rewards itself; relabel it by its env, not by task.")
    n_stored = buffer.buffer_size if buffer.full else buffer.pos
    if n_stored == 0:
        return
    actions = buffer.actions[:n_stored].reshape(-1, buffer.action_dim)
    if isinstance(action_space, spaces.Box):
        low, high = action_space.low, action_space.high
        actions = low + 0.5 * (actions + 1.0) * (high - low)
    rewards = relabel_rewards(source, target, buffer.rewards[:n_stored].reshape(-1), actions)
    buffer.rewards[:n_stored] = rewards.reshape(n_stored, buffer.n_envs)


def relabel_buffer_for_target(
    model: OffPolicyAlgorithm, source: str | Path, target_id: str, target_kwargs: dict[str, Any] | None = None
) -> None:
    """Relabel, for rl-zoo3's ``-i``, the replay buffer it reloaded from the source run, when the task changed.

    Continued training on the same task, or a source run that does not name its task, is left as rl-zoo3 has it.
    """
    if not in_task_family(target_id):
        return  # rl-zoo3 unchanged for the envs we do not cover: its -i continues on the buffer as it is
    run = load_source_run(source)
    target_kwargs = dict(target_kwargs or {})
    if run.env_id is None or (run.env_id, run.env_kwargs) == (target_id, target_kwargs) or not in_task_family(run.env_id):
        return
    if model.replay_buffer is None:
        return
    buffer_file = Path(source).parent / ZOO_REPLAY_BUFFER_FILE
    empty_buffer = f"move {buffer_file} aside (rl-zoo3's -i loads it whenever it is there)"
    action_dim = get_action_dim(model.action_space)
    source_task, target_task = _relabelling_tasks(run, target_id, target_kwargs, action_dim, empty_buffer)
    relabel_replay_buffer(model.replay_buffer, source_task, target_task, model.action_space)
    print(f"Relabelled the replay buffer from {run.env_id} to {target_id} rewards")


def _keep_replay_buffer(
    model: OffPolicyAlgorithm, buffer: Path | ReplayBuffer, source: HalfCheetahTask, target: HalfCheetahTask
) -> None:
    fresh = model.replay_buffer
    assert fresh is not None
    if isinstance(buffer, ReplayBuffer):
        # A copy: the caller's buffer keeps the source task's rewards.
        model.replay_buffer = copy.deepcopy(buffer)
        model.replay_buffer.device = model.device
    else:
        load_replay_buffer(model, buffer)
    kept = model.replay_buffer
    assert kept is not None
    layout = (kept.obs_shape, kept.action_dim, kept.n_envs)
    if layout != (fresh.obs_shape, fresh.action_dim, fresh.n_envs):
        raise UserInputError(
            f"The kept replay buffer does not fit the target env: (observation shape, action dim, n_envs) = {layout}, "
            f"the target needs {(fresh.obs_shape, fresh.action_dim, fresh.n_envs)}. Use as many envs as the source run "
            "(n_envs), or start with an empty replay buffer: keep_buffer=False."
        )
    if not (kept.full or kept.pos > 0):
        raise UserInputError(
            f"The replay buffer to keep ({buffer}) is empty; start with an empty replay buffer: keep_buffer=False."
        )
    relabel_replay_buffer(kept, source, target, model.action_space)


def reset_entropy_coefficient(model: OffPolicyAlgorithm) -> None:
    """Put a learned entropy temperature (SAC, TQC, LatentSAC) back to its initial value, with a fresh optimiser.

    The initial value is SAC's: 1.0 for ``ent_coef="auto"``, x for ``"auto_x"``.
    """
    log_ent_coef = getattr(model, "log_ent_coef", None)
    optimizer = getattr(model, "ent_coef_optimizer", None)
    ent_coef = getattr(model, "ent_coef", None)
    if log_ent_coef is None or optimizer is None or not isinstance(ent_coef, str):
        raise UserInputError(
            f"reset_entropy=True needs a learned entropy temperature (SAC/TQC with ent_coef='auto'), but this "
            f"{type(model).__name__} has none (ent_coef={ent_coef!r}). Do without it: reset_entropy=False."
        )
    initial_value = float(ent_coef.split("_")[1]) if "_" in ent_coef else 1.0
    with th.no_grad():
        log_ent_coef.fill_(math.log(initial_value))
    # In place: the optimiser keeps pointing at log_ent_coef, and a fresh Adam has no state.
    optimizer.state.clear()


def reinitialise_critic(model: OffPolicyAlgorithm) -> None:
    """Re-initialise the critic as a freshly built one, copy it into its target, and give it a fresh optimiser.

    SB3's off-policy critics use torch's default initialisation, which ``reset_parameters()`` draws again. A
    features extractor shared with the actor stays (it is the actor's too). Everything happens in place, so
    parameter lists cached by the algorithm (LatentSAC keeps some) stay valid.
    """
    critic = getattr(model, "critic", None)
    if not isinstance(critic, th.nn.Module):
        raise UserInputError(
            f"reset_critic=True needs a critic, but {type(model).__name__} has none. Do without it: reset_critic=False."
        )
    shared_extractor = bool(getattr(model.policy, "share_features_extractor", False))
    for name, module in critic.named_modules():
        if shared_extractor and name.startswith("features_extractor"):
            continue
        reset_parameters = getattr(module, "reset_parameters", None)
        if module is not critic and callable(reset_parameters):
            reset_parameters()
    critic_target = getattr(model, "critic_target", None)  # CrossQ has none
    if isinstance(critic_target, th.nn.Module):
        critic_target.load_state_dict(critic.state_dict())
    optimizer = getattr(critic, "optimizer", None)
    if isinstance(optimizer, th.optim.Optimizer):
        optimizer.state.clear()


def _check_spaces(observation_space: spaces.Space, action_space: spaces.Space, env: VecEnv) -> None:
    if env.observation_space != observation_space or env.action_space != action_space:
        raise UserInputError(
            "The source model cannot act in the target env: their spaces differ.\n"
            f"  source model: observation_space={observation_space}, action_space={action_space}\n"
            f"  target env:   observation_space={env.observation_space}, action_space={env.action_space}\n"
            "Naive transfer needs the same robot (observations and actions); only the task, the reward, may change."
        )


def _carry_vecnormalize(stats: Path | VecNormalize, env: VecEnv) -> VecNormalize:
    if isinstance(stats, VecNormalize):
        # VecNormalize pickles its statistics without its env: a copy the target can own.
        carried = pickle.loads(pickle.dumps(stats))
        carried.set_venv(env)
        return carried
    fix = "Move it aside, or start without the source's statistics: vecnormalize=False (--no-vecnormalize in the CLI)."
    return load_vecnormalize(stats, env, fix)


def finetune(
    source: str | Path | OffPolicyAlgorithm,
    target_env: str | gym.Env | VecEnv,
    *,
    keep_buffer: bool = False,
    reset_entropy: bool = False,
    reset_critic: bool = False,
    warmup: Warmup = "policy",
    learning_starts: int | None = None,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    algo: str | type[OffPolicyAlgorithm] | None = None,
    source_env: str | None = None,
    source_env_kwargs: dict[str, Any] | None = None,
    replay_buffer: str | Path | ReplayBuffer | None = None,
    vecnormalize: bool | str | Path | VecNormalize = True,
    monitor_dir: str | None = None,
    **overrides: Any,
) -> OffPolicyAlgorithm:
    """A copy of the source model, set up to fine-tune on ``target_env``: call ``.learn(n)`` on it.

    The source is never modified. What is not reset below is kept exactly: actor, critic, their targets and
    optimiser states, entropy temperature, hyperparameters (except ``overrides``).

    :param source: an rl-zoo3 run folder (``logs/sac/HalfCheetah-v4_1``), a saved model (``.../HalfCheetah-v4.zip``)
        or a loaded off-policy model (SAC, TD3, DDPG, TQC, LatentSAC, ...)
    :param target_env: the target task: an env id (built like the source run: its ``n_envs`` and ``env_wrapper``),
        a gymnasium env or a VecEnv
    :param keep_buffer: keep the source's replay buffer (default False: empty, as after SB3's ``load``). Its rewards
        are relabelled to the target task (``sb3_latent.envs.relabel_rewards``); where that is impossible (unknown
        source task, target speeds, non-HalfCheetah ids) a ``UserInputError`` says so
    :param reset_entropy: reset SAC/TQC's learned entropy temperature to its initial value with a fresh optimiser
        (default False: kept, as SB3's ``load`` and rl-zoo3's ``-i`` keep it)
    :param reset_critic: re-initialise the critic and its target, with a fresh critic optimiser (default False: kept)
    :param warmup: who acts during the first ``learning_starts`` steps, when no gradient step is taken: ``"policy"``
        (default: the transferred policy) or ``"random"`` (uniformly random actions, as SB3's ``load`` + ``learn``)
    :param learning_starts: steps before the first gradient step. Default: 0 when the buffer is kept and the
        policy warms up (the buffer already holds data to learn from), else the source model's ``learning_starts``
        (what SB3's ``load`` keeps)
    :param seed: seed of the model and the target env (default: the source model's saved seed, as SB3's ``load``)
    :param env_kwargs: kwargs of the target env, when ``target_env`` is an id
    :param algo: rl-zoo3's algorithm name or the class, for a zip outside an rl-zoo3 run folder
    :param source_env: the source task's env id, where the run does not tell it (needed to relabel the buffer)
    :param source_env_kwargs: the source task's env kwargs
    :param replay_buffer: the buffer to keep (a pickle path or a ReplayBuffer), instead of the run's
        ``replay_buffer.pkl`` or the loaded model's buffer; only with ``keep_buffer=True``
    :param vecnormalize: carry the source's VecNormalize statistics over to the target env (default True, when the
        source has some and the target env is not normalised already); False to skip, or a ``vecnormalize.pkl``
        path or a VecNormalize to use instead
    :param monitor_dir: where the Monitor of a target env built from an id writes its CSV (as rl-zoo3's run folder)
    :param overrides: hyperparameters changed on load, as with ``SAC.load(path, env, **kwargs)`` and rl-zoo3's
        ``-i`` (``learning_rate``, ``batch_size``, ``gradient_steps``, ``device``, ``verbose``, ...)
    :return: the model, with ``target_env`` as its env
    """
    if warmup not in WARMUPS:
        raise UserInputError(f"warmup must be one of {WARMUPS}, got {warmup!r}.")
    for name in _NAMED_ARGUMENTS:
        if name in overrides:
            raise UserInputError(f"Pass {name} as finetune's own argument, not as a hyperparameter override.")
    if replay_buffer is not None and not keep_buffer:
        raise UserInputError("replay_buffer=... is the buffer to keep: pass keep_buffer=True too (or leave it out).")

    run = load_source_run(source, algo=algo, source_env=source_env, source_env_kwargs=source_env_kwargs)
    load_arguments = inspect.signature(run.algorithm_class.load).parameters
    check_argument_names(
        run.algorithm_class,
        overrides,
        "Correct or remove that override (-params in the CLI).",
        load_arguments,
    )
    model_file = run.model_file()
    # The saved attributes (spaces, n_envs, learning_starts, ent_coef) decide what can be done, before any env is built.
    saved, _, _ = load_from_zip_file(model_file, custom_objects=overrides.get("custom_objects"), device="cpu")
    if isinstance(model_file, io.BytesIO):
        model_file.seek(0)
    assert saved is not None

    # 1. Refuse what cannot work, naming the fix.
    kept_buffer = _buffer_to_keep(run, target_env, env_kwargs, replay_buffer, saved) if keep_buffer else None
    ent_coef = overrides.get("ent_coef", saved.get("ent_coef"))
    if reset_entropy and not (isinstance(ent_coef, str) and ent_coef.startswith("auto")):
        raise UserInputError(
            f"reset_entropy=True needs a learned entropy temperature (SAC/TQC with ent_coef='auto'), but this "
            f"{run.algorithm_class.__name__} model has none (ent_coef={ent_coef!r}). Do without it: reset_entropy=False."
        )
    if learning_starts is None:
        learning_starts = 0 if keep_buffer and warmup == "policy" else int(saved["learning_starts"])

    # 2. The target env, normalised with the source's statistics.
    # Built from an id like the source run's env: its n_envs and env_wrapper.
    env = make_target_env(target_env, env_kwargs, int(saved["n_envs"]), seed, monitor_dir, _env_wrapper(run))
    _check_spaces(saved["observation_space"], saved["action_space"], env)
    stats = run.vecnormalize if vecnormalize is True else vecnormalize
    if isinstance(stats, (str, Path)):
        stats = Path(stats)
    if isinstance(stats, (Path, VecNormalize)) and not is_vecenv_wrapped(env, VecNormalize):
        env = _carry_vecnormalize(stats, env)

    # 3. The model: SB3's load (what rl-zoo3's -i does), acting with the policy during the warm-up if asked.
    algorithm_class = cast(type[OffPolicyAlgorithm], run.algorithm_class)  # load_source_run checked it
    if warmup == "policy" and learning_starts > 0:
        algorithm_class = with_policy_warmup(algorithm_class)
    if seed is not None:
        overrides["seed"] = seed
    model = algorithm_class.load(model_file, env=env, learning_starts=learning_starts, **overrides)

    # 4. What is kept and what starts afresh.
    if kept_buffer is not None:
        _keep_replay_buffer(model, *kept_buffer)
    if reset_entropy:
        reset_entropy_coefficient(model)
    if reset_critic:
        reinitialise_critic(model)
    return model


def _buffer_to_keep(
    run: SourceRun,
    target_env: str | gym.Env | VecEnv,
    env_kwargs: dict[str, Any] | None,
    replay_buffer: str | Path | ReplayBuffer | None,
    saved: dict[str, Any],
) -> tuple[Path | ReplayBuffer, HalfCheetahTask, HalfCheetahTask]:
    """The replay buffer to keep and the tasks to relabel it between; refuses where either is missing."""
    target_id, target_kwargs = (target_env, dict(env_kwargs or {})) if isinstance(target_env, str) else env_spec(target_env)
    action_dim = int(np.prod(saved["action_space"].shape))
    source_task, target_task = _relabelling_tasks(run, target_id, target_kwargs, action_dim)
    buffer = Path(replay_buffer) if isinstance(replay_buffer, (str, Path)) else replay_buffer
    buffer = buffer if buffer is not None else run.replay_buffer
    if buffer is None:
        where = run.model_path if run.model is None else "the source model"
        raise UserInputError(
            f"The source's replay buffer is kept, but {where} comes with no replay buffer. rl-zoo3 saves one only when "
            "trained with --save-replay-buffer (<run>/replay_buffer.pkl); pass replay_buffer=<path or buffer>, or start "
            "with an empty replay buffer: keep_buffer=False."
        )
    return buffer, source_task, target_task


def _env_wrapper(run: SourceRun) -> Callable[[gym.Env], gym.Env] | None:
    """The source run's rl-zoo3 ``env_wrapper``, if its config has one."""
    if not run.config.get("env_wrapper"):
        return None
    from rl_zoo3.utils import get_wrapper_class

    return get_wrapper_class(run.config)


def make_target_env(
    target_env: str | gym.Env | VecEnv,
    env_kwargs: Mapping[str, Any] | None,
    n_envs: int,
    seed: int | None,
    monitor_dir: str | None,
    wrapper_class: Callable[[gym.Env], gym.Env] | None = None,
) -> VecEnv:
    """The target task as a VecEnv (naive and latent transfer): built from an id, or the env given."""
    if isinstance(target_env, str):
        check_env_id(target_env, "target_env")
    else:
        if env_kwargs:
            raise UserInputError("env_kwargs apply to a target env id only; this target env is built already.")
        return target_env if isinstance(target_env, VecEnv) else BaseAlgorithm._wrap_env(target_env)
    return make_vec_env(
        target_env,
        n_envs=n_envs,
        seed=seed,
        env_kwargs=dict(env_kwargs or {}),
        wrapper_class=wrapper_class,
        monitor_dir=monitor_dir,
    )
