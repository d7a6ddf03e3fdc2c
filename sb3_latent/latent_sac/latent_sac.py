"""Latent Soft Actor-Critic: SAC over latent codes z, decoded into env actions by a conditional-VAE action generator."""

from __future__ import annotations

import io
import pathlib
from typing import Any, ClassVar, NamedTuple, TypeVar, Union

import numpy as np
import torch as th
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, ReplayBufferSamples, Schedule, TrainFreq
from stable_baselines3.common.utils import FloatSchedule, polyak_update, update_learning_rate
from stable_baselines3.sac.sac import SAC
from torch.nn import functional as F

from sb3_latent.common.action_generator import (
    DEFAULT_DECODER,
    DEFAULT_LATENT_BOUND,
    PREVIOUS_DEFAULTS,
    ActionGenerator,
)
from sb3_latent.common.checks import is_finite, is_int, is_number
from sb3_latent.errors import UserInputError
from sb3_latent.latent_sac.policies import (
    CnnPolicy,
    LatentActor,
    LatentSACPolicy,
    MlpPolicy,
    MultiInputPolicy,
    check_spaces,
    generator_policy_kwargs,
)

SelfLatentSAC = TypeVar("SelfLatentSAC", bound="LatentSAC")
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
# "residual": frozen, and the latent policy also emits a bounded residual action added to the decoded one;
# "fixed": the built-in generator, as initialised, is never updated (no source; an ablation, docs/modules/latent_sac.md).
GENERATOR_MODES = ("train", "finetune", "frozen", "residual", "fixed")
FIXED_GENERATOR_MODES = ("frozen", "residual", "fixed")
TRAINED_GENERATOR_MODES = ("train", "finetune")
TRANSFER_MODES: tuple[str, ...] = ("frozen", "finetune", "residual")  # the modes that start from action_generator=
# What the temperature alpha weighs in the latent policy's objective.
POLICY_REGULARIZERS = ("entropy", "prior_kl")


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

    :param policy: The policy model to use (``"MlpPolicy"``, ``"CnnPolicy"``, ``"MultiInputPolicy"`` or a
        ``LatentSACPolicy`` subclass), or the env when it is the only argument
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
    :param use_sde: Whether to use generalized State Dependent Exploration (gSDE) on the latent policy:
        state-dependent noise on the pre-squash latent code instead of i.i.d. noise (the decoder then acts by its mean)
    :param sde_sample_freq: Sample a new noise matrix every n steps when using gSDE
        Default: -1 (only sample at the beginning of the rollout)
    :param use_sde_at_warmup: Whether to use gSDE instead of uniform sampling
        during the warm up phase (before learning starts)
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
    :param actor_trains_generator: whether the actor's loss also updates the decoder (default False: otherwise the
        decoder becomes the policy and learns to ignore z); refused with ``generator_mode="frozen"`` or ``"residual"``
    :param action_generator: a pretrained generator to start from: an ``ActionGenerator``, a generator file written
        by ``save_action_generator``, a LatentSAC model, its saved zip, or its rl-zoo3 run folder; its architecture
        overrides the generator entries of ``policy_kwargs``. With ``-i`` (``load``) it is ignored: the saved
        generator is kept
    :param generator_mode: what happens to the action generator: ``"train"`` (default: trained by the ELBO, from
        scratch unless ``action_generator`` is given), ``"finetune"`` (the given generator keeps training, at
        ``generator_learning_rate``), ``"frozen"`` (the given generator never changes) or ``"residual"`` (frozen, and
        the latent policy also emits a residual action bounded by ``residual_scale``); these three need
        ``action_generator``. ``"fixed"``: the built-in generator, as initialised, never changes (no
        ``action_generator``; with ``decoder="identity"`` and ``latent_bound=1`` this is SAC). A learned prior p(z|s) is
        part of the generator: frozen or trained with it
    :param residual_scale: bound of the residual action in ``generator_mode="residual"``, on SB3's [-1, 1] action
        scale (0.2: a tenth of the action range); the final action is clip(decoded + residual, -1, 1)
    :param policy_regularizer: what the temperature alpha weighs in the latent policy's objective: ``"entropy"``
        (default, SAC's entropy bonus on z) or ``"prior_kl"`` (SPiRL's -alpha KL(pi(z|s) || p(z|s)), estimated at the
        sampled z; p is the generator's prior, N(0, I) or the learned p(z|s))
    :param target_kl: with ``policy_regularizer="prior_kl"`` and ``ent_coef="auto"``, alpha is tuned so that
        KL(pi(z|s) || p(z|s)) approaches ``target_kl`` nats; ``"auto"`` is ``0.5 * latent_dim``
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
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
        actor_trains_generator: bool = False,
        action_generator: GeneratorSource | None = None,
        generator_mode: str = "train",
        residual_scale: float = 0.2,
        policy_regularizer: str = "entropy",
        target_kl: str | float = "auto",
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
            check_spaces(env.observation_space, env.action_space)
        # Here, not in _check_options: SB3's constructor writes into policy_kwargs (load cannot change them).
        if policy_kwargs is not None and not isinstance(policy_kwargs, dict):
            raise UserInputError(f"policy_kwargs must be a dict (e.g. dict(latent_dim=6)), got {policy_kwargs!r}.")
        # LatentSAC's own options, checked with SAC's in _check_options (at construction and at load).
        self.kl_weight = kl_weight
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
        if action_generator is None:
            # Written into policy_kwargs, so that the saved zip records them: a zip without them was saved before
            # the defaults changed (see _setup_model). A given generator brings its own.
            self.policy_kwargs = {"decoder": DEFAULT_DECODER, "latent_bound": DEFAULT_LATENT_BOUND, **self.policy_kwargs}
        if generator_mode in TRANSFER_MODES and action_generator is None:
            raise UserInputError(
                f"generator_mode={generator_mode!r} transfers a pretrained action generator, but none was given. Pass "
                "action_generator=<generator file, LatentSAC zip or rl-zoo3 run folder> (in rl-zoo3: -params "
                "action_generator:\"'path'\"), or use generator_mode='train' to train one from scratch."
            )
        if generator_mode == "fixed" and action_generator is not None:
            raise UserInputError(
                "generator_mode='fixed' keeps the built-in generator as initialised, but an action_generator was given. "
                "Use generator_mode='frozen' to keep a pretrained generator fixed."
            )
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        # SB3's load() sets the saved attributes and its keyword arguments (rl-zoo3's -i: the YAML and -params)
        # directly, so the options are checked here too.
        self._check_options()

        # A pretrained generator fixes the generator's shape: merge it into policy_kwargs before the policy is built.
        pretrained = None
        if self._action_generator_source is None:
            # Without a pretrained generator, __init__ wrote the defaults in: a loaded zip that lacks them was saved
            # before they changed, and was built with the previous ones.
            for key, value in PREVIOUS_DEFAULTS.items():
                self.policy_kwargs.setdefault(key, value)
        else:
            pretrained = self._load_generator(self._action_generator_source)
            pretrained.check_spaces(self.observation_space, self.action_space)
            for key, value in generator_policy_kwargs(pretrained).items():
                if key in self.policy_kwargs and self.policy_kwargs[key] != value:
                    raise UserInputError(
                        f"policy_kwargs[{key!r}]={self.policy_kwargs[key]!r} contradicts the given action generator "
                        f"({key}={value!r}). Leave {key!r} out of policy_kwargs: the generator's architecture is used."
                    )
                self.policy_kwargs[key] = value

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

    def _check_options(self) -> None:
        """Every LatentSAC option, SAC's and its own, checked in one place: at construction, and at load with its
        overrides (rl-zoo3's -i: the YAML and -params). Each message names the problem and a value that works.
        """
        self._check_sac_options()
        # LatentSAC's own arguments.
        if not (is_finite(self.kl_weight) and self.kl_weight >= 0):
            raise UserInputError(f"kl_weight must be a finite number >= 0 (e.g. 0.5), got {self.kl_weight!r}.")
        self.kl_weight = float(self.kl_weight)
        _check_int("generator_train_freq", self.generator_train_freq, 1, "1")
        _check_int("generator_warmup_steps", self.generator_warmup_steps, 0, "1000")
        if self.generator_mode not in GENERATOR_MODES:
            raise UserInputError(f"generator_mode must be one of {GENERATOR_MODES}, got {self.generator_mode!r}.")
        if not isinstance(self.actor_trains_generator, (bool, np.bool_)):
            raise UserInputError(f"actor_trains_generator must be True or False, got {self.actor_trains_generator!r}.")
        if self.generator_mode in FIXED_GENERATOR_MODES and self.actor_trains_generator:
            raise UserInputError(
                f"generator_mode={self.generator_mode!r} keeps the generator fixed, but actor_trains_generator=True "
                "would update its decoder with the actor's loss. Use generator_mode='finetune', or "
                "actor_trains_generator=False."
            )
        if self.policy_regularizer not in POLICY_REGULARIZERS:
            raise UserInputError(f"policy_regularizer must be one of {POLICY_REGULARIZERS}, got {self.policy_regularizer!r}.")
        if not is_number(self.residual_scale):
            raise UserInputError(f"residual_scale must be a number in (0, 2], got {self.residual_scale!r}.")
        if not 0 < self.residual_scale <= 2:
            raise UserInputError(
                f"residual_scale must be in (0, 2] (a bound on SB3's [-1, 1] action scale), got {self.residual_scale}."
            )
        if not (self.target_kl == "auto" or (is_finite(self.target_kl) and self.target_kl >= 0)):
            raise UserInputError(f"target_kl must be 'auto' or a finite number >= 0 (nats), got {self.target_kl!r}.")

    def _check_sac_options(self) -> None:
        """SAC's arguments, for _check_options: SB3 checks none of them, and a bad one fails deep in numpy or torch,
        or trains on NaN."""
        _check_rate("learning_rate", self.learning_rate, "3e-4")
        if self.generator_learning_rate is not None:
            _check_rate("generator_learning_rate", self.generator_learning_rate, "3e-4, or None to use learning_rate")
        _check_int("buffer_size", self.buffer_size, 1, "1000000")
        _check_int("learning_starts", self.learning_starts, 0, "100")
        _check_int("batch_size", self.batch_size, 1, "256")
        _check_int("n_steps", self.n_steps, 1, "1")
        _check_int("target_update_interval", self.target_update_interval, 1, "1")
        _check_int("stats_window_size", self._stats_window_size, 1, "100")
        if not (is_int(self.gradient_steps) and self.gradient_steps >= -1):
            raise UserInputError(
                "gradient_steps must be an integer >= 0 (e.g. 1), or -1 for as many as env steps, "
                f"got {self.gradient_steps!r}."
            )
        _check_train_freq(self.train_freq)
        for name in ("tau", "gamma"):
            value = getattr(self, name)
            if not (is_number(value) and 0 <= value <= 1):
                raise UserInputError(
                    f"{name} must be a number in [0, 1] (e.g. {0.005 if name == 'tau' else 0.99}), got {value!r}."
                )
        _check_ent_coef(self.ent_coef)
        if not (self.target_entropy == "auto" or is_finite(self.target_entropy)):
            raise UserInputError(
                f"target_entropy must be 'auto' (-latent_dim) or a finite number, got {self.target_entropy!r}."
            )

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

    def _load_generator(self, source: GeneratorSource) -> ActionGenerator:
        from sb3_latent.zoo_runs import read_action_generator  # generator files, model zips and rl-zoo3 run folders

        return read_action_generator(source, LatentSAC, device=self.device)

    def load_action_generator(self, path_or_generator: GeneratorSource) -> None:
        """
        Replace this model's action generator by a saved one (or a module, used as it is: not copied); its optimiser
        starts afresh.

        :param path_or_generator: a file written by ``save_action_generator`` / ``ActionGenerator.save``, a module,
            a LatentSAC model, its saved zip or its rl-zoo3 run folder
        """
        generator = self._load_generator(path_or_generator)
        self.policy.set_action_generator(generator)
        self.policy_kwargs.update(generator_policy_kwargs(self.action_generator))
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
        self.policy_kwargs.update(generator_policy_kwargs(self.action_generator))
        self._create_aliases()
        self._setup_generator_optimizer()  # the parameter lists of the hot loop
        self.generator_optimizer = other.generator_optimizer

    def save_action_generator(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        """
        Save the action generator alone (architecture and weights), to be loaded into another LatentSAC.

        :param path: file path or file-like object
        """
        self.action_generator.save(path)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
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
        trains_generator = self.generator_mode in TRAINED_GENERATOR_MODES

        # Logged values stay on the device as tensors: one host transfer per train() call, none per step.
        rl_stats: list[th.Tensor] = []
        generator_stats: list[th.Tensor] = []

        # First call: fit the generator to the random-exploration data before the latent policy relies on it.
        n_warmup = 0
        if trains_generator and not self._generator_warmed_up:
            n_warmup, self._generator_warmed_up = self.generator_warmup_steps, True
        for _ in range(n_warmup):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            generator_stats.append(self._generator_step(self.policy.generator_input(replay_data.observations), replay_data))

        n_updates_before = self._n_updates
        extractor_learns = any(True for _ in self.action_generator.features_extractor.parameters())
        zero = th.zeros((), device=self.device)  # the logged value of a term this configuration does not have
        for gradient_step in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            observations, actions = replay_data.observations, replay_data.actions  # actions scaled to [-1, 1]
            # gSDE: a new exploration matrix at every gradient step, as SAC (log_std changed at the last one)
            if self.use_sde:
                self.actor.reset_noise()

            # Action generator: one ELBO step every generator_train_freq gradient steps, before the RL losses read it
            elbo_due = trains_generator and (n_updates_before + gradient_step) % self.generator_train_freq == 0
            if elbo_due:
                generator_obs = self.policy.generator_input(observations)
                generator_stats.append(self._generator_step(generator_obs, replay_data))
            # The RL losses read the state through the generator's extractor as it is now, with no gradient into it:
            # recomputed only where the ELBO step just moved a learned extractor (a flatten has nothing to move).
            if not elbo_due or extractor_learns:
                with th.no_grad():
                    generator_obs = self.policy.generator_input(observations)

            # alpha as it was before this step's temperature update, in the target and the latent policy's loss (SAC)
            ent_coef = self.ent_coef_tensor if self.log_ent_coef is None else th.exp(self.log_ent_coef.detach())
            # One z ~ pi(z|s), read by both the temperature's and the latent policy's loss
            sample = self._sample_latent_policy(observations, generator_obs)

            # Temperature
            ent_coef_loss = self._temperature_loss(sample.regularizer)
            if ent_coef_loss is not None:
                assert self.ent_coef_optimizer is not None
                self.ent_coef_optimizer.zero_grad(set_to_none=True)
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()

            # Critic, on the soft target with z' ~ pi(z|s')
            critic_loss = self._critic_loss(observations, actions, self._soft_target(replay_data, ent_coef))
            self.critic.optimizer.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.critic.optimizer.step()

            # Latent policy. backward(inputs=...) computes only its weight gradients (and the decoder's with
            # actor_trains_generator): the critic and the prior get none, and no time is spent on them.
            actor_loss = self._latent_policy_loss(observations, generator_obs, sample, ent_coef)
            self.actor.optimizer.zero_grad(set_to_none=True)
            if self.actor_trains_generator:
                self.generator_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward(inputs=self._actor_update_params)
            self.actor.optimizer.step()
            if self.actor_trains_generator:
                self.generator_optimizer.step()

            # Target networks: Q' <- tau Q + (1 - tau) Q' (the arithmetic of SB3's polyak_update, foreach)
            if gradient_step % self.target_update_interval == 0:
                with th.no_grad():
                    th._foreach_mul_(self._critic_target_params, 1.0 - self.tau)
                    th._foreach_add_(self._critic_target_params, self._critic_params, alpha=self.tau)
                # Batch-norm running statistics copied, as SAC does (SB3 issue #996); none without batch norm
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

            rl_stats.append(self._rl_stats(critic_loss, actor_loss, ent_coef_loss, ent_coef, sample, zero))

        self._n_updates += gradient_steps
        self._n_generator_updates += len(generator_stats)
        # States for the generator diagnostics, computed only when the logs are written (dump_logs).
        self._diagnostic_obs = generator_obs[:SPREAD_STATES]
        self._record_train_stats(rl_stats, generator_stats, n_updates_before, n_warmup)

    # ---------------- The update's terms, in the order train() runs them (docs/modules/latent_sac.md, "The update")

    def _generator_step(self, generator_obs: th.Tensor, replay_data: ReplayBufferSamples) -> th.Tensor:
        """One update of the action generator by its own loss (the ELBO); returns its logged (reconstruction, KL)."""
        generator_loss, stats = self.action_generator.loss(generator_obs, replay_data.actions, self.kl_weight)
        self.generator_optimizer.zero_grad(set_to_none=True)
        generator_loss.backward()
        self.generator_optimizer.step()
        return stats

    def _regularizer(self, generator_obs: th.Tensor, latent: th.Tensor, log_prob: th.Tensor) -> th.Tensor:
        """What alpha weighs, one sample at z. "entropy" (SAC): log pi(z|s), an entropy bonus. "prior_kl" (SPiRL):
        log pi(z|s) - log p(z|s), whose mean estimates KL(pi(z|s) || p(z|s)). Both are densities on z itself
        (log pi includes the tanh and latent_bound Jacobians), so their difference is one."""
        if self.policy_regularizer == "prior_kl":
            return log_prob - self.action_generator.prior_log_prob(generator_obs, latent)
        return log_prob

    def _decoded_actions(self, generator_obs: th.Tensor, latent: th.Tensor, residual: th.Tensor | None) -> th.Tensor:
        """The env action the critic scores: the decoder mean g_mean(s, z), plus r(s) clipped in residual mode."""
        actions = self.action_generator.decode(generator_obs, latent)
        return actions if residual is None else (actions + residual).clamp(-1.0, 1.0)

    def _sample_latent_policy(self, observations: th.Tensor, generator_obs: th.Tensor) -> LatentSample:
        """z ~ pi(z|s) (reparameterised), log pi(z|s), the residual action r(s) and the regulariser at z."""
        latent, log_prob, residual = self.actor.sample_latent(observations)
        log_prob = log_prob.reshape(-1, 1)
        return LatentSample(latent, log_prob, residual, self._regularizer(generator_obs, latent, log_prob))

    def _temperature_loss(self, regularizer: th.Tensor) -> th.Tensor | None:
        """J(alpha) = E[-log alpha (regularizer + target)]: with the entropy, target = target_entropy (SAC); with the
        KL, target = -target_kl, so alpha grows while KL > target_kl. ``None`` for a fixed ``ent_coef``."""
        if self.log_ent_coef is None:
            return None
        target = -float(self.target_kl) if self.policy_regularizer == "prior_kl" else float(self.target_entropy)
        return -(self.log_ent_coef * (regularizer + target).detach()).mean()

    @th.no_grad()
    def _soft_target(self, replay_data: ReplayBufferSamples, ent_coef: th.Tensor) -> th.Tensor:
        """y = r + gamma (1 - d) (min_i Q'_i(s', a') - alpha regularizer(z'|s')), z' ~ pi(z|s'), a' decoded from z'."""
        next_latent, next_log_prob, next_residual = self.actor.sample_latent(replay_data.next_observations)
        next_generator_obs = self.policy.generator_input(replay_data.next_observations)
        next_actions = self._decoded_actions(next_generator_obs, next_latent, next_residual)
        next_regularizer = self._regularizer(next_generator_obs, next_latent, next_log_prob.reshape(-1, 1))
        next_q_values = th.cat(self.critic_target(replay_data.next_observations, next_actions), dim=1)
        next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
        next_q_values = next_q_values - ent_coef * next_regularizer
        # For n-step replay, discount factor is gamma**n_steps (when no early termination)
        discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
        return replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

    def _critic_loss(self, observations: th.Tensor, actions: th.Tensor, target_q_values: th.Tensor) -> th.Tensor:
        """0.5 sum_i E[(Q_i(s, a) - y)^2] on the replay buffer's env actions a (the critic is Q(s, a), PLAS-style)."""
        current_q_values = self.critic(observations, actions)
        critic_loss = 0.5 * sum(F.mse_loss(current_q, target_q_values) for current_q in current_q_values)
        assert isinstance(critic_loss, th.Tensor)
        return critic_loss

    def _latent_policy_loss(
        self, observations: th.Tensor, generator_obs: th.Tensor, sample: LatentSample, ent_coef: th.Tensor
    ) -> th.Tensor:
        """E[alpha regularizer(z|s) - min_i Q_i(s, a)] (Fig. 2): the critic scores the decoded action of z, so the
        gradient reaches Q through the decoder mean (and log p(z|s) through z)."""
        actions_pi = self._decoded_actions(generator_obs, sample.latent, sample.residual)
        min_qf_pi, _ = th.min(th.cat(self.critic(observations, actions_pi), dim=1), dim=1, keepdim=True)
        return (ent_coef * sample.regularizer - min_qf_pi).mean()

    def _rl_stats(
        self,
        critic_loss: th.Tensor,
        actor_loss: th.Tensor,
        ent_coef_loss: th.Tensor | None,
        ent_coef: th.Tensor,
        sample: LatentSample,
        zero: th.Tensor,
    ) -> th.Tensor:
        """One gradient step's values of RL_STATS, as one device tensor (``zero`` for the terms not computed)."""
        return th.stack(
            [
                critic_loss.detach(),
                actor_loss.detach(),
                zero if ent_coef_loss is None else ent_coef_loss.detach(),
                ent_coef.reshape(()),
                -sample.log_prob.detach().mean(),  # H[pi(z|s)], estimated by -E[log pi(z|s)]
                sample.regularizer.detach().mean() if self.policy_regularizer == "prior_kl" else zero,
                zero if sample.residual is None else sample.residual.detach().abs().mean(),
            ]
        )

    def generator_diagnostics(self) -> dict[str, float]:
        """
        ``action_spread_over_z``: std of the decoded action g_mean(s, z) over ``SPREAD_CODES`` prior codes per state,
        averaged over the last minibatch's first ``SPREAD_STATES`` states and the action dims (0: the decoder ignores
        z); ``decoder_std``: the decoder's mean sigma_g (not for the flow, which has none). Empty before the first
        gradient step.

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
        diagnostics = {"action_spread_over_z": float(action_spread)}
        if generator.has_decoder_noise:  # the flow decodes exactly: it has no sigma_g
            diagnostics["decoder_std"] = float(generator.decoder_log_std_clamped().detach().exp().mean())
        return diagnostics

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
            if self.action_generator.flow is not None:  # exact likelihood: no reconstruction term, no KL
                self.logger.record("train/generator_nll", float(reconstruction))
                self.logger.record("train/log_likelihood", float(-reconstruction))
            else:
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

    def _check_env_values(self, parts: list[tuple[str, Any]]) -> None:
        """Raise when the env handed over a NaN or infinite observation or reward.

        Called before it enters the replay buffer or the policy (whose torch distribution would fail with "invalid
        values" from deep inside), so no gradient step has seen it and the last saved model is intact.
        """
        for kind, value in parts:
            for key, array in value.items() if isinstance(value, dict) else [(None, value)]:
                array = np.asarray(array)
                if not np.issubdtype(array.dtype, np.floating) or np.isfinite(array).all():
                    continue
                index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
                name = kind if key is None else f"{kind} {key!r}"
                raise ValueError(
                    f"LatentSAC: the env's {name} holds {array[index]} at index {index} "
                    f"(num_timesteps={self.num_timesteps}). Training stopped before any callback could save this model, "
                    "so the last saved model is intact. Fix the env (VecCheckNan(env, raise_exception=True) finds the "
                    "step and action that produced it), or clip and normalise what it returns (VecNormalize)."
                )

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        total_timesteps, callback = super()._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        self._check_env_values([("first observation", self._last_obs)])
        return total_timesteps, callback

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        terminal = [("terminal observation", info["terminal_observation"]) for info in infos if "terminal_observation" in info]
        self._check_env_values([("observation", new_obs), ("reward", reward), *terminal])
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)

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

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfLatentSAC],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> SelfLatentSAC:
        from sb3_latent.zoo_runs import check_saved_model  # one message for a missing, truncated or foreign zip

        if isinstance(path, (str, pathlib.Path)):
            path = check_saved_model(path, cls)
        return super().load(path, env, device, custom_objects, print_system_info, force_reset, **kwargs)

    def load_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase, truncate_last_traj: bool = True) -> None:
        from sb3_latent.zoo_runs import load_replay_buffer  # one message for a truncated or foreign buffer file

        if isinstance(path, (str, pathlib.Path)):
            load_replay_buffer(self, pathlib.Path(path), truncate_last_traj)
        else:
            super().load_replay_buffer(path, truncate_last_traj)

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
        ]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, saved_pytorch_variables = super()._get_torch_save_params()
        return [*state_dicts, "generator_optimizer"], saved_pytorch_variables


def _check_int(name: str, value: Any, minimum: int, example: str) -> None:
    if not (is_int(value) and value >= minimum):
        raise UserInputError(f"{name} must be an integer >= {minimum} (e.g. {example}), got {value!r}.")


def _check_rate(name: str, value: Any, example: str) -> None:
    """A learning rate: a finite number >= 0, or a schedule (a function of the progress remaining, 1 to 0).

    0 is allowed: rl-zoo3's enjoy loads models with learning_rate=0 (no learning). A schedule is judged by its start
    value, where SB3 reads it too.
    """
    start = value(1.0) if callable(value) else value
    if not (is_finite(start) and start >= 0):
        got = f"a schedule that starts at {start!r}" if callable(value) else repr(value)
        raise UserInputError(
            f"{name} must be a number >= 0 (e.g. {example}) or a schedule (a function of the progress remaining, "
            f"from 1 to 0, such as rl-zoo3's lin_3e-4) that starts >= 0, got {got}."
        )


def _check_train_freq(train_freq: Any) -> None:
    if isinstance(train_freq, TrainFreq):  # as saved by a model that was set up already
        return
    if isinstance(train_freq, tuple) and len(train_freq) == 2:
        frequency, unit = train_freq
        if is_int(frequency) and frequency >= 1 and unit in ("step", "episode"):
            return
    elif is_int(train_freq) and train_freq >= 1:
        return
    raise UserInputError(
        f"train_freq must be an integer >= 1 (env steps, e.g. 1) or a pair such as (1, 'episode'), got {train_freq!r}."
    )


def _check_ent_coef(ent_coef: Any) -> None:
    """SAC's entropy coefficient: a number > 0, 'auto' (learned, from 1) or 'auto_<initial value > 0>'."""
    if is_finite(ent_coef) and ent_coef > 0:
        return
    if isinstance(ent_coef, str) and ent_coef.startswith("auto"):
        initial = ent_coef[len("auto_") :] if ent_coef.startswith("auto_") else ("1" if ent_coef == "auto" else "")
        try:
            if 0 < float(initial) < np.inf:
                return
        except ValueError:
            pass
    raise UserInputError(
        f"ent_coef must be a number > 0, 'auto' (learned, starting from 1) or 'auto_<initial value>' such as "
        f"'auto_0.1', got {ent_coef!r}."
    )
