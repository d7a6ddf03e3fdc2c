"""Latent Soft Actor-Critic: SAC over latent codes z, decoded into env actions by a conditional-VAE action generator."""

from __future__ import annotations

import contextlib
import copy
import io
import math
import pathlib
import warnings
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar, Union

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule, update_learning_rate
from stable_baselines3.sac.sac import SAC
from torch.nn import functional as F

from sb3_latent.common.action_generator import ActionGenerator
from sb3_latent.errors import UserInputError
from sb3_latent.latent_sac.policies import LatentActor, LatentSACPolicy, MlpPolicy, generator_policy_kwargs
from sb3_latent.latent_sac.update_process import UpdateProcess, check_update_process_supported, materialized_state

SelfLatentSAC = TypeVar("SelfLatentSAC", bound="LatentSAC")
ModuleT = TypeVar("ModuleT", bound=th.nn.Module)
# What action_generator= accepts: a module, a generator file, a LatentSAC, its zip or its rl-zoo3 run folder.
GeneratorSource = Union[ActionGenerator, "LatentSAC", str, pathlib.Path, io.BufferedIOBase]

# Columns of the per-step statistics that train() keeps on the device (one host transfer per call).
RL_STATS = ("critic_loss", "actor_loss", "ent_coef_loss", "ent_coef", "latent_entropy", "prior_kl", "residual_magnitude")
GENERATOR_STATS = ("reconstruction_loss", "kl_loss")
# States and latent codes per state used for train/action_spread_over_z (generator_diagnostics).
SPREAD_STATES = 16
SPREAD_CODES = 8

# What happens to the action generator (generator_mode), see docs/transfer.md "Latent transfer":
# "train": trained by the ELBO, from scratch (with the warm-up) unless action_generator= is given;
# "finetune": a pretrained generator (action_generator=) keeps training by the ELBO, at generator_learning_rate;
# "frozen": a pretrained generator is never updated;
# "residual": frozen, and the latent policy also emits a bounded residual action added to the decoded one.
GENERATOR_MODES = ("train", "finetune", "frozen", "residual")
TRAINED_GENERATOR_MODES = ("train", "finetune")
# What the temperature alpha weighs in the latent policy's objective.
POLICY_REGULARIZERS = ("entropy", "prior_kl")
# How a gradient step uses a second CPU core (docs/performance.md, "Both cores").
CONCURRENT_UPDATES = (None, "thread", "process")


class LatentSample(NamedTuple):
    """One sample of the latent policy: z, log pi(z|s), the residual action r(s) (or None), and what alpha weighs."""

    latent: th.Tensor
    log_prob: th.Tensor
    residual: th.Tensor | None
    regularizer: th.Tensor


