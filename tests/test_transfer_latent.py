"""Latent transfer: what is kept and reset, the generator modes, multi-task generator, KL-to-prior, rl-zoo3."""

import functools
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch as th
import yaml
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure
from zoo_helpers import n_updates, run_python

from sb3_latent import LatentSAC
from sb3_latent.common import ActionGenerator
from sb3_latent.errors import UserInputError
from sb3_latent.transfer import latent_transfer, train_multitask_generator

os.environ.setdefault("OMP_NUM_THREADS", "1")
th.set_num_threads(1)

TINY = dict(net_arch=[32, 32], generator_net_arch=[32, 32])
# Transferred models: 100 gradient steps after 150 warm-up steps, small batches.
FAST = dict(learning_starts=150, batch_size=64, buffer_size=2_000, policy_kwargs=dict(net_arch=[32, 32]))
STEPS = 250
SOURCE_LATENT_BOUND = 1.5


def quiet(model: LatentSAC) -> LatentSAC:
    """Keep the last logged values in memory instead of printing them."""
    model.set_logger(configure(None, [""]))
    return model


@functools.cache
def source_model() -> LatentSAC:
    """A LatentSAC trained briefly on the base task, with a learned prior p(z|s) and a non-default latent bound."""
    model = LatentSAC(
        "HalfCheetah-v4",
        learning_starts=150,
        generator_warmup_steps=20,
        batch_size=64,
        buffer_size=2_000,
        policy_kwargs=dict(TINY, prior="learned", latent_bound=SOURCE_LATENT_BOUND),
        seed=0,
    )
    return quiet(model).learn(STEPS)


