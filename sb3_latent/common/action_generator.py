"""The action generator of Latent SAC: a conditional VAE over (state, action) pairs.

Vocabulary (poster, Figure 2):

- encoder q(z|s,a): a diagonal Gaussian over latent codes, used only to train the generator;
- action generator (decoder) g(a|s,z): a diagonal Gaussian over the action scaled to [-1, 1];
- prior p(z) = N(0, I), or a learned state-conditioned prior p(z|s).

The generator always works on the *scaled* action (SB3's ``policy.scale_action``: the env's
``[low, high]`` mapped to ``[-1, 1]``), so it is independent of the env's action bounds and can be moved
between tasks that share observation and action shapes. It reads the state through a features extractor
of its own (SB3's ``FlattenExtractor``, ``NatureCNN`` or ``CombinedExtractor``), never the latent
policy's, so its skills transfer without the source task's actor.

Decoder choice (see ``docs/modules/latent_sac.md``, "Comments"). The default is ``decoder="sac-residual"`` on the
unit latent box (``latent_bound=1``), chosen by the latent ablation; before it, the default was
``decoder="residual"`` on [-2, 2]^d (:data:`PREVIOUS_DEFAULTS`). With ``latent_dim == action_dim`` the residual
decoder's mean is

    tanh(latent_gain * z + residual_bound * tanh(f(s, z)))

The learned part ``f`` is bounded, so along each latent axis the pre-tanh mean at ``z_i = +b`` is
at least ``latent_gain * b - residual_bound`` and at ``z_i = -b`` at most the negative of it. By
the Poincare-Miranda theorem the decoded means of the latent box ``[-b, b]^d`` then cover the whole
action box ``[-tanh(c), tanh(c)]^d`` with ``c = latent_gain * b - residual_bound`` at every state,
whatever data the generator was fitted on: the generator can shape *where* the prior's mass lands
(the skill), but it cannot lose support. With b = 2, gain 1.5 and bound 0.5 that box is
``[-0.987, 0.987]^d``. ``decoder="mlp"`` is the plain CVAE decoder of the poster and of PLAS.
``decoder="sac-residual"`` (the default) is the residual decoder on SAC's own squashing instead of the fixed skeleton
tanh(1.5 z):

    tanh(atanh(z / b) + residual_bound * tanh(f(s, z)))

With the latent policy's z = b tanh(u), an untrained generator (f = 0) decodes a = tanh(u), SAC's action, at every
code, and along each latent axis atanh(z_i / b) runs to +-infinity at the faces, so the same Poincare-Miranda argument
gives the whole open action box at every state.

``decoder="identity"`` decodes a = clip(z, -1, 1) and has nothing to learn but its noise: with ``latent_bound=1``
LatentSAC is then SAC itself (the rung from which the latent ablation starts).

``decoder="flow"`` is the normalizing-flow generator of the poster's future work: a = F_s(z / b), a bijection of the
latent box [-b, b]^d onto the action box at every state (``sb3_latent/common/flow.py``). Its inverse is the exact
posterior, so its loss is the exact negative log-likelihood of the action rather than the ELBO, it has no encoder
network and no decoder noise, and its prior is N(0, I) restricted to the latent box (a learned prior would be absorbed
by the state-conditioned flow, so it is refused).
"""

from __future__ import annotations

import io
import math
import pathlib
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, preprocess_obs
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
    create_mlp,
)
from stable_baselines3.common.type_aliases import PyTorchObs
from stable_baselines3.common.utils import get_device
from torch import nn

from sb3_latent.common.checks import is_finite, is_int
from sb3_latent.common.flow import CouplingSplineFlow
from sb3_latent.errors import UserInputError

# Clamp of the decoder's state-independent log standard deviation (on the [-1, 1]-scaled action).
DECODER_LOG_STD_MIN = -5.0
DECODER_LOG_STD_MAX = 0.0
# Clamp of the encoder's and the learned prior's log standard deviation (in latent space).
LATENT_LOG_STD_MIN = -8.0
LATENT_LOG_STD_MAX = 2.0

