"""LatentSAC: run, save/load, determinism, generator learning and transfer, bounds, bad input, NaN check."""

import csv
import math
import os

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from sb3_latent import LatentSAC
from sb3_latent.common import ActionGenerator
from sb3_latent.errors import UserInputError
from sb3_latent.latent_sac import LatentSACPolicy

os.environ.setdefault("OMP_NUM_THREADS", "1")
th.set_num_threads(1)

# Tiny networks and a short generator warm-up: every test trains for a few hundred steps at most.
TINY = dict(net_arch=[64, 64], generator_net_arch=[32, 32])
FAST = dict(learning_starts=100, generator_warmup_steps=20, policy_kwargs=TINY)
LOGGED = (
    "train/reconstruction_loss",
    "train/kl_loss",
    "train/elbo",
    "train/actor_loss",
    "train/critic_loss",
    "train/ent_coef",
    "train/latent_entropy",
)


def quiet(model: LatentSAC) -> LatentSAC:
    """Keep the last logged values in memory instead of printing them (log_interval is never reached)."""
    model.set_logger(configure(None, [""]))
    return model


class ObsEnv(gym.Env):
    """Random observations of ``observation_space``, actions in [-1, 1], no reward."""

    action_space = spaces.Box(-1, 1, (1,))

    def __init__(self, observation_space: spaces.Space):
        self.observation_space = observation_space

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


@pytest.mark.parametrize("decoder", ["residual", "mlp", "sac-residual"])
@pytest.mark.parametrize("prior", ["standard", "learned"])
def test_learn_pendulum(decoder: str, prior: str) -> None:
    policy_kwargs = dict(TINY, decoder=decoder, prior=prior)
    if decoder == "mlp":
        policy_kwargs["latent_dim"] = 2  # the plain CVAE decoder allows any latent size
    model = quiet(
        LatentSAC("MlpPolicy", "Pendulum-v1", learning_starts=100, generator_warmup_steps=20, policy_kwargs=policy_kwargs)
    )
    model.learn(150)
    assert model._n_updates == 50
    assert model._n_generator_updates == 20 + 50
    logged = model.logger.name_to_value
    for key in LOGGED:
        assert key in logged and math.isfinite(logged[key]), key
    diagnostics = model.generator_diagnostics()
    assert diagnostics["action_spread_over_z"] > 0.01  # the decoder uses z
    assert 0 < diagnostics["decoder_std"] <= 1
    assert model.target_entropy == -model.policy.latent_dim


@pytest.mark.parametrize("latent_bound", [1.0, 2.0])
def test_sac_residual_decoder_starts_as_sac_and_covers_the_action_box(latent_bound: float) -> None:
    generator = ActionGenerator((5,), 3, decoder="sac-residual", latent_bound=latent_bound)
    pre_squash = 3.0 * th.randn(1000, 3)
    obs, latent = th.randn(1000, 5), latent_bound * th.tanh(pre_squash)  # the latent policy's z = b tanh(u)
    assert th.allclose(generator.decode(obs, latent), th.tanh(pre_squash), atol=1e-5)  # SAC's action tanh(u)
    with th.no_grad():  # any warp: the faces of the latent box still decode onto the faces of the action box
        for parameter in generator.decoder_net.parameters():
            parameter.normal_(0.0, 3.0)
    faces = latent_bound * th.sign(th.randn(1000, 3))
    decoded = generator.decode(obs, faces)
    assert th.allclose(decoded, faces / latent_bound, atol=1e-4)
    assert generator.decode(obs, 0.5 * latent).std() > 0.1  # and it is warped inside


def test_learn_halfcheetah() -> None:
    model = quiet(
        LatentSAC("HalfCheetah-v4", learning_starts=100, generator_warmup_steps=20, batch_size=64, policy_kwargs=TINY)
    )
    assert isinstance(model.policy, LatentSACPolicy)
    model.learn(300)
    assert model.policy.latent_dim == 6 and model.target_entropy == -6.0
    assert model._n_updates == 200


def test_call_forms() -> None:
    env = gym.make("Pendulum-v1")
    for model in (
        LatentSAC("Pendulum-v1", **FAST),
        LatentSAC(env, **FAST),
        LatentSAC("MlpPolicy", env, **FAST),
        LatentSAC(policy="MlpPolicy", env="Pendulum-v1", **FAST),
        LatentSAC(LatentSACPolicy, "Pendulum-v1", **FAST),
    ):
        assert isinstance(model.policy, LatentSACPolicy)
        assert model.observation_space.shape == (3,)
    with pytest.raises(ValueError, match="needs an environment"):
        LatentSAC("MlpPolicy")