class LatentSAC(SAC):
    """
    Latent Soft Actor-Critic (poster: "Efficient Skill Transfer for Simulated Agents", A. Adeniji).

    The actor pi(z|s) emits latent codes; an action generator g(a|s,z) with encoder q(z|s,a) and prior p(z)
    (a conditional VAE) turns them into env actions and is trained jointly by the ELBO on replay-buffer pairs.
    The critic scores Q(s, a) on the env action (PLAS-style), so the actor's gradient reaches Q through the
    decoder. See ``docs/modules/latent_sac.md`` for every design choice.

    Two call forms: ``LatentSAC("HalfCheetah-v4")`` (an env id or env alone: policy ``"MlpPolicy"``) and SB3's
    ``LatentSAC("MlpPolicy", env)``.

    :param policy: The policy model to use (``"MlpPolicy"`` or a ``LatentSACPolicy`` subclass), or the env
        when it is the only argument
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: learning rate for adam optimizer of the latent policy, the critic and the temperature;
        it can be a function of the current progress remaining (from 1 to 0)
    :param buffer_size: size of the replay buffer
    :param learning_starts: how many steps of the model to collect transitions for before learning starts
        (uniformly random actions, no latent code)
    :param batch_size: Minibatch size for each gradient update (the generator uses the same minibatch)
    :param tau: the soft update coefficient ("Polyak update", between 0 and 1)
    :param gamma: the discount factor
    :param train_freq: Update the model every ``train_freq`` steps. Alternatively pass a tuple of frequency and unit
        like ``(5, "step")`` or ``(2, "episode")``.
    :param gradient_steps: How many gradient steps to do after each rollout (see ``train_freq``)
        Set to ``-1`` means to do as many gradient steps as steps done in the environment
        during the rollout.
    :param action_noise: the action noise type (None by default), added to the decoded action
    :param replay_buffer_class: Replay buffer class to use. If ``None``, it will be automatically selected.
    :param replay_buffer_kwargs: Keyword arguments to pass to the replay buffer on creation.
    :param optimize_memory_usage: Enable a memory efficient variant of the replay buffer
        at a cost of more complexity.
    :param n_steps: When n_step > 1, uses n-step return (with the NStepReplayBuffer) when updating the Q-value network.
    :param ent_coef: Entropy regularization coefficient of the latent policy (the temperature alpha).
        Set it to 'auto' to learn it automatically (and 'auto_0.1' for using 0.1 as initial value)
    :param target_update_interval: update the target network every ``target_network_update_freq``
        gradient steps.
    :param target_entropy: target entropy of pi(z|s) when learning ``ent_coef``; ``"auto"`` is ``-latent_dim``
    :param use_sde: Must be False (gSDE is not supported in latent space)
    :param sde_sample_freq: Unused (gSDE), kept for SAC compatibility
    :param use_sde_at_warmup: Unused (gSDE), kept for SAC compatibility
    :param stats_window_size: Window size for the rollout logging, specifying the number of episodes to average
        the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation, including the generator's
        shape: ``latent_dim``, ``latent_bound``, ``generator_net_arch``, ``prior``, ``decoder`` (see ``LatentSACPolicy``)
    :param verbose: Verbosity level: 0 for no output, 1 for info messages (such as device or wrappers used), 2 for
        debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run.
        Setting it to auto, the code will be run on the GPU if possible.
    :param kl_weight: beta, the weight of KL(q(z|s,a) || p(z)) in the generator's loss (KL summed over latent dims)
    :param generator_learning_rate: learning rate of the generator's own Adam optimiser (float or schedule);
        ``None`` uses ``learning_rate``
    :param generator_train_freq: one generator update every ``generator_train_freq`` gradient steps
    :param generator_warmup_steps: generator updates on the random-exploration data, run at the first ``train()``
        call before the latent policy relies on the generator (skipped for a loaded generator)
    :param train_generator: older spelling of ``generator_mode``: ``False`` alone is ``generator_mode="frozen"``
        (no ELBO update); ``None`` (default) follows ``generator_mode``
    :param actor_trains_generator: whether the actor's loss also updates the decoder (default False: otherwise the
        decoder becomes the policy and learns to ignore z); refused with ``generator_mode="frozen"`` or ``"residual"``
    :param action_generator: a pretrained generator to start from: an ``ActionGenerator``, a generator file written
        by ``save_action_generator``, a LatentSAC model, its saved zip, or its rl-zoo3 run folder; its architecture
        overrides the generator entries of ``policy_kwargs``. With ``-i`` (``load``) it is ignored: the saved
        generator is kept
    :param generator_mode: what happens to the action generator: ``"train"`` (default: trained by the ELBO, from
        scratch unless ``action_generator`` is given), ``"finetune"`` (the given generator keeps training, at
        ``generator_learning_rate``), ``"frozen"`` (the given generator never changes) or ``"residual"`` (frozen, and
        the latent policy also emits a residual action bounded by ``residual_scale``). The last three need
        ``action_generator``. A learned prior p(z|s) is part of the generator: frozen or trained with it
    :param residual_scale: bound of the residual action in ``generator_mode="residual"``, on SB3's [-1, 1] action
        scale (0.2: a tenth of the action range); the final action is clip(decoded + residual, -1, 1)
    :param policy_regularizer: what the temperature alpha weighs in the latent policy's objective: ``"entropy"``
        (default, SAC's entropy bonus on z) or ``"prior_kl"`` (SPiRL's -alpha KL(pi(z|s) || p(z|s)), estimated at the
        sampled z; p is the generator's prior, N(0, I) or the learned p(z|s))
    :param target_kl: with ``policy_regularizer="prior_kl"`` and ``ent_coef="auto"``, alpha is tuned so that
        KL(pi(z|s) || p(z|s)) approaches ``target_kl`` nats; ``"auto"`` is ``0.5 * latent_dim``
    :param concurrent_update: how a gradient step uses a second CPU core: ``None`` (default: it does not),
        ``"thread"`` (the generator's ELBO update on a second thread; the RL losses then read the generator as it was
        one update earlier; not with ``actor_trains_generator``) or ``"process"`` (the soft target and the critic's
        update in a forked child process, while this one updates the temperature, the latent policy and the
        generator; the latent policy's loss then reads the critic as it was before this step's critic update, and the
        RL losses the generator before this step's ELBO update; CPU, Linux and macOS). Use them with one torch thread
        (``torch.set_num_threads(1)``; ``"process"`` sets it, with a warning, where it is higher). Results are
        reproducible for a fixed seed, but differ from the default's.
        See docs/performance.md
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": MlpPolicy}
    policy: LatentSACPolicy
    actor: LatentActor
    action_generator: ActionGenerator
    generator_optimizer: th.optim.Adam

    def __init__(
        self,
        policy: str | type[LatentSACPolicy] | GymEnv = "MlpPolicy",
        env: GymEnv | str | None = None,
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 1_000_000,  # 1e6
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        ent_coef: str | float = "auto",
        target_update_interval: int = 1,
        target_entropy: str | float = "auto",
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        use_sde_at_warmup: bool = False,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        kl_weight: float = 0.5,
        generator_learning_rate: float | Schedule | None = None,
        generator_train_freq: int = 1,
        generator_warmup_steps: int = 1000,
        train_generator: bool | None = None,
        actor_trains_generator: bool = False,
        action_generator: GeneratorSource | None = None,
        generator_mode: str | None = None,
        residual_scale: float = 0.2,
        policy_regularizer: str = "entropy",
        target_kl: str | float = "auto",
        concurrent_update: str | None = None,
        _init_setup_model: bool = True,
    ):
        # LatentSAC("HalfCheetah-v4") / LatentSAC(env): the only argument is the environment.
        if env is None and not isinstance(policy, type) and not (isinstance(policy, str) and policy in self.policy_aliases):
            policy, env = "MlpPolicy", policy  # type: ignore[assignment]
        if env is None and _init_setup_model:
            raise UserInputError(
                "LatentSAC needs an environment: use LatentSAC('MlpPolicy', env) or LatentSAC(env) "
                "(env can be an id such as 'Pendulum-v1')."
            )
        if env is not None:
            env = maybe_make_env(env, verbose)  # type: ignore[arg-type]
            self._check_spaces(env.observation_space, env.action_space)
        if use_sde:
            raise UserInputError("LatentSAC does not support gSDE (use_sde=True) yet: leave use_sde=False.")
        if not kl_weight >= 0:
            raise UserInputError(f"kl_weight must be >= 0, got {kl_weight}.")
        if not _is_int(generator_train_freq) or generator_train_freq < 1:
            raise UserInputError(f"generator_train_freq must be an integer >= 1, got {generator_train_freq!r}.")
        if not _is_int(generator_warmup_steps) or generator_warmup_steps < 0:
            raise UserInputError(f"generator_warmup_steps must be an integer >= 0, got {generator_warmup_steps!r}.")
        explicit_mode = generator_mode is not None
        generator_mode = _resolve_generator_mode(generator_mode, train_generator)
        if explicit_mode and generator_mode != "train" and action_generator is None:
            raise UserInputError(
                f"generator_mode={generator_mode!r} transfers a pretrained action generator, but none was given. Pass "
                "action_generator=<generator file, LatentSAC zip or rl-zoo3 run folder> (in rl-zoo3: -params "
                "action_generator:\"'path'\"), or use generator_mode='train' to train one from scratch."
            )
        if explicit_mode and generator_mode in ("frozen", "residual") and actor_trains_generator:
            raise UserInputError(
                f"generator_mode={generator_mode!r} keeps the generator fixed, but actor_trains_generator=True would "
                "update its decoder with the actor's loss. Use generator_mode='finetune', or actor_trains_generator=False."
            )

        super().__init__(
            policy,  # type: ignore[arg-type]
            env,  # type: ignore[arg-type]
            learning_rate=learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            action_noise=action_noise,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=n_steps,
            ent_coef=ent_coef,
            target_update_interval=target_update_interval,
            target_entropy=target_entropy,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            use_sde_at_warmup=use_sde_at_warmup,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            # A copy: loading a generator writes its shape into policy_kwargs, never into the caller's dict.
            policy_kwargs=dict(policy_kwargs) if policy_kwargs is not None else None,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        self.kl_weight = float(kl_weight)
        self.generator_learning_rate = generator_learning_rate
        self.generator_train_freq = generator_train_freq
        self.generator_warmup_steps = generator_warmup_steps
        self.generator_mode = generator_mode
        self.residual_scale = residual_scale
        self.policy_regularizer = policy_regularizer
        self.target_kl = target_kl
        self.actor_trains_generator = actor_trains_generator
        self._action_generator_source = action_generator
        self._generator_warmed_up = False
        self._n_generator_updates = 0
        self.concurrent_update = concurrent_update

        if _init_setup_model:
            self._setup_model()

    @property
    def train_generator(self) -> bool:
        """Whether the ELBO updates the generator (``generator_mode`` "train" or "finetune")."""
        return self.generator_mode in TRAINED_GENERATOR_MODES

    @staticmethod
    def _check_spaces(observation_space: spaces.Space, action_space: spaces.Space) -> None:
        if not isinstance(action_space, spaces.Box):
            raise UserInputError(
                f"LatentSAC needs a continuous (Box) action space, got {action_space}. The latent codes are decoded into "
                "continuous actions; for discrete actions use an algorithm such as DQN or PPO."
            )
        if not isinstance(observation_space, spaces.Box):
            raise UserInputError(
                f"LatentSAC needs a Box observation space (the action generator reads flat vectors), got {observation_space}. "
                "Flatten dict observations with gymnasium.wrappers.FlattenObservation."
            )

    def _setup_model(self) -> None:
        # SB3's load() sets the saved attributes and its keyword arguments (rl-zoo3's -i: the YAML and -params)
        # directly, so the options are checked here. A zip of sb3-latent <= 0.1 saved train_generator itself.
        legacy_train_generator = self.__dict__.pop("train_generator", None)
        if legacy_train_generator is False and self.generator_mode in TRAINED_GENERATOR_MODES:
            self.generator_mode = "frozen"
        # A zip saved before concurrent_update existed may hold concurrent_generator_update=True (now "thread").
        if self.__dict__.pop("concurrent_generator_update", False) and self.concurrent_update is None:
            self.concurrent_update = "thread"
        self._check_options()

        # A pretrained generator fixes the generator's shape: merge it into policy_kwargs before the policy is built.
        pretrained = None
        if self._action_generator_source is not None:
            pretrained, source_policy_kwargs = self._load_generator(self._action_generator_source)
            pretrained.check_spaces(self.observation_space, self.action_space)
            for key, value in generator_policy_kwargs(pretrained).items():
                if key in self.policy_kwargs and self.policy_kwargs[key] != value:
                    raise UserInputError(
                        f"policy_kwargs[{key!r}]={self.policy_kwargs[key]!r} contradicts the given action generator "
                        f"({key}={value!r}). Leave {key!r} out of policy_kwargs: the generator's architecture is used."
                    )
                self.policy_kwargs[key] = value
            for key, value in source_policy_kwargs.items():  # the source model's latent_bound, unless given
                self.policy_kwargs.setdefault(key, value)

        # The residual head is part of the policy's architecture: policy_kwargs carries it, so save/load rebuild it.
        residual_scale = float(self.residual_scale) if self.generator_mode == "residual" else None
        if "residual_scale" in self.policy_kwargs and (self.policy_kwargs["residual_scale"] is None) != (
            residual_scale is None
        ):
            has = "has no" if self.policy_kwargs["residual_scale"] is None else "has a"
            raise UserInputError(
                f"This policy {has} residual head (policy_kwargs['residual_scale']={self.policy_kwargs['residual_scale']!r}), "
                f"but generator_mode={self.generator_mode!r} {'needs one' if residual_scale is not None else 'has none'}. "
                "A saved model keeps its architecture: reload it without changing generator_mode to or from 'residual'. "
                "When building a model, leave residual_scale out of policy_kwargs (generator_mode='residual' sets it)."
            )
        self.policy_kwargs["residual_scale"] = residual_scale

        target_entropy_auto = self.target_entropy == "auto"
        super()._setup_model()
        if target_entropy_auto:
            # The entropy is on the latent code: -latent_dim, as SAC's -action_dim.
            self.target_entropy = float(-self.policy.latent_dim)
        # SPiRL-style target divergence: 0.5 nats per latent dimension (see docs/modules/latent_sac.md, Comments).
        self.target_kl = 0.5 * self.policy.latent_dim if self.target_kl == "auto" else float(self.target_kl)

        if pretrained is not None:
            self.action_generator.load_state_dict(pretrained.state_dict())
            self._generator_warmed_up = True
            self._action_generator_source = None

        self.generator_lr_schedule = (
            self.lr_schedule if self.generator_learning_rate is None else FloatSchedule(self.generator_learning_rate)
        )
        self._setup_generator_optimizer()
        # generator_diagnostics(): the last minibatch's states and a private random stream (not saved).
        self._diagnostic_obs: th.Tensor | None = None
        self._diagnostic_rng = th.Generator(device=self.device).manual_seed(0)
        # concurrent_update: the second thread, and the copies of the modules that thread updates (not saved).
        self._update_executor: ThreadPoolExecutor | None = None
        self._reader_copies: dict[str, _ReaderCopy[Any]] = {}
        self._update_process_handle: UpdateProcess | None = None

    def _check_options(self) -> None:
        if self.generator_mode not in GENERATOR_MODES:
            raise UserInputError(f"generator_mode must be one of {GENERATOR_MODES}, got {self.generator_mode!r}.")
        if self.policy_regularizer not in POLICY_REGULARIZERS:
            raise UserInputError(f"policy_regularizer must be one of {POLICY_REGULARIZERS}, got {self.policy_regularizer!r}.")
        if isinstance(self.residual_scale, bool) or not isinstance(self.residual_scale, (int, float)):
            raise UserInputError(f"residual_scale must be a number in (0, 2], got {self.residual_scale!r}.")
        if not 0 < self.residual_scale <= 2:
            raise UserInputError(
                f"residual_scale must be in (0, 2] (a bound on SB3's [-1, 1] action scale), got {self.residual_scale}."
            )
        if self.concurrent_update not in CONCURRENT_UPDATES:
            raise UserInputError(
                f"concurrent_update must be one of {CONCURRENT_UPDATES}, got {self.concurrent_update!r} (None: one core; "
                "'thread' or 'process': a second core, see docs/performance.md)."
            )
        if self.concurrent_update == "process":
            check_update_process_supported(self.device)
        if self.concurrent_update == "thread" and self.actor_trains_generator:
            raise UserInputError(
                "concurrent_update='thread' updates the generator on a second thread while the actor's loss reads "
                "it, so the actor's loss cannot also update its decoder (actor_trains_generator=True). Use "
                "concurrent_update='process', or one of the two."
            )
        if not (self.target_kl == "auto" or (isinstance(self.target_kl, (int, float)) and self.target_kl >= 0)):
            raise UserInputError(f"target_kl must be 'auto' or a number >= 0 (nats), got {self.target_kl!r}.")

    def _setup_generator_optimizer(self) -> None:
        # The generator has its own optimiser and learning rate (fused Adam: one kernel for all parameters).
        generator_params = self.action_generator.parameters()
        self.generator_optimizer = th.optim.Adam(generator_params, lr=self.generator_lr_schedule(1), fused=True)
        # Parameter lists of the hot loop, built once.
        self._actor_update_params: list[th.Tensor] = list(self.actor.parameters())
        if self.actor_trains_generator:
            self._actor_update_params += list(self.action_generator.decoder_net.parameters())
        self._critic_params: list[th.Tensor] = list(self.critic.parameters())
        self._critic_target_params: list[th.Tensor] = list(self.critic_target.parameters())

    def _create_aliases(self) -> None:
        super()._create_aliases()
        self.action_generator = self.policy.action_generator

    def _load_generator(self, source: GeneratorSource) -> tuple[ActionGenerator, dict[str, Any]]:
        if isinstance(source, ActionGenerator):
            return source, {}
        from sb3_latent.transfer.latent import load_generator  # model zips and rl-zoo3 run folders

        return load_generator(source, device=self.device)

    def load_action_generator(self, path_or_generator: GeneratorSource) -> None:
        """
        Replace this model's action generator by a saved one (or a module, used as it is: not copied); its optimiser
        starts afresh.

        :param path_or_generator: a file written by ``save_action_generator`` / ``ActionGenerator.save``, a module,
            a LatentSAC model, its saved zip or its rl-zoo3 run folder
        """
        generator, _ = self._load_generator(path_or_generator)
        self.policy.set_action_generator(generator)
        self.policy_kwargs.update(self.policy.generator_policy_kwargs())
        self._create_aliases()
        self._setup_generator_optimizer()
        self._generator_warmed_up = True

    def share_action_generator(self, other: LatentSAC) -> None:
        """
        Use ``other``'s action generator and generator optimiser, the same objects (multi-task training, poster
        Figure 1): the generator updates of either model then train the one generator, each on its own task's
        replay data. The warm-up stays per model.

        :param other: a LatentSAC with the same observation and action shapes and latent size
        """
        self.policy.set_action_generator(other.action_generator)
        self.policy_kwargs.update(self.policy.generator_policy_kwargs())
        self._create_aliases()
        self._setup_generator_optimizer()  # the parameter lists of the hot loop
        self.generator_optimizer = other.generator_optimizer

    def save_action_generator(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        """
        Save the action generator alone (architecture and weights), to be loaded into another LatentSAC.

        :param path: file path or file-like object
        """
        self.action_generator.save(path)

    # Every loss term of the update lives in this one function, on purpose (docs/modules/latent_sac.md), hence its
    # branch count: the generator modes, the residual head and the two regularisers each add one.
    def train(self, gradient_steps: int, batch_size: int = 64) -> None:  # noqa: C901
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        # Update optimizers learning rate
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers += [self.ent_coef_optimizer]
        self._update_learning_rate(optimizers)
        generator_lr = self.generator_lr_schedule(self._current_progress_remaining)
        update_learning_rate(self.generator_optimizer, generator_lr)
        self.logger.record("train/generator_learning_rate", generator_lr)

        assert self.replay_buffer is not None
        generator = self.action_generator
        log_2pi = 0.5 * generator.action_dim * math.log(2.0 * math.pi)

        # ---------------- Action generator: maximise J = E_q[log g(a|s,z)] - beta KL(q(z|s,a) || p(z)) (Fig. 2)
        def elbo_step(generator_obs: th.Tensor, actions: th.Tensor, noise: th.Tensor) -> th.Tensor:
            """One generator update on (s, a) pairs; ``noise`` ~ N(0, I) is drawn by the caller (see below)."""
            # z ~ q(z|s,a), reparameterised: z = mu_q + sigma_q * eps
            z_mean, z_log_std = generator.encode(generator_obs, actions)
            z_q = z_mean + z_log_std.exp() * noise
            # -E_q[log g(a|s,z)]: Gaussian on the scaled action, tanh-bounded mean, learned state-independent
            # log-std; finite at a = +-1 where a tanh-Gaussian's atanh(a) is not.
            decoder_log_std = generator.decoder_log_std_clamped()
            error = (actions - generator.decode(generator_obs, z_q)) * th.exp(-decoder_log_std)
            reconstruction_loss = (0.5 * error.pow(2) + decoder_log_std).sum(dim=1).mean() + log_2pi
            # KL(q(z|s,a) || p(z|s)) between diagonal Gaussians, summed over latent dims
            if generator.prior_net is None:  # p(z) = N(0, I): the closed form with mu_p = 0, sigma_p = 1
                kl = 0.5 * ((2.0 * z_log_std).exp() + z_mean.pow(2)) - z_log_std - 0.5
            else:  # learned p(z|s)
                prior_mean, prior_log_std = generator.prior_distribution(generator_obs)
                kl = (
                    prior_log_std
                    - z_log_std
                    + 0.5 * ((2.0 * z_log_std).exp() + (z_mean - prior_mean).pow(2)) * th.exp(-2.0 * prior_log_std)
                    - 0.5
                )
            kl_loss = kl.sum(dim=1).mean()
            generator_loss = reconstruction_loss + self.kl_weight * kl_loss  # -J
            self.generator_optimizer.zero_grad(set_to_none=True)
            generator_loss.backward()
            self.generator_optimizer.step()
            return th.stack([reconstruction_loss.detach(), kl_loss.detach()])

        # Logged values stay on the device as tensors: one host transfer per train() call, none per step.
        rl_stats: list[th.Tensor] = []
        generator_stats: list[th.Tensor] = []

        # The ELBO step's noise is drawn by the caller, in this thread and in a fixed order, so that the concurrent
        # mode below stays reproducible.
        def sample_noise(batch: th.Tensor) -> th.Tensor:
            return th.randn((batch.shape[0], generator.latent_dim), device=self.device)

        # First call: fit the generator to the random-exploration data before the latent policy relies on it.
        n_warmup = 0
        if self.train_generator and not self._generator_warmed_up:
            n_warmup = self.generator_warmup_steps
            self._generator_warmed_up = True
        for _ in range(n_warmup):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            generator_obs = self.policy.generator_input(replay_data.observations)
            with one_torch_thread():
                generator_stats.append(elbo_step(generator_obs, replay_data.actions, sample_noise(replay_data.actions)))

        # Where the updates of one gradient step run (concurrent_update, docs/performance.md "Both cores"):
        # None: all on this thread, the RL losses reading the generator just updated.
        # "thread": the ELBO step on a second thread; the RL losses read a copy of the generator as it was before
        #   that step (one update behind), which catches up after each step.
        # "process": the soft target, the critic's and target networks' updates in a child process
        #   (update_process.py), the temperature's, latent policy's and generator's here. The latent policy's loss
        #   reads a copy of the critic as it was before this step's critic update, and the RL losses read the
        #   generator as it was before this step's ELBO update.
        mode = self.concurrent_update
        generator_reader = self._reader_copy("generator", generator) if mode == "thread" and self.train_generator else None
        rl_generator = generator_reader.copy if generator_reader is not None else generator
        critic_reader = self._reader_copy("critic", self.critic) if mode == "process" else None
        update_process: UpdateProcess | None = None
        n_updates_before = self._n_updates
        # The regulariser alpha weighs, and the value alpha is tuned toward (see the temperature step below).
        prior_kl = self.policy_regularizer == "prior_kl"
        regularizer_target = -float(self.target_kl) if prior_kl else float(self.target_entropy)  # type: ignore[arg-type]
        zero = th.zeros((), device=self.device)

        # ---------------- Latent policy sample: z ~ pi(z|s) (reparameterised), log pi(z|s), residual action r(s)
        def sample_latent_policy(
            observations: th.Tensor, generator_obs: th.Tensor, noise: th.Tensor | None = None
        ) -> LatentSample:
            latent_pi, log_prob, residual_pi = self.actor.sample_latent(observations, noise)
            log_prob = log_prob.reshape(-1, 1)
            # The regulariser alpha weighs, one sample at z. "entropy" (SAC): log pi(z|s), an entropy bonus.
            # "prior_kl" (SPiRL): log pi(z|s) - log p(z|s), whose mean estimates KL(pi(z|s) || p(z|s)). Both are
            # densities on z itself (log pi includes the tanh and latent_bound Jacobians), so their difference is one.
            regularizer = log_prob - rl_generator.prior_log_prob(generator_obs, latent_pi) if prior_kl else log_prob
            return LatentSample(latent_pi, log_prob, residual_pi, regularizer)

        # ---------------- Temperature: J(alpha) = E[-alpha (regularizer + target)]: with the entropy,
        # target = target_entropy (SAC); with the KL, target = -target_kl, so alpha grows while KL > target_kl.
        def temperature_step(regularizer: th.Tensor) -> th.Tensor:
            if self.ent_coef_optimizer is None or self.log_ent_coef is None:
                return zero
            ent_coef_loss = -(self.log_ent_coef * (regularizer + regularizer_target).detach()).mean()
            self.ent_coef_optimizer.zero_grad(set_to_none=True)
            ent_coef_loss.backward()
            self.ent_coef_optimizer.step()
            return ent_coef_loss

        # ---------------- Critic on the env action (Fig. 2, soft Bellman):
        # y = r + gamma (1 - d) (min_i Q'_i(s', a') - alpha regularizer(z'|s')),  z' ~ pi(z|s'),
        # a' = mean of g(a|s', z') (+ r(s'), clipped to [-1, 1], in residual mode)
        @th.no_grad()
        def soft_target(replay_data: Any, ent_coef: th.Tensor, noise: th.Tensor | None = None) -> th.Tensor:
            next_latent, next_log_prob, next_residual = self.actor.sample_latent(replay_data.next_observations, noise)
            next_generator_obs = self.policy.generator_input(replay_data.next_observations)
            next_actions = rl_generator.decode(next_generator_obs, next_latent)
            if next_residual is not None:
                next_actions = (next_actions + next_residual).clamp(-1.0, 1.0)
            next_regularizer = next_log_prob.reshape(-1, 1)
            if prior_kl:
                next_regularizer = next_regularizer - rl_generator.prior_log_prob(next_generator_obs, next_latent)
            next_q_values = th.cat(self.critic_target(replay_data.next_observations, next_actions), dim=1)
            next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
            next_q_values = next_q_values - ent_coef * next_regularizer
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            return replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

        # 0.5 sum_i E[(Q_i(s, a) - y)^2], a = the replay buffer's env action
        def critic_step(observations: th.Tensor, actions: th.Tensor, target_q_values: th.Tensor) -> th.Tensor:
            current_q_values = self.critic(observations, actions)
            critic_loss = 0.5 * sum(F.mse_loss(current_q, target_q_values) for current_q in current_q_values)
            assert isinstance(critic_loss, th.Tensor)
            self.critic.optimizer.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.critic.optimizer.step()
            return critic_loss

        # ---------------- Latent policy: E[alpha regularizer(z|s) - min_i Q_i(s, a)], z ~ pi(z|s) (Fig. 2),
        # a = g_mean(s, z), or clip(g_mean(s, z) + r(s), -1, 1) in residual mode: the critic scores the final action.
        # The gradient reaches Q through the decoder mean (and log p(z|s) through z), but backward(inputs=...) only
        # computes the latent policy's weight gradients (its residual head included): the critic, the prior and (by
        # default) the decoder get none, and no time is spent on them.
        def latent_policy_step(
            observations: th.Tensor,
            generator_obs: th.Tensor,
            sample: LatentSample,
            ent_coef: th.Tensor,
            critic: th.nn.Module,
            before_step: Callable[[], None] | None = None,
        ) -> th.Tensor:
            latent_pi, _, residual_pi, regularizer = sample
            actions_pi = rl_generator.decode(generator_obs, latent_pi)
            if residual_pi is not None:
                actions_pi = (actions_pi + residual_pi).clamp(-1.0, 1.0)
            min_qf_pi, _ = th.min(th.cat(critic(observations, actions_pi), dim=1), dim=1, keepdim=True)
            actor_loss = (ent_coef * regularizer - min_qf_pi).mean()
            self.actor.optimizer.zero_grad(set_to_none=True)
            if self.actor_trains_generator:
                self.generator_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward(inputs=self._actor_update_params)
            if before_step is not None:
                before_step()  # "process" mode: wait until the soft target has read the latent policy and the generator
            self.actor.optimizer.step()
            if self.actor_trains_generator:
                self.generator_optimizer.step()
            return actor_loss

        # Update target networks: Q' <- tau Q + (1 - tau) Q' (same arithmetic as SB3's polyak_update, foreach)
        @th.no_grad()
        def update_target_networks(gradient_step: int) -> None:
            if gradient_step % self.target_update_interval == 0:
                th._foreach_mul_(self._critic_target_params, 1.0 - self.tau)
                th._foreach_add_(self._critic_target_params, self._critic_params, alpha=self.tau)

        # concurrent_update="process": the child process's part of a gradient step, on the shared minibatch.
        def child_step(
            replay_data: Any,
            ent_coef: th.Tensor,
            noise: th.Tensor,
            critic_lr: float,
            gradient_step: int,
            targets_read: Callable[[], None],
        ) -> th.Tensor:
            update_learning_rate(self.critic.optimizer, critic_lr)
            target_q_values = soft_target(replay_data, ent_coef, noise)
            targets_read()
            critic_loss = critic_step(replay_data.observations, replay_data.actions, target_q_values)
            update_target_networks(gradient_step)
            return critic_loss

        for gradient_step in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            observations, actions = replay_data.observations, replay_data.actions  # actions scaled to [-1, 1]
            generator_obs = self.policy.generator_input(observations)
            elbo_due = self.train_generator and (n_updates_before + gradient_step) % self.generator_train_freq == 0
            # alpha as it was before this step's temperature update, in the target and the latent policy's loss (SAC)
            ent_coef = self.ent_coef_tensor if self.log_ent_coef is None else th.exp(self.log_ent_coef.detach())

            if mode == "process":
                if update_process is None:
                    update_process = self._update_process(replay_data, ent_coef, child_step)
                assert critic_reader is not None
                critic_reader.sync()  # the critic after the previous step's update
                next_noise = th.randn((observations.shape[0], self.policy.latent_dim), device=self.device)
                critic_lr = self.critic.optimizer.param_groups[0]["lr"]
                update_process.start_step(replay_data, ent_coef, next_noise, critic_lr, gradient_step)
                try:
                    sample = sample_latent_policy(observations, generator_obs)
                    ent_coef_loss = temperature_step(sample.regularizer)
                    actor_loss = latent_policy_step(
                        observations, generator_obs, sample, ent_coef, critic_reader.copy, update_process.wait_targets_read
                    )
                    if elbo_due:  # after the soft target has read the generator (latent_policy_step waited for it)
                        generator_stats.append(elbo_step(generator_obs, actions, sample_noise(actions)))
                    critic_loss = update_process.finish_step()
                except BaseException:
                    self._close_update_process()  # its messages of this step are unread: start afresh next time
                    raise
            else:
                if generator_reader is not None:
                    generator_reader.sync()  # the generator as it is before this step's update
                pending_elbo_step = None
                if elbo_due and generator_reader is not None:
                    pending_elbo_step = self._update_worker().submit(elbo_step, generator_obs, actions, sample_noise(actions))
                elif elbo_due:
                    with one_torch_thread():
                        generator_stats.append(elbo_step(generator_obs, actions, sample_noise(actions)))
                sample = sample_latent_policy(observations, generator_obs)
                ent_coef_loss = temperature_step(sample.regularizer)
                critic_loss = critic_step(observations, actions, soft_target(replay_data, ent_coef))
                actor_loss = latent_policy_step(observations, generator_obs, sample, ent_coef, self.critic)
                update_target_networks(gradient_step)
                if pending_elbo_step is not None:
                    generator_stats.append(pending_elbo_step.result())

            _, log_prob, residual_pi, regularizer = sample
            latent_entropy = -log_prob.detach().mean()  # H[pi(z|s)], estimated by -E[log pi(z|s)]
            prior_divergence = regularizer.detach().mean() if prior_kl else zero  # KL(pi(z|s) || p(z|s)) estimate
            residual_magnitude = residual_pi.detach().abs().mean() if residual_pi is not None else zero
            rl_stats.append(
                th.stack(
                    [
                        critic_loss.detach(),
                        actor_loss.detach(),
                        ent_coef_loss.detach(),
                        ent_coef.reshape(()),
                        latent_entropy,
                        prior_divergence,
                        residual_magnitude,
                    ]
                )
            )

        self._n_updates += gradient_steps
        self._n_generator_updates += len(generator_stats)

        # States for the generator diagnostics, computed only when the logs are written (dump_logs).
        self._diagnostic_obs = generator_obs[:SPREAD_STATES]
        self._record_train_stats(rl_stats, generator_stats, n_updates_before, n_warmup)

    def _update_worker(self) -> ThreadPoolExecutor:
        """The second thread of concurrent_update="thread" (one per model, started at its first use)."""
        if self._update_executor is None:
            self._update_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="latent-sac-update")
        return self._update_executor

    def _update_process(self, batch: Any, ent_coef: th.Tensor, child_step: Callable[..., Any]) -> UpdateProcess:
        """The child process of concurrent_update="process", forked anew when the tensors it shares were replaced."""
        shared = [
            *self.actor.parameters(),
            *self.action_generator.parameters(),
            *self._critic_params,
            *self._critic_target_params,
            *materialized_state(self.critic.optimizer),
        ]
        if self._update_process_handle is None or not self._update_process_handle.serves(shared, batch):
            if th.get_num_threads() > 1:
                warnings.warn(
                    f"concurrent_update='process' trains on one torch thread in each of two processes, but torch uses "
                    f"{th.get_num_threads()} threads here, and their idle workers would take the child process's core "
                    "(61 against 115 env steps/s on HalfCheetah, 2 cores). Setting torch.set_num_threads(1) in this "
                    "process; call it before training (rl-zoo3: --num-threads 1) to silence this warning.",
                    stacklevel=2,
                )
                th.set_num_threads(1)
            self._close_update_process()
            self._update_process_handle = UpdateProcess(shared, batch, self.policy.latent_dim, ent_coef, child_step)
            weakref.finalize(self, self._update_process_handle.close)
        return self._update_process_handle

    def _close_update_process(self) -> None:
        if self._update_process_handle is not None:
            self._update_process_handle.close()
            self._update_process_handle = None

    def _reader_copy(self, name: str, module: ModuleT) -> _ReaderCopy[ModuleT]:
        """A gradient-free copy of ``module`` for losses that read it while another thread or process updates it
        (concurrent_update); the caller syncs it before each step. Rebuilt when ``module`` was replaced (a loaded or
        shared generator)."""
        cached = self._reader_copies.get(name)
        if cached is None or cached.source is not module:
            cached = _ReaderCopy(module)
            self._reader_copies[name] = cached
        return cached

    def generator_diagnostics(self) -> dict[str, float]:
        """
        ``action_spread_over_z``: std of the decoded action g_mean(s, z) over ``SPREAD_CODES`` prior codes per state,
        averaged over the last minibatch's first ``SPREAD_STATES`` states and the action dims (0: the decoder ignores
        z); ``decoder_std``: the decoder's mean sigma_g. Empty before the first gradient step.

        The codes come from a private random generator, so how often this runs (``log_interval``) never changes
        the training's random numbers.
        """
        if self._diagnostic_obs is None:
            return {}
        generator, obs = self.action_generator, self._diagnostic_obs
        with th.no_grad():
            codes = generator.sample_prior(obs, SPREAD_CODES, generator=self._diagnostic_rng)
            codes = codes.clamp(-self.actor.latent_bound, self.actor.latent_bound)
            decoded = generator.decode(obs.repeat(SPREAD_CODES, 1), codes.flatten(0, 1))
            action_spread = decoded.reshape(SPREAD_CODES, obs.shape[0], -1).std(dim=0).mean()
            decoder_std = generator.decoder_log_std_clamped().exp().mean()
        return {"action_spread_over_z": float(action_spread), "decoder_std": float(decoder_std)}

    def dump_logs(self) -> None:
        for name, value in self.generator_diagnostics().items():
            self.logger.record(f"train/{name}", value)
        super().dump_logs()

    def _record_train_stats(
        self,
        rl_stats: list[th.Tensor],
        generator_stats: list[th.Tensor],
        n_updates_before: int,
        n_warmup: int,
    ) -> None:
        """Move the statistics of one train() call to the host (its one transfer), check them, and log them."""
        n_rl, n_generator = len(rl_stats) * len(RL_STATS), len(generator_stats) * len(GENERATOR_STATS)
        flat = th.cat([*rl_stats, *generator_stats]).cpu().numpy()
        rl_values = flat[:n_rl].reshape(-1, len(RL_STATS))
        generator_values = flat[n_rl : n_rl + n_generator].reshape(-1, len(GENERATOR_STATS))
        self._check_finite(rl_values, generator_values, n_updates_before, n_warmup)

        rl_means = dict(zip(RL_STATS, rl_values.mean(axis=0), strict=True))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/n_generator_updates", self._n_generator_updates, exclude="tensorboard")
        for name in ("critic_loss", "actor_loss", "ent_coef", "latent_entropy"):
            self.logger.record(f"train/{name}", float(rl_means[name]))
        if self.ent_coef_optimizer is not None:
            self.logger.record("train/ent_coef_loss", float(rl_means["ent_coef_loss"]))
        if self.policy_regularizer == "prior_kl":
            self.logger.record("train/prior_kl", float(rl_means["prior_kl"]))
        if self.generator_mode == "residual":
            self.logger.record("train/residual_magnitude", float(rl_means["residual_magnitude"]))
        if len(generator_values) > 0:
            reconstruction, kl = generator_values[-len(rl_values) :].mean(axis=0)  # warm-up rows excluded
            self.logger.record("train/reconstruction_loss", float(reconstruction))
            self.logger.record("train/kl_loss", float(kl))
            self.logger.record("train/elbo", float(-(reconstruction + kl)))
            self.logger.record("train/generator_loss", float(reconstruction + self.kl_weight * kl))

    def _check_finite(self, rl_values: np.ndarray, generator_values: np.ndarray, n_updates_before: int, n_warmup: int) -> None:
        """Raise (before any callback can save the model) when a loss became NaN or infinite."""
        for values, names, kind in ((generator_values, GENERATOR_STATS, "generator"), (rl_values, RL_STATS, "gradient")):
            bad = ~np.isfinite(values)
            if not bad.any():
                continue
            row, column = np.argwhere(bad)[0]
            if kind == "generator":
                where = (
                    f"generator warm-up update {row + 1}/{n_warmup}"
                    if row < n_warmup
                    else f"generator update {self._n_generator_updates - len(values) + row + 1}"
                )
            else:
                where = f"gradient step {n_updates_before + row + 1}"
            raise ValueError(
                f"LatentSAC: {names[column]} is {values[row, column]} at {where} (num_timesteps={self.num_timesteps}). "
                "Training stopped before any callback could save this model, so the last saved model is intact. "
                "Check the env for NaN/inf observations or rewards (VecCheckNan), normalise them (VecNormalize), "
                "or lower learning_rate / generator_learning_rate / kl_weight."
            )

    def learn(
        self: SelfLatentSAC,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "LatentSAC",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfLatentSAC:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "action_generator",
            "_action_generator_source",
            "_actor_update_params",
            "_critic_params",
            "_critic_target_params",
            "_diagnostic_obs",
            "_diagnostic_rng",
            "_update_process_handle",
            "_reader_copies",
            "_update_executor",
        ]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, saved_pytorch_variables = super()._get_torch_save_params()
        return [*state_dicts, "generator_optimizer"], saved_pytorch_variables


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block on one torch thread, whatever the process uses (switching costs well under a microsecond).

    The generator's 64-wide layers are too small to share out: on two threads its update took ~1.6 ms against
    ~1.1 ms on one (2-core CPU, batch 256). The setting is process-wide, so this is for the training thread only.
    """
    n_threads = th.get_num_threads()
    if n_threads == 1:
        yield
        return
    th.set_num_threads(1)
    try:
        yield
    finally:
        th.set_num_threads(n_threads)


