"""LatentSAC's SAC-equivalent configuration: the identity decoder on the unit latent box, no decoder noise when
acting, a generator that never trains, and the entropy regulariser, so that log pi(z|s) is SAC's log pi(a|s).

From the same weights, minibatch and noise, one gradient step must give SB3 SAC's losses and weights: the rung from
which the latent ablation (``python -m sb3_latent.experiments latent-ablation``) starts.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure

from sb3_latent import LatentSAC

NET = dict(net_arch=[64, 64], optimizer_kwargs=dict(fused=True))
SAC_EQUIVALENT = dict(
    generator_mode="fixed",
    policy_kwargs=dict(NET, decoder="identity", latent_bound=1.0, decoder_noise=False, generator_net_arch=[16]),
)


def twin_models(env_id: str = "Pendulum-v1") -> tuple[SAC, LatentSAC]:
    """SB3 SAC and LatentSAC with the same weights and the same replay buffer of random transitions."""
    sac = SAC("MlpPolicy", env_id, batch_size=64, learning_starts=200, policy_kwargs=NET, seed=0, device="cpu")
    sac.learn(200)  # random actions only: fills the buffer, no gradient step
    latent = LatentSAC("MlpPolicy", env_id, batch_size=64, learning_starts=200, seed=1, device="cpu", **SAC_EQUIVALENT)
    latent.actor.load_state_dict(sac.actor.state_dict())
    latent.critic.load_state_dict(sac.critic.state_dict())
    latent.critic_target.load_state_dict(sac.critic_target.state_dict())
    with th.no_grad():
        latent.log_ent_coef.copy_(sac.log_ent_coef)
    latent.replay_buffer = copy.deepcopy(sac.replay_buffer)
    for model in (sac, latent):
        model.set_logger(configure(None, [""]))
    assert sac.target_entropy == latent.target_entropy == -1.0
    return sac, latent


def seeded_train(model: SAC, gradient_steps: int) -> None:
    th.manual_seed(123)  # the latent policy's noise, in z and in z'
    np.random.seed(123)  # the replay buffer's minibatch
    model.train(gradient_steps, batch_size=64)


@pytest.mark.parametrize("gradient_steps", [1, 3])
def test_one_gradient_step_is_sacs(gradient_steps: int) -> None:
    sac, latent = twin_models()
    seeded_train(sac, gradient_steps)
    seeded_train(latent, gradient_steps)
    assert latent._n_generator_updates == 0
    for key in ("train/critic_loss", "train/actor_loss", "train/ent_coef_loss", "train/ent_coef"):
        expected, actual = sac.logger.name_to_value[key], latent.logger.name_to_value[key]
        assert actual == pytest.approx(expected, abs=1e-6), key
    for name in ("actor", "critic", "critic_target"):
        expected_state, actual_state = getattr(sac, name).state_dict(), getattr(latent, name).state_dict()
        assert expected_state.keys() == actual_state.keys()
        for key, tensor in expected_state.items():
            th.testing.assert_close(actual_state[key], tensor, atol=1e-6, rtol=0, msg=f"{name}.{key}")
    th.testing.assert_close(latent.log_ent_coef, sac.log_ent_coef, atol=1e-6, rtol=0)


def test_acting_is_sacs() -> None:
    sac, latent = twin_models()
    obs = np.stack([sac.observation_space.sample() for _ in range(8)])
    for deterministic in (True, False):
        th.manual_seed(5)
        expected, _ = sac.predict(obs, deterministic=deterministic)
        th.manual_seed(5)
        actual, _ = latent.predict(obs, deterministic=deterministic)
        np.testing.assert_allclose(actual, expected, atol=1e-6)


def test_fixed_generator_mode_refusals(tmp_path) -> None:
    from sb3_latent.errors import UserInputError

    source = LatentSAC("Pendulum-v1", learning_starts=10, policy_kwargs=dict(generator_net_arch=[16]))
    with pytest.raises(UserInputError, match="generator_mode='frozen' to keep a pretrained"):
        LatentSAC("Pendulum-v1", generator_mode="fixed", action_generator=source)
    with pytest.raises(UserInputError, match="actor_trains_generator=False"):
        LatentSAC("Pendulum-v1", generator_mode="fixed", actor_trains_generator=True)
    with pytest.raises(UserInputError, match="decoder='identity' maps each latent axis"):
        LatentSAC("Pendulum-v1", policy_kwargs=dict(decoder="identity", latent_dim=2))
