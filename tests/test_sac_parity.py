"""SB3 SAC parity: image and Dict observations (CnnPolicy, MultiInputPolicy), gSDE, batch-norm statistics in the target.

Every test trains a few hundred steps at most, with tiny networks.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.envs import FakeImageEnv, SimpleMultiObsEnv
from stable_baselines3.common.logger import configure
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.utils import get_parameters_by_name
from torch import nn

from sb3_latent import LatentSAC
from sb3_latent.common import ActionGenerator
from sb3_latent.errors import UserInputError

th.set_num_threads(1)

TINY = dict(net_arch=[16], generator_net_arch=[16])
SMALL_RUN = dict(learning_starts=50, batch_size=32, generator_warmup_steps=10, buffer_size=500, seed=0)
PENDULUM_RUN = dict(learning_starts=100, batch_size=64, generator_warmup_steps=10, seed=0, policy_kwargs=TINY)


def quiet(model: LatentSAC) -> LatentSAC:
    model.set_logger(configure(None, [""]))
    return model


def image_env() -> gym.Env:
    # 36x36 is the smallest image NatureCNN's three convolutions accept.
    return FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=False)


def dict_env() -> gym.Env:
    # A 64x64 image and a 5-vector, continuous actions in [0, 1]^4.
    return SimpleMultiObsEnv(random_start=True, discrete_actions=False)


# policy, env, features extractor the generator gets, its tiny kwargs
OBSERVATION_CASES = {
    "image": ("CnnPolicy", image_env, NatureCNN, dict(features_dim=8)),
    "dict": ("MultiInputPolicy", dict_env, CombinedExtractor, dict(cnn_output_dim=8)),
}


def env_observations(env: gym.Env, n: int = 4) -> list:
    env.reset(seed=0)
    return [env.observation_space.sample() for _ in range(n)]


def state(module: nn.Module) -> dict[str, th.Tensor]:
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


def same_state(module: nn.Module, expected: dict[str, th.Tensor]) -> bool:
    actual = module.state_dict()
    return actual.keys() == expected.keys() and all(th.equal(actual[key], expected[key]) for key in expected)


def walk(value):
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from walk(item)


@pytest.mark.parametrize("case", list(OBSERVATION_CASES))
def test_image_and_dict_observations_train_save_load_and_transfer(case: str, tmp_path) -> None:
    policy, make_env, extractor_class, extractor_kwargs = OBSERVATION_CASES[case]
    policy_kwargs = dict(TINY, features_extractor_kwargs=extractor_kwargs)
    model = quiet(LatentSAC(policy, make_env(), policy_kwargs=policy_kwargs, **SMALL_RUN))
    generator = model.action_generator
    # The generator reads the state through an extractor of its own: the same kind as the actor's, not the same module.
    assert type(generator.features_extractor) is extractor_class
    assert generator.features_extractor is not model.actor.features_extractor
    extractor_before = state(generator.features_extractor)

    model.learn(120)
    assert model._n_updates == 120 - SMALL_RUN["learning_starts"]
    assert model._n_generator_updates == model._n_updates + SMALL_RUN["generator_warmup_steps"]
    # The ELBO trains the generator's extractor (the RL losses never reach it).
    assert not same_state(generator.features_extractor, extractor_before)

    observations = env_observations(make_env())
    model.save(tmp_path / "model.zip")
    loaded = LatentSAC.load(tmp_path / "model.zip")
    assert type(loaded.action_generator.features_extractor) is extractor_class
    assert same_state(loaded.action_generator, state(generator))
    for obs in observations:
        np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])

    # Transfer through a generator file read with weights_only, to a fresh model whose actor has another extractor
    # size: the generator keeps its own.
    model.save_action_generator(tmp_path / "generator.pt")
    th.load(tmp_path / "generator.pt", weights_only=True)
    other_kwargs = {key: 2 * value for key, value in extractor_kwargs.items()}
    target = quiet(
        LatentSAC(
            policy,
            make_env(),
            action_generator=str(tmp_path / "generator.pt"),
            generator_mode="frozen",
            policy_kwargs=dict(net_arch=[16], features_extractor_kwargs=other_kwargs),
            **SMALL_RUN,
        )
    )
    assert same_state(target.action_generator, state(generator))
    assert target.action_generator.features_extractor_kwargs == generator.features_extractor_kwargs
    assert target.actor.features_extractor.features_dim != generator.obs_dim
    target.learn(60)
    assert target._n_updates > 0 and same_state(target.action_generator, state(generator))


def test_generator_file_is_plain_data(tmp_path) -> None:
    space = spaces.Dict({"img": spaces.Box(0, 255, (1, 36, 36), np.uint8), "vec": spaces.Box(-1.0, 2.0, (3,))})
    generator = ActionGenerator(space, 2, net_arch=[8], features_extractor_class="CombinedExtractor",
                                features_extractor_kwargs=dict(cnn_output_dim=4))  # fmt: skip
    generator.save(tmp_path / "generator.pt")
    saved = th.load(tmp_path / "generator.pt", weights_only=True)
    architecture = saved["architecture"]
    assert saved["format"] == 2 and architecture["features_extractor_class"] == "CombinedExtractor"
    image = architecture["observation_space"]["spaces"]["img"]
    assert image["shape"] == [1, 36, 36] and image["dtype"] == "uint8" and int(image["high"].max()) == 255
    assert list(architecture["observation_space"]["spaces"]) == ["img", "vec"]
    # No gym Space, class or other object that weights_only would have to unpickle.
    allowed = (dict, list, tuple, str, int, float, bool, type(None), th.Tensor)
    assert all(isinstance(value, allowed) for value in walk(saved))

    loaded = ActionGenerator.load(tmp_path / "generator.pt")
    assert loaded.observation_space == space and type(loaded.features_extractor) is CombinedExtractor
    assert same_state(loaded, state(generator))


def test_format_1_generator_file_still_loads(tmp_path) -> None:
    # Files written before the features extractor: a flat observation shape, no extractor entries.
    generator = ActionGenerator((3,), 1, net_arch=[8])
    architecture = generator.architecture()
    for key in ("observation_space", "features_extractor_class", "features_extractor_kwargs", "normalize_images"):
        del architecture[key]
    th.save({"format": 1, "architecture": {"observation_shape": [3], **architecture}, "state_dict": generator.state_dict()},
            tmp_path / "old.pt")  # fmt: skip
    loaded = ActionGenerator.load(tmp_path / "old.pt")
    assert type(loaded.features_extractor) is FlattenExtractor and loaded.obs_dim == 3
    assert same_state(loaded, state(generator))
    model = LatentSAC("Pendulum-v1", action_generator=str(tmp_path / "old.pt"), generator_mode="frozen", seed=0)
    assert same_state(model.action_generator, state(generator))


class BatchNormExtractor(BaseFeaturesExtractor):
    """Flatten, then batch norm: a features extractor with running statistics (not one a generator file can name)."""

    def __init__(self, observation_space: spaces.Space):
        super().__init__(observation_space, get_flattened_obs_dim(observation_space))
        self.net = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(self.features_dim))

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.net(observations)


def test_generator_features_extractor_must_be_saveable_by_name() -> None:
    with pytest.raises(UserInputError, match=r"cannot be saved by name.*CombinedExtractor"):
        ActionGenerator((3,), 1, features_extractor_class=BatchNormExtractor)
    with pytest.raises(UserInputError, match="plain data"):
        ActionGenerator((3,), 1, features_extractor_kwargs=dict(activation=nn.ReLU))
    with pytest.raises(UserInputError, match=r"NatureCNN.*cannot read observations of shape \(3,\)"):
        ActionGenerator((3,), 1, features_extractor_class=NatureCNN)
    with pytest.raises(UserInputError, match="cannot be saved by name"):
        LatentSAC("Pendulum-v1", policy_kwargs=dict(generator_features_extractor_class="MyExtractor"))


def test_transfer_checks_compare_dict_keys_and_images() -> None:
    vec, img = spaces.Box(-1, 1, (5,)), spaces.Box(0, 255, (1, 36, 36), np.uint8)
    space = spaces.Dict({"img": img, "vec": vec})
    generator = ActionGenerator(space, 4, net_arch=[8], features_extractor_class=CombinedExtractor)
    generator.check_spaces(spaces.Dict({"img": img, "vec": vec}), spaces.Box(-1, 1, (4,)))
    others = (
        spaces.Dict({"img": img, "goal": vec}),  # another key
        spaces.Dict({"img": spaces.Box(0.0, 1.0, (1, 36, 36)), "vec": vec}),  # float pixels, not an image
        spaces.Box(-1, 1, (1301,)),  # the same numbers, flat
    )
    for other in others:
        with pytest.raises(UserInputError, match=r"shape mismatch.*Dict\{'img': image shape \(1, 36, 36\)"):
            generator.check_spaces(other, spaces.Box(-1, 1, (4,)))


def test_batch_norm_statistics_follow_the_critic() -> None:
    model = quiet(
        LatentSAC(
            "MlpPolicy",
            "Pendulum-v1",
            learning_starts=100,
            batch_size=64,
            generator_warmup_steps=10,
            seed=0,
            policy_kwargs=dict(TINY, features_extractor_class=BatchNormExtractor),
        )
    )
    # A features extractor outside the allow-list: the generator falls back to SB3's MlpPolicy one.
    assert type(model.action_generator.features_extractor) is FlattenExtractor
    critic_stats = get_parameters_by_name(model.critic, ["running_"])
    target_stats = get_parameters_by_name(model.critic_target, ["running_"])
    assert len(critic_stats) == len(target_stats) == 2  # running mean and var of the critic's extractor
    model.learn(200)
    # The running means moved from their initial zeros; the target's followed the critic's exactly (not by tau).
    assert all(stat.abs().sum() > 0 for stat in critic_stats[::2])
    for stat, target in zip(critic_stats, target_stats, strict=True):
        assert th.equal(stat, target)


class RecordStochasticActions(BaseCallback):
    """After every env step, the stochastic action of one fixed observation (the noise that step used)."""

    def __init__(self, obs: np.ndarray):
        super().__init__()
        self.obs, self.actions = obs, []

    def _on_step(self) -> bool:
        self.actions.append(self.model.predict(self.obs, deterministic=False)[0])
        return True


def test_gsde_noise_held_for_sde_sample_freq_steps() -> None:
    # train_freq=8: one rollout of 8 steps, the noise resampled at its start and every sde_sample_freq=4 steps.
    model = quiet(LatentSAC("Pendulum-v1", use_sde=True, sde_sample_freq=4, train_freq=8, **PENDULUM_RUN))
    obs = model.observation_space.sample()
    record = RecordStochasticActions(obs)
    model.learn(16, callback=record)
    blocks = np.array(record.actions).reshape(4, 4, -1)
    for block in blocks:
        assert all(np.array_equal(action, block[0]) for action in block)
    assert all(not np.array_equal(blocks[i][0], blocks[i + 1][0]) for i in range(3))

    # The same observation gives the same stochastic action until the noise is reset (the decoder adds none).
    first = model.predict(obs, deterministic=False)[0]
    np.testing.assert_array_equal(model.predict(obs, deterministic=False)[0], first)
    model.policy.reset_noise()
    assert not np.array_equal(model.predict(obs, deterministic=False)[0], first)


def test_gsde_exploration_matrix_gets_gradients() -> None:
    model = quiet(LatentSAC("Pendulum-v1", use_sde=True, **PENDULUM_RUN))
    actor = model.actor
    obs = th.as_tensor(np.stack([model.observation_space.sample() for _ in range(8)]))
    actor.reset_noise()
    assert actor.action_dist.exploration_mat.requires_grad
    latent, _, _ = actor.sample_latent(obs)
    # z depends on log_std only through the exploration matrix (its mean does not).
    (gradient,) = th.autograd.grad(latent.sum(), actor.log_std)
    assert gradient.abs().sum() > 0
    log_std_before = actor.log_std.detach().clone()
    model.learn(200)
    assert not th.equal(actor.log_std.detach(), log_std_before)


def test_gsde_noise_reset_at_every_gradient_step() -> None:
    model = quiet(LatentSAC("Pendulum-v1", use_sde=True, **PENDULUM_RUN))
    model.learn(PENDULUM_RUN["learning_starts"])  # fills the buffer, no gradient step yet
    reset, matrices = model.actor.reset_noise, []

    def spy(batch_size: int = 1) -> None:
        reset(batch_size)
        matrices.append((batch_size, model.actor.action_dist.exploration_mat.detach().clone()))

    model.actor.reset_noise = spy  # type: ignore[method-assign]
    model.train(gradient_steps=5, batch_size=32)
    assert [batch_size for batch_size, _ in matrices] == [1] * 5
    assert all(not th.equal(matrices[i][1], matrices[i + 1][1]) for i in range(4))


@pytest.mark.parametrize("use_sde_at_warmup", [False, True])
def test_gsde_at_warmup(use_sde_at_warmup: bool) -> None:
    model = quiet(LatentSAC("Pendulum-v1", use_sde=True, use_sde_at_warmup=use_sde_at_warmup, **PENDULUM_RUN))
    predict, calls = model.predict, []
    model.predict = lambda *args, **kwargs: calls.append(1) or predict(*args, **kwargs)  # type: ignore[method-assign]
    model.learn(20)  # all before learning_starts: uniform random actions, unless gSDE explores from the start
    assert len(calls) == (20 if use_sde_at_warmup else 0)


@pytest.mark.parametrize("generator_mode", ["train", "residual"])
def test_gsde_model_saves_and_loads(generator_mode: str, tmp_path) -> None:
    kwargs = dict(PENDULUM_RUN)
    if generator_mode == "residual":
        source = ActionGenerator((3,), 1, net_arch=[16])
        kwargs.update(action_generator=source, generator_mode="residual", policy_kwargs=dict(net_arch=[16]))
    model = quiet(LatentSAC("Pendulum-v1", use_sde=True, sde_sample_freq=2, **kwargs))
    model.learn(150)
    model.save(tmp_path / "model.zip")
    loaded = quiet(LatentSAC.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1")))
    assert loaded.use_sde and loaded.sde_sample_freq == 2 and loaded.actor.use_sde
    assert th.equal(loaded.actor.log_std, model.actor.log_std)
    obs = np.stack([model.observation_space.sample() for _ in range(4)])
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    # The same exploration matrix gives the same stochastic actions.
    for algo in (model, loaded):
        th.manual_seed(1)
        algo.policy.reset_noise()
    np.testing.assert_array_equal(loaded.predict(obs)[0], model.predict(obs)[0])
    before = state(loaded.actor)
    loaded.learn(50, reset_num_timesteps=False)
    assert not same_state(loaded.actor, before)