def state(module: th.nn.Module) -> dict[str, th.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def assert_same(module: th.nn.Module, expected: dict[str, th.Tensor]) -> None:
    current = module.state_dict()
    assert current.keys() == expected.keys()
    for name, tensor in current.items():
        assert th.equal(tensor, expected[name]), f"{name} changed"


def assert_all_differ(module: th.nn.Module, other: th.nn.Module) -> None:
    """Every weight and bias differs: a freshly initialised network, not the source's."""
    other_state = other.state_dict()
    for name, tensor in module.state_dict().items():
        assert not th.equal(tensor, other_state[name]), f"{name} was kept"


# --- What latent transfer keeps and resets ---------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["model", "zip", "zoo run folder", "generator file"])
def test_keeps_generator_and_prior_resets_latent_policy_and_critic(form, tmp_path):
    source = source_model()
    source_state = state(source.policy)
    if form == "model":
        given = source
    elif form == "zip":
        given = tmp_path / "model.zip"
        source.save(given)
    elif form == "zoo run folder":
        given = tmp_path / "latent_sac" / "HalfCheetah-v4_1"
        (given / "HalfCheetah-v4").mkdir(parents=True)
        (given / "HalfCheetah-v4" / "args.yml").write_text(yaml.dump({"algo": "latent_sac", "env": "HalfCheetah-v4"}))
        source.save(given / "HalfCheetah-v4.zip")
    else:
        given = tmp_path / "generator.pt"
        source.save_action_generator(given)

    model = latent_transfer(given, "HalfCheetahBackward-v4", "frozen", seed=1, **FAST)
    assert model.get_env().get_attr("spec")[0].id == "HalfCheetahBackward-v4"
    # Kept: the whole generator, parameter by parameter, the learned prior p(z|s) included.
    generator_state = model.action_generator.state_dict()
    assert any(name.startswith("prior_net.") for name in generator_state)
    assert_same(model.action_generator, state(source.action_generator))
    assert model.action_generator is not source.action_generator  # a copy: the source is never modified
    # Reset: the latent policy and the critic are freshly initialised; the critic's target is a copy of the critic.
    assert_all_differ(model.actor, source.actor)
    assert_all_differ(model.critic, source.critic)
    assert_same(model.critic_target, state(model.critic))
    assert model.log_ent_coef.item() == 0.0 and model.replay_buffer.size() == 0
    # Every source brings its latent bound (the box its policy queried the decoder in), a generator file too.
    assert model.policy.latent_bound == model.action_generator.latent_bound == SOURCE_LATENT_BOUND
    assert_same(source.policy, source_state)


@pytest.mark.parametrize("mode", ["frozen", "finetune", "residual"])
def test_generator_modes_after_learn(mode):
    source = source_model()
    model = quiet(latent_transfer(source, "HalfCheetahBackward-v4", mode, seed=1, generator_learning_rate=1e-3, **FAST))
    before = state(model.action_generator)
    model.learn(STEPS)
    assert model._n_updates == STEPS - FAST["learning_starts"]
    logged = model.logger.name_to_value
    if mode == "finetune":
        # Trained at its own learning rate, one update per gradient step, and no warm-up (it is pretrained).
        assert model.generator_optimizer.param_groups[0]["lr"] == 1e-3 != model.actor.optimizer.param_groups[0]["lr"]
        assert model._n_generator_updates == model._n_updates
        changed = [name for name, tensor in model.action_generator.state_dict().items() if not th.equal(tensor, before[name])]
        assert {"decoder_log_std", "prior_net.0.weight", "encoder_net.0.weight"} <= set(changed)
        assert "train/reconstruction_loss" in logged
    else:
        # Frozen, bit for bit (the residual mode freezes it too).
        assert_same(model.action_generator, before)
        assert model._n_generator_updates == 0 and "train/reconstruction_loss" not in logged
    if mode == "residual":
        head = model.actor.residual_head
        assert head is not None and model.policy_kwargs["residual_scale"] == 0.2
        assert head.weight.abs().sum() > 0  # trained through the critic, from its zero initialisation
        assert 0 < logged["train/residual_magnitude"] <= 0.2
    else:
        assert model.actor.residual_head is None and "train/residual_magnitude" not in logged


def test_residual_action_is_bounded_and_actions_stay_in_bounds():
    model = latent_transfer(source_model(), "HalfCheetahBackward-v4", "residual", residual_scale=0.3, seed=1, **FAST)
    head = model.actor.residual_head
    with th.no_grad():
        head.bias.fill_(100.0)  # saturate the residual: r(s) = +residual_scale on every dimension
        model.action_generator.decoder_log_std.fill_(10.0)  # extreme decoder noise: stochastic actions must be clipped
    obs = np.stack([model.observation_space.sample() for _ in range(16)])
    obs_tensor = th.as_tensor(obs, dtype=th.float32)
    latent, residual = model.actor.latent_and_residual(obs_tensor, deterministic=True)
    assert th.allclose(residual, th.full_like(residual, 0.3))
    # Deterministic: clip(g_mean(s, z) + r(s)), the action the critic scores.
    with th.no_grad():
        expected = (model.action_generator.decode(obs_tensor, latent) + residual).clamp(-1, 1)
    action, _ = model.predict(obs, deterministic=True)
    np.testing.assert_allclose(action, expected.numpy(), atol=1e-6)
    for deterministic in (True, False):
        action, _ = model.predict(obs, deterministic=deterministic)
        assert action.shape == (16, 6) and np.all(np.abs(action) <= 1.0)


def test_residual_mode_survives_save_load_and_refuses_an_architecture_change(tmp_path):
    model = latent_transfer(source_model(), "HalfCheetahBackward-v4", "residual", seed=1, **FAST)
    with th.no_grad():
        model.actor.residual_head.bias.fill_(0.5)
    obs = np.stack([model.observation_space.sample() for _ in range(4)])
    action, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "residual.zip")
    loaded = LatentSAC.load(tmp_path / "residual.zip")
    assert loaded.generator_mode == "residual" and loaded.actor.residual_head is not None
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], action, atol=1e-6)
    # Switching a saved model to or from the residual head would drop or invent weights: refused, naming the fix.
    with pytest.raises(UserInputError, match=r"residual head.*without changing generator_mode"):
        LatentSAC.load(tmp_path / "residual.zip", generator_mode="frozen")
    assert LatentSAC.load(tmp_path / "residual.zip", generator_mode="residual", residual_scale=0.1).actor.residual_scale == 0.1