class _ReaderCopy(Generic[ModuleT]):
    """A gradient-free deep copy of a module, and its parameter lists, so that catching up costs one foreach copy."""

    def __init__(self, source: ModuleT):
        self.source = source
        self.copy = copy.deepcopy(source).requires_grad_(False)
        self._source_params: list[th.Tensor] = list(source.parameters())
        self._copy_params: list[th.Tensor] = list(self.copy.parameters())

    def sync(self) -> None:
        with th.no_grad():
            th._foreach_copy_(self._copy_params, self._source_params)


def _resolve_generator_mode(generator_mode: str | None, train_generator: bool | None) -> str:
    """``generator_mode``, or the one the older ``train_generator`` flag means; refuses a contradiction of the two."""
    if generator_mode is None:
        return "frozen" if train_generator is False else "train"
    if generator_mode not in GENERATOR_MODES:
        raise UserInputError(f"generator_mode must be one of {GENERATOR_MODES}, got {generator_mode!r}.")
    if train_generator is not None and bool(train_generator) != (generator_mode in TRAINED_GENERATOR_MODES):
        raise UserInputError(
            f"train_generator={train_generator} contradicts generator_mode={generator_mode!r}. "
            "Leave train_generator out: generator_mode alone says whether the generator trains."
        )
    return generator_mode


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