def test_save_load(tmp_path) -> None:
    policy_kwargs = dict(TINY, generator_net_arch=[24], prior="learned")
    model = quiet(
        LatentSAC("Pendulum-v1", learning_starts=100, generator_warmup_steps=20, policy_kwargs=policy_kwargs, seed=1)
    )
    model.learn(200)
    obs = np.stack([model.observation_space.sample() for _ in range(8)])
    action, _ = model.predict(obs, deterministic=True)
    params = model.get_parameters()
    assert "generator_optimizer" in params and params["generator_optimizer"]["state"]

    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    model.policy.save(tmp_path / "policy.pth")

    # A reloaded model rebuilds the generator's shapes from the zip (rl-zoo3's -i drops policy_kwargs).
    loaded = LatentSAC.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"))
    assert loaded.policy_kwargs["generator_net_arch"] == [24] and loaded.action_generator.prior == "learned"
    assert loaded.action_generator is loaded.policy.action_generator
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], action)
    for name, value in params.items():
        if name.endswith("optimizer"):
            continue
        for key, tensor in value.items():
            assert th.equal(tensor, loaded.get_parameters()[name][key]), (name, key)
    saved_state = params["generator_optimizer"]["state"]
    loaded_state = loaded.generator_optimizer.state_dict()["state"]
    assert all(th.equal(saved_state[k]["exp_avg"], loaded_state[k]["exp_avg"]) for k in saved_state)
    assert loaded._generator_warmed_up and loaded._n_generator_updates == model._n_generator_updates

    # Replay buffer, set_env, more training.
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    assert loaded.replay_buffer is not None and loaded.replay_buffer.size() == model.replay_buffer.size()
    loaded.set_env(make_vec_env("Pendulum-v1", n_envs=1))
    quiet(loaded).learn(50, reset_num_timesteps=False)
    assert loaded._n_updates > model._n_updates

    # set_parameters restores the predictions of the saved model.
    loaded.set_parameters(str(tmp_path / "model.zip"))
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], action)

    # The policy alone (actor + critic + generator).
    policy = LatentSACPolicy.load(tmp_path / "policy.pth")
    np.testing.assert_allclose(policy.predict(obs, deterministic=True)[0], action)


def test_same_seed_same_result() -> None:
    def run(seed: int) -> dict[str, th.Tensor]:
        model = quiet(LatentSAC("Pendulum-v1", seed=seed, **FAST))
        model.learn(200)
        return {
            f"{name}.{key}": tensor.clone()
            for name, value in model.get_parameters().items()
            if name == "policy"
            for key, tensor in value.items()
        }

    first, second, other = run(3), run(3), run(4)
    assert all(th.equal(first[key], second[key]) for key in first)
    assert not all(th.equal(first[key], other[key]) for key in first)


@pytest.mark.parametrize("decoder", ["residual", "mlp", "sac-residual"])
def test_generator_lowers_reconstruction_loss(decoder: str) -> None:
    model = quiet(
        LatentSAC(
            "HalfCheetah-v4",
            learning_starts=600,
            generator_warmup_steps=300,
            generator_learning_rate=1e-3,
            batch_size=128,
            policy_kwargs=dict(TINY, decoder=decoder),
            seed=0,
        )
    )
    model.learn(600)  # random-exploration data only: no update yet
    assert model._n_generator_updates == 0
    batch = model.replay_buffer.sample(512)
    generator = model.action_generator

    def reconstruction_loss() -> float:
        # -log g(a|s, z = mean of q(z|s,a)) on a fixed batch of real transitions
        with th.no_grad():
            obs = model.policy.generator_input(batch.observations)
            z_mean, _ = generator.encode(obs, batch.actions)
            log_std = generator.decoder_log_std_clamped()
            error = (batch.actions - generator.decode(obs, z_mean)) * th.exp(-log_std)
            return float((0.5 * error.pow(2) + log_std).sum(dim=1).mean())

    before = reconstruction_loss()
    model.train(gradient_steps=1, batch_size=128)  # the first call runs the 300 warm-up updates
    assert model._n_generator_updates == 301
    after = reconstruction_loss()
    assert after < before - 1.0, (before, after)