def test_mismatched_spaces_name_both_shapes(tmp_path):
    pendulum = LatentSAC("Pendulum-v1", policy_kwargs=TINY)
    pendulum.save_action_generator(tmp_path / "pendulum.pt")
    for source in (pendulum, tmp_path / "pendulum.pt"):
        with pytest.raises(UserInputError, match=r"shape mismatch.*\(3,\).*\(1,\).*\(17,\).*\(6,\)"):
            latent_transfer(source, "HalfCheetah-v4", "frozen")


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: latent_transfer(source_model(), "HalfCheetahBackward-v4", "train"), "mode must be one of"),
        (lambda: latent_transfer(source_model(), "HalfCheetahBackward-v4", generator_mode="frozen"), "mode=..."),
        (lambda: latent_transfer(SAC("MlpPolicy", "Pendulum-v1"), "Pendulum-v1"), "no action generator"),
        (lambda: latent_transfer(Path("missing.pt"), "Pendulum-v1"), "No action generator at missing.pt"),
        (lambda: LatentSAC("Pendulum-v1", generator_mode="finetune"), "action_generator="),
        (lambda: LatentSAC("Pendulum-v1", generator_mode="copy"), "generator_mode must be one of"),
        (
            lambda: LatentSAC(
                "Pendulum-v1", action_generator=source_model(), generator_mode="frozen", actor_trains_generator=True
            ),
            "actor_trains_generator=False",
        ),
        (lambda: LatentSAC("Pendulum-v1", policy_regularizer="kl"), "policy_regularizer must be one of"),
        (lambda: LatentSAC("Pendulum-v1", target_kl=-1.0), "target_kl"),
        (lambda: LatentSAC("Pendulum-v1", residual_scale=3.0), "residual_scale must be in"),
    ],
)
def test_bad_input(make, match):
    with pytest.raises(UserInputError, match=match):
        make()


# --- Multi-task action generator (poster, Figure 1) -----------------------------------------------------------------


def test_multitask_generator_trains_on_both_tasks_and_transfers_to_a_third(tmp_path):
    tasks = ["HalfCheetah-v4", "HalfCheetahBackward-v4"]
    options = dict(FAST, policy_kwargs=TINY, generator_warmup_steps=10)
    generator, models = train_multitask_generator(
        tasks, STEPS, chunk=100, seed=0, save_path=tmp_path / "multitask.pt", **options
    )
    forward, backward = models["HalfCheetah-v4"], models["HalfCheetahBackward-v4"]
    # One generator module and one optimiser; each task its own latent policy, critic and buffer.
    assert forward.action_generator is backward.action_generator is generator
    assert forward.policy.action_generator is backward.policy.action_generator
    assert forward.generator_optimizer is backward.generator_optimizer
    assert forward.actor is not backward.actor and forward.critic is not backward.critic
    assert forward.replay_buffer is not backward.replay_buffer
    assert [m.get_env().get_attr("spec")[0].id for m in (forward, backward)] == tasks
    # Both tasks' data reached it: each model made its warm-up and one update per gradient step, all in the one
    # optimiser (Adam's step count is the sum), on batches of its own task's buffer (the generator sees states only).
    for model in (forward, backward):
        assert model.num_timesteps == STEPS and model._n_generator_updates == 10 + STEPS - FAST["learning_starts"]
    steps = {int(s["step"]) for s in forward.generator_optimizer.state.values()}
    assert steps == {forward._n_generator_updates + backward._n_generator_updates}
    assert generator.obs_dim == 17

    # Transfer to a task none of its data came from: a target speed of 1.5.
    target = quiet(
        latent_transfer(
            tmp_path / "multitask.pt", "HalfCheetahTask-v4", "frozen", env_kwargs={"target_speed": 1.5}, seed=2, **FAST
        )
    )
    assert target.get_env().get_attr("task")[0].target_speed == 1.5
    assert_same(target.action_generator, state(generator))
    target.learn(STEPS)
    assert_same(target.action_generator, state(generator)) and target._n_updates > 0