PRIORS = ("standard", "learned")
DECODERS = ("residual", "mlp", "identity", "flow", "sac-residual")
# Decoders that map each latent axis onto one action axis (the flow: a bijection of the box).
AXIS_DECODERS = ("residual", "identity", "flow", "sac-residual")
# The defaults, chosen by the latent ablation (docs/modules/latent_sac.md, "Comments"): SAC's squashing under a
# learned, bounded warp, on the unit latent box, where the target entropy -d on z is SAC's own.
DEFAULT_DECODER = "sac-residual"
DEFAULT_LATENT_BOUND = 1.0
# The defaults before it: what a LatentSAC zip or a generator file that does not record these was built with.
PREVIOUS_DEFAULTS: dict[str, Any] = {"decoder": "residual", "latent_bound": 2.0}
RESIDUAL_DECODERS = ("residual", "sac-residual")
# |z / b| is clamped below 1 before atanh (sac-residual): atanh(1 - 1e-6) = 7.25, where tanh is 1 in float32.
UNIT_CODE_CLAMP = 1.0 - 1e-6
# The features extractors a generator may read the state through: saved by name, so that a generator file loads
# with torch.load(weights_only=True) (no class is unpickled). SB3's MlpPolicy, CnnPolicy and MultiInputPolicy ones.
FEATURES_EXTRACTORS: dict[str, type[BaseFeaturesExtractor]] = {
    extractor.__name__: extractor for extractor in (FlattenExtractor, NatureCNN, CombinedExtractor)
}
# 1: a Box observation shape, flattened; 2: the observation space as data, and the features extractor by name.
_FORMAT_VERSION = 2


def _activation_name(activation_fn: type[nn.Module]) -> str:
    name = activation_fn.__name__
    if getattr(nn, name, None) is not activation_fn:
        raise UserInputError(
            f"ActionGenerator: activation_fn={activation_fn!r} is not a torch.nn activation, so it cannot be saved by name. "
            "Use one from torch.nn (nn.ReLU, nn.Tanh, nn.ELU, ...)."
        )
    return name


