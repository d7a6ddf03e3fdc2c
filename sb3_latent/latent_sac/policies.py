"""Latent policy, critic and action generator of Latent SAC.

The latent policy pi(z|s) is SB3's squashed Gaussian SAC actor whose "action space" is the latent box
``[-latent_bound, latent_bound]^latent_dim``. The critic is SB3's ``ContinuousCritic`` on the *env*
action (PLAS-style Q(s, a)). Acting is ancestral sampling (poster, Figure 3): z ~ pi(z|s), then
a ~ g(a|s,z); in deterministic mode both means are used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN, Actor, SACPolicy
from torch import nn

from sb3_latent.common.action_generator import (
    DEFAULT_DECODER,
    DEFAULT_LATENT_BOUND,
    FEATURES_EXTRACTORS,
    ActionGenerator,
    observation_space_data,
    resolve_latent_dim,
)
from sb3_latent.common.checks import is_finite
from sb3_latent.errors import UserInputError

# log(sqrt(2 pi)), spelled as torch.distributions.Normal.log_prob spells it (the same float).
_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


class LatentActor(Actor):
    """
    Latent policy pi(z|s): SB3's SAC actor (squashed Gaussian) scaled to ``[-latent_bound, latent_bound]``.

    A bounded box stops the actor from querying the decoder far from where it was trained (PLAS uses +-2; the
    default is the unit box, where z = tanh(u) is SAC's own action). ``action_space`` here is the unit latent box
    ``Box(-1, 1, (latent_dim,))``.

    With ``residual_scale`` set (``generator_mode="residual"``), the policy also emits a **residual action**
    r(s) = residual_scale * tanh(W h(s)), a second head on the latent policy's hidden layer h(s), added to the
    decoded action (on SB3's [-1, 1] action scale). It is deterministic, so the entropy (or the KL to the prior)
    stays a quantity of z alone, and its weights start at zero: at first the policy acts exactly through the
    transferred generator.

    :param latent_bound: Half-width of the latent box the codes are squashed into
    :param residual_scale: Bound of the residual action (``None``: no residual head)
    :param residual_dim: Dimension of the residual action (the env's action dimension; ignored without
        ``residual_scale``)
    :param kwargs: Arguments of :class:`stable_baselines3.sac.policies.Actor`
    """

    def __init__(
        self,
        *args: Any,
        latent_bound: float = DEFAULT_LATENT_BOUND,
        residual_scale: float | None = None,
        residual_dim: int = 0,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.latent_bound = float(latent_bound)
        # log|dz/du| of the scaling z = latent_bound * tanh(u), one term per latent dimension
        self._log_bound = get_action_dim(self.action_space) * math.log(self.latent_bound)
        self.residual_scale = None if residual_scale is None else float(residual_scale)
        self.residual_dim = int(residual_dim)
        self.residual_head: nn.Linear | None = None
        if self.residual_scale is not None:
            # The width of the hidden layer h(s), as SB3's Actor computes it (with gSDE, mu is a Linear + Hardtanh).
            hidden_dim = self.net_arch[-1] if len(self.net_arch) > 0 else self.features_dim
            self.residual_head = nn.Linear(hidden_dim, self.residual_dim)
            # r(s) = 0 at first: the transferred generator alone decides the first actions.
            nn.init.zeros_(self.residual_head.weight)
            nn.init.zeros_(self.residual_head.bias)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(latent_bound=self.latent_bound, residual_scale=self.residual_scale, residual_dim=self.residual_dim)
        return data

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self.latent_bound * super().forward(obs, deterministic)

    def action_log_prob(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """Sample z ~ pi(z|s) (reparameterised) and return it with log pi(z|s)."""
        unit_latent, log_prob = super().action_log_prob(obs)
        return self.latent_bound * unit_latent, log_prob - self._log_bound

    def _distribution_and_residual(
        self, obs: PyTorchObs
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None, dict[str, th.Tensor]]:
        # SB3's get_action_dist_params, keeping the hidden layer for the residual head: one pass.
        features = self.extract_features(obs, self.features_extractor)
        latent_pi = self.latent_pi(features)
        mean_actions = self.mu(latent_pi)
        residual = None
        if self.residual_head is not None and self.residual_scale is not None:
            residual = self.residual_scale * th.tanh(self.residual_head(latent_pi))
        if self.use_sde:
            # gSDE: a state-independent log_std parameter; the noise is h(s) times the exploration matrix.
            return mean_actions, self.log_std, residual, dict(latent_sde=latent_pi)  # type: ignore[return-value]
        log_std = th.clamp(self.log_std(latent_pi), LOG_STD_MIN, LOG_STD_MAX)  # type: ignore[operator]
        return mean_actions, log_std, residual, {}

    def sample_latent(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        """z ~ pi(z|s) (reparameterised), log pi(z|s), and the residual action r(s) (``None`` without the head)."""
        mean_actions, log_std, residual, sde_kwargs = self._distribution_and_residual(obs)
        if self.use_sde:  # SB3's StateDependentNoiseDistribution: tanh(mean + h(s) exploration matrix)
            unit_latent, log_prob = self.action_dist.log_prob_from_params(mean_actions, log_std, **sde_kwargs)
            return self.latent_bound * unit_latent, log_prob - self._log_bound, residual
        # SB3's SquashedDiagGaussianDistribution.log_prob_from_params written out, the same operations in the same
        # order (the same bits), without building a torch.distributions.Normal, which validates its arguments on
        # every call (~0.1 ms per call on one CPU core).
        std = log_std.exp()
        noise = th.empty_like(mean_actions).normal_()
        gaussian_latent = mean_actions + noise * std
        unit_latent = th.tanh(gaussian_latent)
        log_prob = (-((gaussian_latent - mean_actions) ** 2) / (2 * std**2) - std.log() - _LOG_SQRT_2PI).sum(dim=1)
        log_prob = log_prob - th.log(1 - unit_latent**2 + self.action_dist.epsilon).sum(dim=1)  # type: ignore[attr-defined]
        return self.latent_bound * unit_latent, log_prob - self._log_bound, residual

    def latent_and_residual(self, obs: PyTorchObs, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor | None]:
        """z ~ pi(z|s) (its mode when ``deterministic``) and the residual action r(s) (``None`` without the head)."""
        mean_actions, log_std, residual, sde_kwargs = self._distribution_and_residual(obs)
        unit_latent = self.action_dist.actions_from_params(mean_actions, log_std, deterministic=deterministic, **sde_kwargs)
        return self.latent_bound * unit_latent, residual


class LatentSACPolicy(SACPolicy):
    """
    Policy of Latent SAC: latent policy pi(z|s), twin critic Q(s, a) and its target, action generator.

    :param observation_space: Observation space (a ``Box``, or a ``Dict`` of ``Box`` spaces)
    :param action_space: Action space (a ``Box``)
    :param lr_schedule: Learning rate schedule of the actor and the critic
    :param net_arch: Hidden layers of the latent policy and the critic (as in SAC)
    :param activation_fn: Activation function of the latent policy and the critic
    :param use_sde: Whether the latent policy explores by gSDE (set by ``LatentSAC``'s ``use_sde``)
    :param log_std_init: Initial log-std of the gSDE exploration matrix (gSDE only, as in SAC)
    :param use_expln: Use ``expln()`` instead of ``exp()`` for the gSDE std (gSDE only, as in SAC)
    :param clip_mean: Clip the pre-squash latent mean to ``[-clip_mean, clip_mean]`` (gSDE only, as in SAC)
    :param features_extractor_class: Features extractor of the latent policy and the critic
    :param features_extractor_kwargs: Keyword arguments of the features extractor
    :param normalize_images: Whether to divide image observations by 255
    :param optimizer_class: Optimiser of the latent policy and the critic
    :param optimizer_kwargs: Keyword arguments of that optimiser (default ``{"fused": True}`` for Adam)
    :param n_critics: Number of critics
    :param share_features_extractor: Whether the latent policy and the critic share the features extractor
    :param latent_dim: Dimension of the latent code z (default: the action dimension)
    :param latent_bound: Codes are squashed into ``[-latent_bound, latent_bound]`` (default 1, SAC's own box; PLAS
        uses 2, the previous default)
    :param generator_net_arch: Hidden layers of the encoder, decoder and learned prior (default ``[64, 64]``)
    :param generator_activation_fn: Activation function of the generator networks
    :param prior: ``"standard"`` (p(z) = N(0, I)) or ``"learned"`` (p(z|s))
    :param decoder: ``"sac-residual"`` (default: the residual decoder on SAC's squashing,
        tanh(atanh(z / b) + bounded warp)), ``"residual"`` (support-preserving skeleton tanh(1.5 z) + bounded warp;
        the previous default), ``"mlp"`` (plain CVAE decoder), ``"identity"`` (a = clip(z, -1, 1): with
        ``latent_bound=1``, SAC's own parametrisation) or ``"flow"`` (a bijection of the latent box onto the action
        box at each state, trained by exact likelihood; no decoder noise)
    :param latent_gain: Slope of the identity part of the residual decoder
    :param residual_bound: Bound on the learned part of the residual decoder's pre-tanh mean
    :param decoder_noise: Whether acting samples a ~ g(a|s,z) (default, the poster's ancestral sampling) or takes the
        decoder mean g_mean(s, z), so that z ~ pi(z|s) alone explores
    :param generator_features_extractor_class: The generator's own features extractor, one of
        ``FlattenExtractor``, ``NatureCNN``, ``CombinedExtractor`` (class or name). Default: the class of
        ``features_extractor_class`` when it is one of those (with ``features_extractor_kwargs``), else
        ``FlattenExtractor`` for a ``Box`` and ``CombinedExtractor`` for a ``Dict``
    :param generator_features_extractor_kwargs: Keyword arguments of that extractor (plain data)
    :param generator_normalize_images: Whether the generator divides images by 255 (default: ``normalize_images``)
    :param residual_scale: Bound of the residual action the latent policy adds to the decoded action, on SB3's
        [-1, 1] action scale (``None``: no residual head). Set by ``LatentSAC`` from ``generator_mode="residual"``
        and its ``residual_scale`` argument, not by hand
    """

    actor: LatentActor
    action_generator: ActionGenerator

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        use_sde: bool = False,
        log_std_init: float = -3,
        use_expln: bool = False,
        clip_mean: float = 2.0,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        share_features_extractor: bool = False,
        latent_dim: int | None = None,
        latent_bound: float = DEFAULT_LATENT_BOUND,
        generator_net_arch: list[int] | None = None,
        generator_activation_fn: type[nn.Module] = nn.ReLU,
        prior: str = "standard",
        decoder: str = DEFAULT_DECODER,
        latent_gain: float = 1.5,
        residual_bound: float = 0.5,
        generator_features_extractor_class: type[BaseFeaturesExtractor] | str | None = None,
        generator_features_extractor_kwargs: dict[str, Any] | None = None,
        generator_normalize_images: bool | None = None,
        residual_scale: float | None = None,
        decoder_noise: bool = True,
    ):
        # The spaces, use_sde and residual_scale are LatentSAC's arguments, checked there (LatentSAC._check_options).
        latent_dim = resolve_latent_dim(latent_dim, get_action_dim(action_space))
        if not (is_finite(latent_bound) and latent_bound > 0):
            raise UserInputError(f"latent_bound must be a finite number > 0 (e.g. 2.0), got {latent_bound!r}.")
        self.residual_scale = None if residual_scale is None else float(residual_scale)
        self.decoder_noise = bool(decoder_noise)
        # Attributes read by make_actor() and _build(), which SACPolicy.__init__ calls.
        self.latent_dim = latent_dim
        self.latent_bound = float(latent_bound)
        self.latent_space = spaces.Box(-1.0, 1.0, (self.latent_dim,), dtype=np.float32)
        self.generator_kwargs: dict[str, Any] = dict(
            latent_dim=self.latent_dim,
            net_arch=list(generator_net_arch) if generator_net_arch is not None else [64, 64],
            activation_fn=generator_activation_fn,
            prior=prior,
            decoder=decoder,
            latent_gain=latent_gain,
            residual_bound=residual_bound,
            latent_bound=self.latent_bound,  # the box the latent policy queries the decoder in
            # None: chosen in make_action_generator() from the policy's extractor, known once SB3 has set it up.
            features_extractor_class=generator_features_extractor_class,
            features_extractor_kwargs=generator_features_extractor_kwargs,
            normalize_images=generator_normalize_images,
        )
        if optimizer_kwargs is None:
            # Fused Adam: one kernel for all parameters instead of several per parameter (~10% of an update on CPU)
            optimizer_kwargs = {"fused": True} if optimizer_class is th.optim.Adam else {}
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            use_sde=use_sde,
            log_std_init=log_std_init,
            use_expln=use_expln,
            clip_mean=clip_mean,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            n_critics=n_critics,
            share_features_extractor=share_features_extractor,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        # The generator's optimiser belongs to the algorithm (its own learning rate), see LatentSAC._setup_model().
        self.action_generator = self.make_action_generator()

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> LatentActor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        actor_kwargs["action_space"] = self.latent_space
        return LatentActor(
            **actor_kwargs,
            latent_bound=self.latent_bound,
            residual_scale=self.residual_scale,
            residual_dim=get_action_dim(self.action_space),
        ).to(self.device)

    def make_action_generator(self) -> ActionGenerator:
        kwargs = dict(self.generator_kwargs)
        if kwargs["features_extractor_class"] is None:
            # The generator reads the state with the same kind of extractor as the latent policy, an instance of its
            # own; a class that cannot be saved by name falls back to SB3's MlpPolicy / MultiInputPolicy one.
            if self.features_extractor_class in FEATURES_EXTRACTORS.values():
                kwargs["features_extractor_class"] = self.features_extractor_class
                if kwargs["features_extractor_kwargs"] is None:
                    kwargs["features_extractor_kwargs"] = self.features_extractor_kwargs
            else:
                dict_space = isinstance(self.observation_space, spaces.Dict)
                kwargs["features_extractor_class"] = CombinedExtractor if dict_space else FlattenExtractor
        if kwargs["normalize_images"] is None:
            kwargs["normalize_images"] = self.normalize_images
        return ActionGenerator(self.observation_space, get_action_dim(self.action_space), **kwargs).to(self.device)

    def set_action_generator(self, generator: ActionGenerator) -> None:
        """Replace the generator (shapes checked); its architecture becomes this policy's."""
        generator.check_spaces(self.observation_space, self.action_space)
        if generator.latent_dim != self.latent_dim:
            raise UserInputError(
                f"The action generator has latent_dim={generator.latent_dim} but this model's latent policy emits "
                f"latent_dim={self.latent_dim} codes. Build the model with policy_kwargs=dict(latent_dim="
                f"{generator.latent_dim}) or pass the generator as LatentSAC(..., action_generator=...)."
            )
        if generator.latent_bound != self.latent_bound:
            raise UserInputError(
                f"The {generator.decoder} action generator was trained on the latent box "
                f"[-{generator.latent_bound}, {generator.latent_bound}] but this model's latent policy emits codes in "
                f"[-{self.latent_bound}, {self.latent_bound}]. Build the model with "
                f"policy_kwargs=dict(latent_bound={generator.latent_bound}), or leave latent_bound out."
            )
        self.generator_kwargs = generator_constructor_kwargs(generator)
        self.action_generator = generator.to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(residual_scale=self.residual_scale, decoder_noise=self.decoder_noise)
        data.update(generator_policy_kwargs(self.action_generator))  # latent_bound too: the generator records it
        return data

    def generator_input(self, obs: PyTorchObs) -> th.Tensor:
        """Observations as the generator reads them: through its own features extractor (flattened for a Box)."""
        return self.action_generator.extract_features(obs)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        # Ancestral sampling (poster, Figure 3): z ~ pi(z|s), then a ~ g(a|s,z); means when deterministic.
        # Without decoder_noise the decoder mean is used even when z is sampled.
        latent, residual = self.actor.latent_and_residual(observation, deterministic)
        generator_obs = self.generator_input(observation)
        # With gSDE the latent policy's noise, held for sde_sample_freq steps, explores: the decoder acts by its
        # mean, as i.i.d. decoder noise would add back the step-to-step jitter gSDE removes (docs: "gSDE").
        decoder_noise = self.decoder_noise and not (deterministic or self.actor.use_sde)
        if residual is None:
            return self.action_generator.sample_actions(generator_obs, latent, deterministic=not decoder_noise)
        # Residual mode: a = clip(g_mean(s, z) + sigma_g eps + r(s), -1, 1), one clip for noise and residual.
        actions = self.action_generator.decode(generator_obs, latent) + residual
        if decoder_noise and self.action_generator.has_decoder_noise:
            actions = actions + th.randn_like(actions) * self.action_generator.decoder_log_std_clamped().exp()
        return actions.clamp(-1.0, 1.0)

    def set_training_mode(self, mode: bool) -> None:
        # SB3 calls this several times per env step (collection, predict, train). Walking every submodule costs
        # ~0.8 ms per env step on one CPU core, so walk only when the mode changes (policy.train()/eval() keep
        # self.training in step with the submodules).
        if mode == self.training:
            return
        super().set_training_mode(mode)
        self.action_generator.train(mode)


def check_spaces(observation_space: spaces.Space, action_space: spaces.Space) -> None:
    """Refuse the spaces LatentSAC cannot train on, naming what to use instead."""
    if not isinstance(action_space, spaces.Box):
        raise UserInputError(
            f"LatentSAC needs a continuous (Box) action space, got {action_space}. The latent codes are decoded into "
            "continuous actions; for discrete actions use an algorithm such as DQN or PPO."
        )
    try:
        observation_space_data(observation_space)  # what a generator file can hold
    except UserInputError:
        raise UserInputError(
            f"LatentSAC needs a Box observation space or a Dict of Box spaces (MultiInputPolicy), got {observation_space}. "
            "Convert the others to Box (e.g. gymnasium.wrappers.FlattenObservation)."
        ) from None


# ActionGenerator constructor argument -> LatentSACPolicy's policy_kwargs name, where they differ.
_GENERATOR_KWARG_NAMES = {
    "net_arch": "generator_net_arch",
    "activation_fn": "generator_activation_fn",
    "features_extractor_class": "generator_features_extractor_class",
    "features_extractor_kwargs": "generator_features_extractor_kwargs",
    "normalize_images": "generator_normalize_images",
}


def generator_constructor_kwargs(generator: ActionGenerator) -> dict[str, Any]:
    """``generator``'s ActionGenerator constructor arguments other than the spaces (which come from the env), with
    the activation and the features extractor as classes rather than their saved names."""
    architecture = generator.architecture()
    del architecture["observation_space"], architecture["action_dim"]
    architecture["activation_fn"] = generator.activation_fn
    architecture["features_extractor_class"] = type(generator.features_extractor)
    return architecture


def generator_policy_kwargs(generator: ActionGenerator) -> dict[str, Any]:
    """The ``policy_kwargs`` entries of ``LatentSACPolicy`` that rebuild ``generator``'s architecture."""
    return {_GENERATOR_KWARG_NAMES.get(name, name): value for name, value in generator_constructor_kwargs(generator).items()}


MlpPolicy = LatentSACPolicy


class CnnPolicy(LatentSACPolicy):
    """``LatentSACPolicy`` for image observations: ``NatureCNN`` features for the latent policy, the critic and
    (an extractor of its own) the action generator, as SB3's SAC ``CnnPolicy``."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box, lr_schedule: Schedule, **kwargs: Any):
        kwargs.setdefault("features_extractor_class", NatureCNN)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)


class MultiInputPolicy(LatentSACPolicy):
    """``LatentSACPolicy`` for ``Dict`` observations: ``CombinedExtractor`` features (a ``NatureCNN`` per image,
    the other keys flattened) for the latent policy, the critic and the action generator, as SB3's SAC
    ``MultiInputPolicy``."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box, lr_schedule: Schedule, **kwargs: Any):
        kwargs.setdefault("features_extractor_class", CombinedExtractor)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)