def test_multitask_cli_writes_base_and_target_runs(tmp_path):
    # One command: the generator on two tasks, then the target task (a speed none of its data had) from it.
    result = run_python(
        "-m sb3_latent.transfer multitask --tasks HalfCheetah-v4 HalfCheetahBackward-v4 --target HalfCheetahTask-v4 "
        "--target-kwargs target_speed:1.5 -n 200 --target-n-timesteps 200 --chunk 100 --mode residual -f . --seed 0 "
        "--verbose 0 -params learning_starts:150 generator_warmup_steps:10 batch_size:64 buffer_size:1000 "
        "'policy_kwargs:dict(net_arch=[32])' --eval-freq 100 --eval-episodes 1",
        tmp_path,
    )
    runs = tmp_path / "latent_sac"
    for task in ("HalfCheetah-v4", "HalfCheetahBackward-v4", "HalfCheetahTask-v4"):
        assert (runs / f"{task}_1" / "0.monitor.csv").is_file()
        # Shorter than one episode, so SB3 wrote no log row during training: the last one is written at the end.
        assert len((runs / f"{task}_1" / "progress.csv").read_text().splitlines()) >= 2
    for task in ("HalfCheetah-v4", "HalfCheetahBackward-v4"):
        assert n_updates(runs / f"{task}_1" / f"{task}.zip") == 50
    target_run = runs / "HalfCheetahTask-v4_1"
    assert np.load(target_run / "evaluations.npz")["timesteps"].tolist() == [100, 200]
    assert result.stdout.strip().splitlines()[-1].startswith("Final evaluation on HalfCheetahTask-v4 (1 episode, ")
    target = LatentSAC.load(target_run / "HalfCheetahTask-v4.zip")
    assert target.generator_mode == "residual" and target.actor.residual_head is not None and target._n_updates == 50
    assert_same(target.action_generator, state(ActionGenerator.load(target_run / "action_generator.pt")))
    assert_same(
        target.action_generator, state(LatentSAC.load(runs / "HalfCheetah-v4_1" / "HalfCheetah-v4.zip").action_generator)
    )
    args = yaml.load((target_run / "HalfCheetahTask-v4" / "args.yml").read_text(), Loader=yaml.UnsafeLoader)
    config = yaml.load((target_run / "HalfCheetahTask-v4" / "config.yml").read_text(), Loader=yaml.UnsafeLoader)
    assert args["env_kwargs"] == {"target_speed": 1.5}  # what rl-zoo3's enjoy reads
    assert config["generator_mode"] == "residual" and Path(config["action_generator"]).is_file()


# --- KL-to-prior regularisation -------------------------------------------------------------------------------------


def test_prior_log_prob_is_the_gaussian_density():
    generator = ActionGenerator((3,), 2, prior="learned", net_arch=[8])
    obs, latent = th.randn(5, 3), th.randn(5, 2)
    mean, log_std = generator.prior_distribution(obs)
    expected = th.distributions.Normal(mean, log_std.exp()).log_prob(latent).sum(dim=1, keepdim=True)
    th.testing.assert_close(generator.prior_log_prob(obs, latent), expected)