class ActionGenerator(nn.Module):
    """
    Conditional VAE action generator: encoder q(z|s,a), decoder g(a|s,z) and prior p(z) or p(z|s).

    :param observation_space: The observation space the generator reads (a ``Box``, or a ``Dict`` of ``Box``
        spaces), or the shape of a flat float observation (an unbounded ``Box``)
    :param action_dim: Number of action dimensions (the generator models actions scaled to [-1, 1])
    :param latent_dim: Number of latent dimensions (default: ``action_dim``)
    :param net_arch: Hidden layers of the encoder, the decoder and the learned prior (default ``[64, 64]``)
    :param activation_fn: Activation function of those networks (a ``torch.nn`` class)
    :param prior: ``"standard"`` for p(z) = N(0, I), ``"learned"`` for a state-conditioned p(z|s)
        trained with the generator through the KL term
    :param decoder: ``"sac-residual"`` (default: the residual decoder on SAC's squashing; it starts as SAC,
        a = tanh(u)), ``"residual"`` (support-preserving skeleton tanh(latent_gain * z); the previous default),
        ``"mlp"`` (plain CVAE decoder, tanh-bounded mean), ``"identity"`` (a = clip(z, -1, 1)) or ``"flow"``
        (a bijection of the latent box onto the action box, trained by exact likelihood). All but ``"mlp"`` need
        ``latent_dim == action_dim``
    :param latent_gain: Slope of the fixed identity part of the residual decoder (``latent_gain * z``)
    :param residual_bound: Bound on the learned part of the residual decoder's pre-tanh mean
    :param latent_bound: Half-width b of the latent box [-b, b]^d the latent policy queries the decoder in (the
        policy's ``latent_bound``; ``"flow"`` and ``"sac-residual"`` decode z / b). Saved with the generator, so
        that a model it is transferred into queries the same box
    :param features_extractor_class: How the encoder, decoder and prior read the state: one of
        ``FEATURES_EXTRACTORS`` (``FlattenExtractor``, ``NatureCNN``, ``CombinedExtractor``), as a class or its name.
        The generator's own module, trained by its loss
    :param features_extractor_kwargs: Keyword arguments of that extractor (plain data: numbers, strings, lists)
    :param normalize_images: Whether image observations are divided by 255 before the extractor (as SB3's)
    """

    _zeros: th.Tensor

    def __init__(
        self,
        observation_space: spaces.Space | tuple[int, ...] | list[int],
        action_dim: int,
        latent_dim: int | None = None,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        prior: str = "standard",
        decoder: str = DEFAULT_DECODER,
        latent_gain: float = 1.5,
        residual_bound: float = 0.5,
        latent_bound: float = DEFAULT_LATENT_BOUND,
        features_extractor_class: type[BaseFeaturesExtractor] | str = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
    ):
        super().__init__()
        latent_dim = resolve_latent_dim(latent_dim, action_dim)
        if int(action_dim) <= 0:
            raise UserInputError(f"action_dim must be a positive integer, got {action_dim!r}.")
        if prior not in PRIORS:
            raise UserInputError(f"prior must be one of {PRIORS}, got {prior!r}.")
        if decoder not in DECODERS:
            raise UserInputError(f"decoder must be one of {DECODERS}, got {decoder!r}.")
        if decoder in AXIS_DECODERS and int(latent_dim) != int(action_dim):
            raise UserInputError(
                f"decoder={decoder!r} maps each latent axis to one action axis, so it needs latent_dim == action_dim "
                f"(got latent_dim={latent_dim}, action_dim={action_dim}). Leave latent_dim out, or use decoder='mlp'."
            )
        if decoder == "flow" and prior != "standard":
            raise UserInputError(
                f"decoder='flow' takes prior='standard' only, got prior={prior!r}: a state-conditioned flow absorbs a "
                "learned prior p(z|s) (any p(z|s) is the standard one pushed through some flow). Leave prior out."
            )
        if not (is_finite(latent_bound) and latent_bound > 0):
            raise UserInputError(f"latent_bound must be a finite number > 0 (e.g. 2.0), got {latent_bound!r}.")
        if not (is_finite(latent_gain) and latent_gain > 0):
            raise UserInputError(f"latent_gain must be a finite number > 0 (e.g. 1.5), got {latent_gain!r}.")
        if not (is_finite(residual_bound) and residual_bound >= 0):
            raise UserInputError(f"residual_bound must be a finite number >= 0 (e.g. 0.5), got {residual_bound!r}.")
        if net_arch is not None and not (
            isinstance(net_arch, (list, tuple)) and all(is_int(width) and width > 0 for width in net_arch)
        ):
            raise UserInputError(
                f"The generator's net_arch must be a list of layer widths such as [64, 64], got {net_arch!r}."
            )

        if not isinstance(observation_space, spaces.Space):  # a shape: flat float observations
            observation_space = spaces.Box(-np.inf, np.inf, tuple(int(d) for d in observation_space), np.float32)
        self.observation_space = observation_space_from_data(observation_space_data(observation_space))
        self.normalize_images = bool(normalize_images)
        self.features_extractor_kwargs = dict(features_extractor_kwargs or {})
        self.features_extractor = self._make_features_extractor(features_extractor_class)
        self.obs_dim = self.features_extractor.features_dim  # what the encoder, decoder and prior read
        self.action_dim = int(action_dim)
        self.latent_dim = int(latent_dim)
        self.net_arch = list(net_arch) if net_arch is not None else [64, 64]
        self.activation_fn = activation_fn
        self._activation_name = _activation_name(activation_fn)
        self.prior = prior
        self.decoder = decoder
        self.latent_gain = float(latent_gain)
        self.residual_bound = float(residual_bound)
        self.latent_bound = float(latent_bound)
        # The flow is exact: no decoder noise, no encoder network (its inverse is the posterior).
        self.flow: CouplingSplineFlow | None = None
        if decoder == "flow":
            self.flow = CouplingSplineFlow(self.obs_dim, self.action_dim, self.net_arch, activation_fn)

        # q(z|s,a): one network, mean and log-std heads side by side
        encoder_layers = (
            []
            if decoder == "flow"
            else create_mlp(self.obs_dim + self.action_dim, 2 * self.latent_dim, self.net_arch, activation_fn)
        )
        self.encoder_net = nn.Sequential(*encoder_layers)
        # g(a|s,z): mean network; the log-std is a learned state-independent vector (clamped)
        decoder_layers = (
            []
            if decoder in ("identity", "flow")
            else create_mlp(self.obs_dim + self.latent_dim, self.action_dim, self.net_arch, activation_fn)
        )
        self.decoder_net = nn.Sequential(*decoder_layers)
        self.decoder_log_std: nn.Parameter | None = None
        if decoder != "flow":
            self.decoder_log_std = nn.Parameter(th.full((self.action_dim,), -1.0))
        if decoder in RESIDUAL_DECODERS:
            # Start as the skeleton (tanh(latent_gain * z), or SAC's tanh(u)): the warp is learned from zero.
            last = self.decoder_net[-1]
            assert isinstance(last, nn.Linear)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        # p(z|s) (learned prior only)
        self.prior_net: nn.Sequential | None = None
        if prior == "learned":
            self.prior_net = nn.Sequential(*create_mlp(self.obs_dim, 2 * self.latent_dim, self.net_arch, activation_fn))
        self.register_buffer("_zeros", th.zeros(1, self.latent_dim), persistent=False)

    def _make_features_extractor(self, extractor_class: type[BaseFeaturesExtractor] | str) -> BaseFeaturesExtractor:
        name = features_extractor_name(extractor_class)
        if not _is_plain_data(self.features_extractor_kwargs):
            raise UserInputError(
                f"ActionGenerator: features_extractor_kwargs={self.features_extractor_kwargs!r} must be plain data "
                "(numbers, strings, booleans, lists, dicts), so that the generator file loads with weights_only."
            )
        try:
            return FEATURES_EXTRACTORS[name](self.observation_space, **self.features_extractor_kwargs)
        except (AssertionError, TypeError) as error:
            raise UserInputError(
                f"ActionGenerator: {name}({self.features_extractor_kwargs}) cannot read observations of "
                f"{describe_observation_space(self.observation_space)} ({' '.join(map(str, error.args))}). "
                "Use NatureCNN for images, CombinedExtractor for Dict observations, FlattenExtractor for vectors."
            ) from None

    def extract_features(self, obs: PyTorchObs) -> th.Tensor:
        """The state as the encoder, decoder and prior read it: preprocessed as SB3 does (images / 255 with
        ``normalize_images``), then through the generator's own features extractor."""
        return self.features_extractor(preprocess_obs(obs, self.observation_space, self.normalize_images))

    # ------------------------------------------------------------------ the three distributions
    def encode(self, obs: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """q(z|s,a): mean and clamped log-std of the latent code of the scaled ``actions`` at ``obs``. For the flow, the
        exact posterior: the point z = b F_s^-1(a), with log-std -inf."""
        if self.flow is not None:
            unit = self.flow.inverse_and_log_det(obs, actions)[0]
            return self.latent_bound * unit, th.full_like(unit, -math.inf)
        mean, log_std = self.encoder_net(th.cat([obs, actions], dim=1)).chunk(2, dim=1)
        return mean, log_std.clamp(LATENT_LOG_STD_MIN, LATENT_LOG_STD_MAX)

    def decode(self, obs: th.Tensor, latent: th.Tensor) -> th.Tensor:
        """Mean of g(a|s,z), in [-1, 1]."""
        if self.decoder == "identity":
            return latent.clamp(-1.0, 1.0)
        if self.flow is not None:
            return self.flow(obs, (latent / self.latent_bound).clamp(-1.0, 1.0))
        out = self.decoder_net(th.cat([obs, latent], dim=1))
        if self.decoder == "residual":
            out = self.latent_gain * latent + self.residual_bound * th.tanh(out)
        elif self.decoder == "sac-residual":  # u = atanh(z / b), the latent policy's pre-squash code
            unit = (latent / self.latent_bound).clamp(-UNIT_CODE_CLAMP, UNIT_CODE_CLAMP)
            out = th.atanh(unit) + self.residual_bound * th.tanh(out)
        return th.tanh(out)

    @property
    def has_decoder_noise(self) -> bool:
        """Whether g(a|s,z) has a noise sigma_g (every decoder but the flow, which decodes exactly)."""
        return self.decoder_log_std is not None

    def decoder_log_std_clamped(self) -> th.Tensor:
        """Log-std of g(a|s,z), shared by all states and codes, clamped to a finite range (not for the flow)."""
        assert self.decoder_log_std is not None, "the flow generator has no decoder noise"
        return self.decoder_log_std.clamp(DECODER_LOG_STD_MIN, DECODER_LOG_STD_MAX)

    def prior_distribution(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Mean and log-std of the prior p(z) (``prior="standard"``) or p(z|s) (``prior="learned"``), batch-shaped."""
        if self.prior_net is None:
            zeros = self._zeros.expand(obs.shape[0], self.latent_dim)
            return zeros, zeros
        mean, log_std = self.prior_net(obs).chunk(2, dim=1)
        return mean, log_std.clamp(LATENT_LOG_STD_MIN, LATENT_LOG_STD_MAX)

    def prior_log_prob(self, obs: th.Tensor, latent: th.Tensor) -> th.Tensor:
        """log p(z|s) of the codes ``latent`` (a density on z itself), summed over latent dims, shape (batch, 1)."""
        mean, log_std = self.prior_distribution(obs)
        error = (latent - mean) * th.exp(-log_std)
        log_prob = -(0.5 * error.pow(2) + log_std).sum(dim=1, keepdim=True) - gaussian_log_prob_const(self.latent_dim)
        if self.flow is not None:  # N(0, I) restricted to the box [-b, b]^d: renormalised by its mass there
            log_prob = log_prob - self.latent_dim * math.log(math.erf(self.latent_bound / math.sqrt(2.0)))
        return log_prob

    def sample_actions(self, obs: th.Tensor, latent: th.Tensor, deterministic: bool = False) -> th.Tensor:
        """a ~ g(a|s,z) clipped to [-1, 1]; the decoder mean when ``deterministic``."""
        mean = self.decode(obs, latent)
        if deterministic or not self.has_decoder_noise:
            return mean
        noise = th.randn_like(mean) * self.decoder_log_std_clamped().exp()
        return (mean + noise).clamp(-1.0, 1.0)

    def sample_prior(self, obs: th.Tensor, n_samples: int = 1, generator: th.Generator | None = None) -> th.Tensor:
        """z ~ p(z|s), shape (n_samples, batch, latent_dim); ``generator``: a random stream (default: torch's global one)."""
        mean, log_std = self.prior_distribution(obs)
        if self.flow is not None:  # N(0, I) restricted to [-b, b]^d, by the inverse of its CDF
            edge = 0.5 * (1.0 + math.erf(-self.latent_bound / math.sqrt(2.0)))  # Phi(-b)
            uniform = th.rand((n_samples, *mean.shape), device=mean.device, generator=generator)
            return th.special.ndtri(edge + (1.0 - 2.0 * edge) * uniform).clamp(-self.latent_bound, self.latent_bound)
        return mean + log_std.exp() * th.randn((n_samples, *mean.shape), device=mean.device, generator=generator)

    def forward(self, obs: th.Tensor, latent: th.Tensor, deterministic: bool = False) -> th.Tensor:
        return self.sample_actions(obs, latent, deterministic)

    # ------------------------------------------------------------------ the generator's own loss
    def loss(self, obs: th.Tensor, actions: th.Tensor, kl_weight: float) -> tuple[th.Tensor, th.Tensor]:
        """
        The negative ELBO on (s, a) pairs (poster, Figure 2): -J = -E_q[log g(a|s,z)] + beta KL(q(z|s,a) || p(z|s)).

        The generator owns its loss, so ``LatentSAC.train`` calls this one method whatever the generator is. It draws
        the encoder's noise eps ~ N(0, I) from torch's global random stream.

        :param obs: Observations, as ``LatentSACPolicy.generator_input`` returns them
        :param actions: Actions scaled to [-1, 1] (the replay buffer's)
        :param kl_weight: beta, the weight of the KL summed over latent dimensions
        :return: the loss to minimise, and the detached (reconstruction loss, KL) pair for logging; for the flow,
            the exact negative log-likelihood (see :meth:`flow_loss`) and a KL of 0 (``kl_weight`` is unused)
        """
        if self.flow is not None:
            nll = self.flow_loss(obs, actions)
            return nll, th.stack([nll.detach(), th.zeros_like(nll)])
        # z ~ q(z|s,a), reparameterised: z = mu_q + sigma_q * eps
        z_mean, z_log_std = self.encode(obs, actions)
        z_q = z_mean + z_log_std.exp() * th.randn((actions.shape[0], self.latent_dim), device=actions.device)
        # -E_q[log g(a|s,z)]: Gaussian on the scaled action, tanh-bounded mean, learned state-independent log-std;
        # finite at a = +-1 where a tanh-Gaussian's atanh(a) is not.
        decoder_log_std = self.decoder_log_std_clamped()
        error = (actions - self.decode(obs, z_q)) * th.exp(-decoder_log_std)
        reconstruction_loss = (0.5 * error.pow(2) + decoder_log_std).sum(dim=1).mean() + gaussian_log_prob_const(
            self.action_dim
        )
        # KL(q(z|s,a) || p(z|s)) between diagonal Gaussians, summed over latent dims
        if self.prior_net is None:  # p(z) = N(0, I): the closed form with mu_p = 0, sigma_p = 1
            kl = 0.5 * ((2.0 * z_log_std).exp() + z_mean.pow(2)) - z_log_std - 0.5
        else:  # learned p(z|s)
            prior_mean, prior_log_std = self.prior_distribution(obs)
            kl = (
                prior_log_std
                - z_log_std
                + 0.5 * ((2.0 * z_log_std).exp() + (z_mean - prior_mean).pow(2)) * th.exp(-2.0 * prior_log_std)
                - 0.5
            )
        kl_loss = kl.sum(dim=1).mean()
        return reconstruction_loss + kl_weight * kl_loss, th.stack([reconstruction_loss.detach(), kl_loss.detach()])

    def flow_loss(self, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """
        The flow's exact negative log-likelihood of the scaled ``actions`` at ``obs`` (mean over the batch):
        ``-log g(a|s) = -log p(z) - log abs(det dz/da)`` at ``z = b F_s^-1(a)``, with p(z) = N(0, I) restricted to the box.

        Its ELBO is this log-likelihood: the posterior q(z|s,a) is the point z = b F_s^-1(a), so the bound is tight.
        """
        assert self.flow is not None
        unit, log_det = self.flow.inverse_and_log_det(obs, actions)
        latent = self.latent_bound * unit
        log_likelihood = self.prior_log_prob(obs, latent).squeeze(1) + log_det + self.latent_dim * math.log(self.latent_bound)
        return -log_likelihood.mean()

    # ------------------------------------------------------------------ architecture, checks, save/load
    def architecture(self) -> dict[str, Any]:
        """Constructor arguments, in plain Python types (they go into the saved file)."""
        return dict(
            observation_space=observation_space_data(self.observation_space),
            action_dim=self.action_dim,
            latent_dim=self.latent_dim,
            net_arch=list(self.net_arch),
            activation_fn=self._activation_name,
            prior=self.prior,
            decoder=self.decoder,
            latent_gain=self.latent_gain,
            residual_bound=self.residual_bound,
            features_extractor_class=type(self.features_extractor).__name__,
            features_extractor_kwargs=dict(self.features_extractor_kwargs),
            normalize_images=self.normalize_images,
            latent_bound=self.latent_bound,
        )

    def check_spaces(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        """Raise a ValueError naming both when this generator does not fit those spaces: the same action size, and
        observations of the same shapes (the same Dict keys, and images where the generator read images)."""
        action_shape = tuple(action_space.shape or ())
        action_dim = int(np.prod(action_shape)) if action_shape else -1
        generator_obs = describe_observation_space(self.observation_space)
        model_obs = describe_observation_space(observation_space)
        if model_obs != generator_obs or action_dim != self.action_dim:
            raise UserInputError(
                f"Action generator shape mismatch: the generator was built for observations of {generator_obs} and "
                f"actions of shape ({self.action_dim},), but the model has observations of {model_obs} and actions of "
                f"shape {action_shape}. Load a generator trained on a task with the same observation and action shapes."
            )

    def save(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        """Save the architecture and the weights (no optimiser) to ``path`` (a ``torch.save`` file)."""
        saved = {"format": _FORMAT_VERSION, "architecture": self.architecture(), "state_dict": self.state_dict()}
        th.save(saved, path)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | pathlib.Path | io.BufferedIOBase, device: th.device | str = "auto") -> ActionGenerator:
        """Load a generator written by :meth:`save` (``weights_only`` loading: no code is unpickled)."""
        device = get_device(device)
        name = str(path) if isinstance(path, (str, pathlib.Path)) else repr(path)
        fix = "Write it with model.save_action_generator(path), or pass a LatentSAC zip or its rl-zoo3 run folder."
        if isinstance(path, (str, pathlib.Path)) and not pathlib.Path(path).is_file():
            raise UserInputError(f"No action generator file at {name}. {fix}")
        # Unpickling random bytes raises almost anything; and torch's message on a foreign pickle advises
        # weights_only=False, which is unsafe: to the user, the file is simply not a generator file.
        try:
            saved = th.load(path, map_location=device, weights_only=True)  # type: ignore[arg-type]
        except Exception as error:
            raise UserInputError(
                f"{name} is not an action generator file: torch cannot read it ({type(error).__name__}; truncated, corrupt "
                f"or another kind of file). {fix}"
            ) from None
        if not isinstance(saved, dict) or "architecture" not in saved or "state_dict" not in saved:
            raise UserInputError(
                f"{name} is a torch file but not an action generator file written by ActionGenerator.save(). {fix}"
            )
        if saved.get("format", 1) > _FORMAT_VERSION:
            raise UserInputError(
                f"{name} is an action generator file of format {saved['format']}, newer than this sb3-latent reads "
                f"({_FORMAT_VERSION}): upgrade sb3-latent."
            )
        try:
            # A file without these was written before the defaults changed (only the flow and sac-residual decoders
            # recorded their latent box then): it was built with the previous ones.
            kwargs = {**PREVIOUS_DEFAULTS, **saved["architecture"]}
            kwargs["activation_fn"] = getattr(nn, kwargs["activation_fn"])
            if "observation_shape" in kwargs:  # format 1: flat float observations of that shape
                kwargs["observation_space"] = kwargs.pop("observation_shape")
            else:
                kwargs["observation_space"] = observation_space_from_data(kwargs["observation_space"])
            generator = cls(**kwargs)
            generator.load_state_dict(saved["state_dict"])
        except (TypeError, KeyError, AttributeError, RuntimeError) as error:
            raise UserInputError(
                f"{name} is an action generator file whose architecture or weights do not fit this version of sb3-latent "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). {fix}"
            ) from None
        return generator.to(device)


def features_extractor_name(extractor_class: type[BaseFeaturesExtractor] | str) -> str:
    """The name ``extractor_class`` (a class or a name) is saved by; refuses one outside ``FEATURES_EXTRACTORS``."""
    name = extractor_class if isinstance(extractor_class, str) else getattr(extractor_class, "__name__", "")
    known = FEATURES_EXTRACTORS.get(name)
    if known is None or not (isinstance(extractor_class, str) or extractor_class is known):  # not a subclass of one
        raise UserInputError(
            f"The action generator's features extractor {extractor_class!r} cannot be saved by name in a generator "
            f"file: use one of {sorted(FEATURES_EXTRACTORS)} (policy_kwargs generator_features_extractor_class)."
        )
    return name


def observation_space_data(space: spaces.Space) -> dict[str, Any]:
    """``space`` as plain data for a ``weights_only`` file: a Box's shape, dtype, low and high; a Dict's keys and
    their Boxes. Refuses other spaces."""
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": [int(d) for d in space.shape],
            "dtype": np.dtype(space.dtype).name,
            "low": th.from_numpy(np.array(space.low)),
            "high": th.from_numpy(np.array(space.high)),
        }
    if isinstance(space, spaces.Dict) and all(isinstance(sub, spaces.Box) for sub in space.spaces.values()):
        return {"type": "Dict", "spaces": {str(key): observation_space_data(sub) for key, sub in space.spaces.items()}}
    raise UserInputError(
        f"The action generator reads Box observations or a Dict of Box observations, got {space}. "
        "Flatten or convert the others (gymnasium.wrappers.FlattenObservation)."
    )


def observation_space_from_data(data: dict[str, Any]) -> spaces.Space:
    """The space :func:`observation_space_data` wrote."""
    if data["type"] == "Dict":
        return spaces.Dict({key: observation_space_from_data(sub) for key, sub in data["spaces"].items()})
    dtype = np.dtype(data["dtype"])
    # .cpu(): a file loaded with map_location="cuda" puts these bounds on the GPU too.
    low, high = data["low"].cpu().numpy().astype(dtype), data["high"].cpu().numpy().astype(dtype)
    return spaces.Box(low=low, high=high, shape=tuple(data["shape"]), dtype=dtype)  # type: ignore[arg-type]


def describe_observation_space(space: spaces.Space) -> str:
    """``shape (17,)``, ``image shape (1, 36, 36)`` or ``Dict{'img': image shape (...), 'vec': shape (5,)}``:
    what a generator's features extractor depends on (the shapes, and which are images)."""
    if isinstance(space, spaces.Dict):
        return "Dict{" + ", ".join(f"{key!r}: {describe_observation_space(sub)}" for key, sub in space.spaces.items()) + "}"
    if not isinstance(space, spaces.Box):
        return str(space)
    return f"{'image ' if is_image_space(space) else ''}shape {tuple(space.shape)}"


def _is_plain_data(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_plain_data(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_plain_data(item) for key, item in value.items())
    return value is None or isinstance(value, (bool, int, float, str))


def resolve_latent_dim(latent_dim: Any, action_dim: int) -> int:
    """``latent_dim``, or the action dimension where it is ``None``; refuses anything but a positive integer."""
    if latent_dim is None:
        return int(action_dim)
    if not is_int(latent_dim) or latent_dim <= 0:
        raise UserInputError(
            f"latent_dim must be a positive integer, got {latent_dim!r}. "
            "Pass e.g. policy_kwargs=dict(latent_dim=6), or leave it out to use the action dimension."
        )
    return int(latent_dim)


def gaussian_log_prob_const(dim: int) -> float:
    """The constant ``0.5 * dim * log(2 pi)`` of a ``dim``-dimensional diagonal Gaussian log-density."""
    return 0.5 * dim * math.log(2.0 * math.pi)