@pytest.mark.parametrize("deterministic", [True, False])
@pytest.mark.parametrize("n_obs", [None, 5])
def test_action_shapes_and_bounds(deterministic: bool, n_obs: int | None) -> None:
    # Asymmetric bounds: [0, 5] instead of Pendulum's [-2, 2]
    env = gym.wrappers.RescaleAction(gym.make("Pendulum-v1"), min_action=0.0, max_action=5.0)
    model = LatentSAC(env, **FAST)
    # An extreme decoder noise, so that stochastic actions would leave the box without clipping.
    with th.no_grad():
        model.action_generator.decoder_log_std.fill_(10.0)
    for _ in range(20):
        obs = model.observation_space.sample() if n_obs is None else np.stack([model.observation_space.sample()] * n_obs)
        action, _ = model.predict(obs, deterministic=deterministic)
        assert action.shape == ((1,) if n_obs is None else (n_obs, 1))
        assert np.all(action >= 0.0) and np.all(action <= 5.0)
    cheetah = LatentSAC("HalfCheetah-v4", **FAST)
    obs = np.stack([cheetah.observation_space.sample()] * 3)
    action, _ = cheetah.predict(obs, deterministic=deterministic)
    assert action.shape == (3, 6) and np.all(np.abs(action) <= 1.0)