@pytest.mark.parametrize("prior", ["standard", "learned"])
def test_prior_kl_tunes_alpha_toward_the_target(prior):
    def run(target_kl: float) -> LatentSAC:
        model = LatentSAC(
            "Pendulum-v1",
            learning_starts=100,
            generator_warmup_steps=20,
            policy_regularizer="prior_kl",
            target_kl=target_kl,
            policy_kwargs=dict(TINY, prior=prior),
            seed=0,
        )
        return quiet(model).learn(250)

    tight, loose = run(0.0), run(50.0)
    for model in (tight, loose):
        assert math.isfinite(model.logger.name_to_value["train/prior_kl"])
    # alpha grows while the divergence is above target_kl, and shrinks while it is below.
    assert tight.log_ent_coef.item() > 0.0 > loose.log_ent_coef.item()
    assert LatentSAC("Pendulum-v1", policy_regularizer="prior_kl").target_kl == 0.5  # "auto": 0.5 * latent_dim


def test_prior_stays_frozen_with_the_generator_on_transfer():
    source = source_model()
    model = quiet(latent_transfer(source, "HalfCheetahBackward-v4", "frozen", policy_regularizer="prior_kl", seed=1, **FAST))
    assert model.target_kl == 3.0  # 0.5 * latent_dim
    model.learn(STEPS)
    assert_same(model.action_generator, state(source.action_generator))  # prior_net included
    assert math.isfinite(model.logger.name_to_value["train/prior_kl"])


# --- rl-zoo3: algorithm arguments that survive -i ------------------------------------------------------------------


ZOO_TRAIN = "-m rl_zoo3.train --algo latent_sac --env HalfCheetahBackward-v4 -n 400 -f . --eval-freq -1 --seed 1"
SMALL = "buffer_size:2000 batch_size:64 'policy_kwargs:dict(net_arch=[32, 32])'"


def test_zoo_frozen_generator_takes_gradient_steps(tmp_path):
    source_model().save_action_generator(tmp_path / "generator.pt")
    # A bare word after generator_mode: (no inner quotes) is passed as a string.
    run_python(
        f"{ZOO_TRAIN} -params learning_starts:300 generator_warmup_steps:20 "
        f"action_generator:\"'{tmp_path / 'generator.pt'}'\" generator_mode:frozen {SMALL}",
        tmp_path,
    )
    saved = tmp_path / "latent_sac" / "HalfCheetahBackward-v4_1" / "HalfCheetahBackward-v4.zip"
    assert n_updates(saved) == 100
    model = LatentSAC.load(saved)
    assert model.generator_mode == "frozen" and model._n_generator_updates == 0
    assert_same(model.action_generator, state(source_model().action_generator))


def test_zoo_residual_mode_survives_trained_agent(tmp_path):
    source_model().save_action_generator(tmp_path / "generator.pt")
    generator = state(ActionGenerator.load(tmp_path / "generator.pt"))
    run_python(
        f"{ZOO_TRAIN} -params learning_starts:300 action_generator:\"'{tmp_path / 'generator.pt'}'\" "
        f"generator_mode:residual {SMALL}",
        tmp_path,
    )
    first = tmp_path / "latent_sac" / "HalfCheetahBackward-v4_1" / "HalfCheetahBackward-v4.zip"
    assert n_updates(first) == 100
    model = LatentSAC.load(first)
    assert model.generator_mode == "residual" and model.actor.residual_head is not None
    assert_same(model.action_generator, generator)

    # -i drops policy_kwargs and passes the YAML and -params to load(): the mode and the residual head are kept.
    run_python(f"{ZOO_TRAIN} -i {first} -params learning_starts:300 {SMALL}", tmp_path)
    second = tmp_path / "latent_sac" / "HalfCheetahBackward-v4_2" / "HalfCheetahBackward-v4.zip"
    reloaded = LatentSAC.load(second)
    assert n_updates(second) == 200
    assert reloaded.generator_mode == "residual" and reloaded.actor.residual_head is not None
    assert not th.equal(reloaded.actor.residual_head.weight, model.actor.residual_head.weight)  # and kept training
    assert_same(reloaded.action_generator, generator)