def test_multi_env_and_train_freq() -> None:
    model = quiet(LatentSAC("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=2), generator_train_freq=3, **FAST))
    model.learn(300)
    assert model._n_generator_updates == 20 + math.ceil(model._n_updates / 3)


def test_generator_save_load_into_another_model(tmp_path) -> None:
    source = quiet(LatentSAC("Pendulum-v1", learning_starts=100, generator_warmup_steps=50, policy_kwargs=TINY, seed=0))
    source.learn(120)
    source.save_action_generator(tmp_path / "generator.pt")
    obs = th.as_tensor(np.stack([source.observation_space.sample() for _ in range(4)]))
    z = th.rand(4, 1) * 4 - 2
    expected = source.action_generator.decode(obs, z)

    standalone = ActionGenerator.load(tmp_path / "generator.pt")
    th.testing.assert_close(standalone.decode(obs, z), expected)

    # Constructor argument: the generator's architecture ([32, 32]) wins over the default ([64, 64]).
    target = LatentSAC("Pendulum-v1", action_generator=str(tmp_path / "generator.pt"), learning_starts=100)
    assert target.policy_kwargs["generator_net_arch"] == [32, 32]
    th.testing.assert_close(target.action_generator.decode(obs, z), expected)
    target.save(tmp_path / "target.zip")
    th.testing.assert_close(LatentSAC.load(tmp_path / "target.zip").action_generator.decode(obs, z), expected)

    # Method: replaces the generator and its optimiser; a loaded generator is not warmed up again.
    other = quiet(LatentSAC("Pendulum-v1", **FAST))
    other.load_action_generator(tmp_path / "generator.pt")
    th.testing.assert_close(other.action_generator.decode(obs, z), expected)
    assert other.generator_optimizer.param_groups[0]["params"][0] is next(other.action_generator.parameters())
    other.learn(110)
    assert other._n_generator_updates == 10

    # Mismatched observation/action shapes name both shapes.
    cheetah = LatentSAC("HalfCheetah-v4", **FAST)
    with pytest.raises(ValueError, match=r"\(3,\).*\(1,\).*\(17,\).*\(6,\)"):
        cheetah.load_action_generator(tmp_path / "generator.pt")
    with pytest.raises(ValueError, match="shape mismatch"):
        LatentSAC("HalfCheetah-v4", action_generator=tmp_path / "generator.pt")


def test_frozen_generator_and_actor_gradient() -> None:
    # The actor's loss must not move the decoder (default), and a frozen generator must not move at all.
    generator = ActionGenerator((3,), 1, net_arch=TINY["generator_net_arch"])
    frozen = quiet(LatentSAC("Pendulum-v1", generator_mode="frozen", action_generator=generator, **FAST))
    before = {k: v.clone() for k, v in frozen.action_generator.state_dict().items()}
    frozen.learn(200)
    assert frozen._n_generator_updates == 0
    assert all(th.equal(before[k], v) for k, v in frozen.action_generator.state_dict().items())

    critic_before = [p.clone() for p in frozen.critic.parameters()]
    assert not all(th.equal(a, b) for a, b in zip(critic_before, frozen.critic_target.parameters(), strict=True))

    # The ablation actor_trains_generator=True: with the same seed and ELBO updates, the actor's loss moves the decoder.
    decoders = []
    for actor_trains_generator in (False, True):
        model = quiet(LatentSAC("Pendulum-v1", seed=0, actor_trains_generator=actor_trains_generator, **FAST))
        model.learn(200)
        decoders.append(model.action_generator.decoder_net.state_dict())
    assert not all(th.equal(decoders[0][k], decoders[1][k]) for k in decoders[0])


@pytest.mark.parametrize(
    "make_model, match",
    [
        (lambda: LatentSAC("CartPole-v1"), "continuous .Box. action space"),
        (lambda: LatentSAC("MlpPolicy", ObsEnv(spaces.Dict({"x": spaces.Box(-1, 1, (2,))}))), "MultiInputPolicy"),
        (lambda: LatentSAC("MlpPolicy", ObsEnv(spaces.Discrete(4))), "Box observation space or a Dict of Box spaces"),
        (lambda: LatentSAC("MultiInputPolicy", ObsEnv(spaces.Dict({"x": spaces.Discrete(3)}))), "Dict of Box spaces"),
        (lambda: LatentSAC("Pendulum-v1", policy_kwargs=dict(latent_dim=0)), "latent_dim must be a positive integer"),
        (lambda: LatentSAC("Pendulum-v1", policy_kwargs=dict(latent_dim=-2, decoder="mlp")), "latent_dim must be"),
        (lambda: LatentSAC("Pendulum-v1", policy_kwargs=dict(latent_dim=3)), "latent_dim == action_dim"),
        (lambda: LatentSAC("Pendulum-v1", policy_kwargs=dict(prior="flow")), "prior must be one of"),
        (lambda: LatentSAC("Pendulum-v1", kl_weight=-1.0), "kl_weight"),
        (lambda: LatentSAC("Pendulum-v1", generator_train_freq=0), "generator_train_freq"),
        (lambda: LatentSAC("Pendulum-v1", generator_warmup_steps=-1), "generator_warmup_steps"),
        (lambda: LatentSAC("Pendulum-v1", generator_mode="bogus"), "generator_mode must be one of"),
        (lambda: LatentSAC("Pendulum-v1", kl_weight="abc"), "kl_weight must be a finite number >= 0 .*, got 'abc'"),
    ],
)
def test_bad_input(make_model, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_model()


class SaveEveryStep(BaseCallback):
    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def _on_step(self) -> bool:
        self.model.save(self.path)
        return True


@pytest.mark.parametrize("corrupt, loss", [("rewards", "critic_loss"), ("actions", "reconstruction_loss")])
def test_nan_loss_stops_training(tmp_path, corrupt: str, loss: str) -> None:
    model = quiet(LatentSAC("Pendulum-v1", **FAST))
    model.learn(150)
    getattr(model.replay_buffer, corrupt)[:] = np.nan
    path = str(tmp_path / "checkpoint.zip")
    with pytest.raises(ValueError, match=rf"{loss} is nan at (gradient step|generator update) \d+"):
        model.learn(10, callback=SaveEveryStep(path), reset_num_timesteps=False)
    # The checkpoint written before the failing update is intact: no NaN reached a saved model.
    saved = LatentSAC.load(path)
    assert all(th.isfinite(p).all() for p in saved.policy.parameters())


def test_logging_outputs(tmp_path) -> None:
    model = LatentSAC("Pendulum-v1", tensorboard_log=str(tmp_path), **FAST)
    model.learn(250, progress_bar=True, log_interval=1, tb_log_name="latent")
    assert any(name.startswith("latent") for name in os.listdir(tmp_path))


def test_generator_diagnostics_are_logged_without_changing_training(tmp_path) -> None:
    def run(log_interval: int) -> LatentSAC:
        model = LatentSAC("Pendulum-v1", seed=0, **FAST)
        model.set_logger(configure(str(tmp_path / str(log_interval)), ["csv"]))
        model.learn(450, log_interval=log_interval)  # Pendulum episodes are 200 steps: dumps at 200 and 400
        return model

    logged, silent = run(log_interval=1), run(log_interval=1000)
    with open(tmp_path / "1" / "progress.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2
    assert all(float(row["train/action_spread_over_z"]) > 0.01 and float(row["train/decoder_std"]) > 0 for row in rows)
    # The diagnostics draw their codes from a private stream: logging them leaves training bit-identical.
    for key, tensor in logged.policy.state_dict().items():
        assert th.equal(tensor, silent.policy.state_dict()[key]), key


def test_target_entropy_and_kl_weight_are_settable() -> None:
    model = LatentSAC("Pendulum-v1", target_entropy=-3.5, kl_weight=0.1, generator_learning_rate=1e-4, **FAST)
    assert model.target_entropy == -3.5 and model.kl_weight == 0.1
    assert model.generator_optimizer.param_groups[0]["lr"] == 1e-4


def test_tuning_sampler() -> None:
    optuna = pytest.importorskip("optuna")
    from sb3_latent.latent_sac.tuning import convert_latent_sac_params, sample_latent_sac_params

    decoders = set()
    for seed in (0, 1, 2, 13):  # seeds whose first draws cover the four decoders
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
        params = sample_latent_sac_params(trial, n_actions=1, n_envs=1, additional_args={"using_her_replay_buffer": False})
        decoders.add(params["policy_kwargs"]["decoder"])
        for key in ("kl_weight", "learning_rate", "generator_learning_rate", "target_entropy", "policy_kwargs"):
            assert key in params
        assert "latent_dim" in params["policy_kwargs"]
        model = LatentSAC("Pendulum-v1", **params)
        assert model.policy.latent_dim == params["policy_kwargs"]["latent_dim"]
        # rl-zoo3 rebuilds a stored trial's hyperparameters from trial.params with the registered converter.
        assert convert_latent_sac_params(trial.params | {"n_actions": 1}) == params
    assert decoders == {"sac-residual", "residual", "mlp", "flow"}  # the flow among the choices, with the prior it takes


# ---------------------------------------------------------------- the defaults, and what was saved before they changed
def test_the_defaults_are_the_latent_ablations_candidate_and_are_saved() -> None:
    from sb3_latent.experiments.specs import CANDIDATES

    model = LatentSAC("Pendulum-v1", policy_kwargs=TINY, seed=0)
    candidate = CANDIDATES["candidate"][0]
    assert {key: model.policy_kwargs[key] for key in candidate} == candidate  # what the zip records
    assert model.action_generator.decoder == "sac-residual" and model.policy.latent_bound == 1.0
    assert model.action_generator.latent_bound == 1.0 and model.actor.latent_bound == 1.0


def test_a_zip_saved_before_the_defaults_changed_loads_with_the_previous_ones(tmp_path) -> None:
    from stable_baselines3.common.save_util import load_from_zip_file, save_to_zip_file

    from sb3_latent.common.action_generator import PREVIOUS_DEFAULTS

    old = quiet(LatentSAC("Pendulum-v1", **dict(FAST, policy_kwargs=dict(TINY, **PREVIOUS_DEFAULTS)), seed=0)).learn(150)
    # What an older version wrote: policy_kwargs as given, without the decoder and the box.
    old.save(tmp_path / "new.zip")
    data, params, variables = load_from_zip_file(tmp_path / "new.zip")
    assert data["policy_kwargs"]["decoder"] == "residual" and data["policy_kwargs"]["latent_bound"] == 2.0
    for key in PREVIOUS_DEFAULTS:
        del data["policy_kwargs"][key]
    save_to_zip_file(tmp_path / "old.zip", data=data, params=params, pytorch_variables=variables)
    loaded = LatentSAC.load(tmp_path / "old.zip")
    assert loaded.action_generator.decoder == "residual" and loaded.policy.latent_bound == 2.0
    obs = np.linspace(-1.0, 1.0, 30, dtype=np.float32).reshape(10, 3)
    assert np.array_equal(loaded.predict(obs, deterministic=True)[0], old.predict(obs, deterministic=True)[0])


def test_a_generator_file_without_its_box_is_read_as_the_previous_defaults(tmp_path) -> None:
    generator = ActionGenerator((3,), 1, net_arch=[8], decoder="residual", latent_bound=2.0)
    saved = {"format": 2, "architecture": generator.architecture(), "state_dict": generator.state_dict()}
    del saved["architecture"]["latent_bound"]  # residual files did not record it before the defaults changed
    th.save(saved, tmp_path / "old.pt")
    assert ActionGenerator.load(tmp_path / "old.pt").latent_bound == 2.0
    model = LatentSAC("Pendulum-v1", action_generator=str(tmp_path / "old.pt"), generator_mode="frozen", seed=0)
    assert model.policy.latent_bound == 2.0 and model.action_generator.decoder == "residual"
    # A generator trained on another box is refused by a model that queries its own.
    with pytest.raises(UserInputError, match=r"latent box \[-2.0, 2.0\].*latent_bound=2.0"):
        LatentSAC("Pendulum-v1", policy_kwargs=dict(net_arch=[8]), seed=0).policy.set_action_generator(generator)
