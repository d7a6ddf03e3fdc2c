"""The flow action generator (decoder="flow"): a bijection of the latent box onto the action box, exact likelihood."""

import functools
import math
import os
import statistics
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from zoo_helpers import n_updates, run_python

from sb3_latent import LatentSAC
from sb3_latent.common import ActionGenerator
from sb3_latent.errors import UserInputError
from sb3_latent.transfer import latent_transfer, train_multitask_generator

os.environ.setdefault("OMP_NUM_THREADS", "1")
th.set_num_threads(1)

OBS_DIM, ACTION_DIM, BOUND = 17, 6, 2.0
FAST = dict(learning_starts=150, batch_size=64, buffer_size=2_000, generator_warmup_steps=20, seed=0)
FLOW = dict(net_arch=[32, 32], generator_net_arch=[32, 32], decoder="flow")


def warped_flow(action_dim: int = ACTION_DIM, std: float | None = None, dtype: th.dtype = th.float32) -> ActionGenerator:
    """A flow generator whose splines are far from the identity it starts as: the conditioners' last layers drawn at
    random (PyTorch's default initialisation, or N(0, std^2) for stronger warps)."""
    th.manual_seed(0)
    generator = ActionGenerator((OBS_DIM,), action_dim, decoder="flow", latent_bound=BOUND).to(dtype)
    assert generator.flow is not None
    with th.no_grad():
        for conditioner in generator.flow.conditioners:
            last = conditioner[-1]
            if std is None:
                last.reset_parameters()
            else:
                th.nn.init.normal_(last.weight, std=std)
                th.nn.init.normal_(last.bias, std=std)
    return generator


def box(n: int, dim: int, bound: float = 1.0, dtype: th.dtype = th.float32) -> th.Tensor:
    return (2.0 * th.rand(n, dim, dtype=dtype) - 1.0) * bound


def quiet(model: LatentSAC) -> LatentSAC:
    model.set_logger(configure(None, [""]))
    return model


# --- The bijection -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("action_dim", [ACTION_DIM, 1])
@pytest.mark.parametrize("std", [None, 0.3])
def test_inverse_round_trips_over_the_box(action_dim, std):
    generator = warped_flow(action_dim, std)
    obs = th.randn(4096, OBS_DIM)
    with th.no_grad():
        latent = box(4096, action_dim, BOUND)
        actions = generator.decode(obs, latent)
        assert actions.abs().max() <= 1.0
        assert (generator.encode(obs, actions)[0] - latent).abs().max() < 1e-5  # f^-1(f(z)) = z
        actions = box(4096, action_dim)
        assert (generator.decode(obs, generator.encode(obs, actions)[0]) - actions).abs().max() < 1e-5  # f(f^-1(a)) = a
        # Not the identity it starts as: the test would pass trivially there.
        assert (generator.decode(obs, latent) - latent / BOUND).abs().max() > 0.05


def test_inverse_is_exact_in_double_precision_even_for_strong_warps():
    # Where slopes near the 1e-3 floor make float32 ill-conditioned, the closed-form inverse is still exact.
    generator = warped_flow(std=1.0, dtype=th.float64)
    obs, latent = th.randn(4096, OBS_DIM, dtype=th.float64), box(4096, ACTION_DIM, BOUND, th.float64)
    with th.no_grad():
        assert (generator.encode(obs, generator.decode(obs, latent))[0] - latent).abs().max() < 1e-9


def test_starts_as_the_identity():
    generator = ActionGenerator((OBS_DIM,), ACTION_DIM, decoder="flow", latent_bound=BOUND)
    obs, latent = th.randn(64, OBS_DIM), box(64, ACTION_DIM, BOUND)
    assert th.allclose(generator.decode(obs, latent), latent / BOUND, atol=1e-6)


@pytest.mark.parametrize("action_dim", [ACTION_DIM, 1])
def test_log_det_matches_autograd_jacobian(action_dim):
    generator = warped_flow(action_dim, std=0.3, dtype=th.float64)
    flow = generator.flow
    assert flow is not None
    obs, unit = th.randn(8, OBS_DIM, dtype=th.float64), box(8, action_dim, dtype=th.float64)
    _, log_det = flow.forward_and_log_det(obs, unit)
    _, inverse_log_det = flow.inverse_and_log_det(obs, flow(obs, unit))
    for i in range(len(obs)):
        jacobian = th.autograd.functional.jacobian(lambda u, i=i: flow(obs[i : i + 1], u[None])[0], unit[i])
        sign, expected = th.linalg.slogdet(jacobian)
        assert sign > 0  # monotone in each coordinate, triangular per layer: orientation kept
        assert abs(log_det[i].item() - expected.item()) < 1e-9
        assert abs(inverse_log_det[i].item() + expected.item()) < 1e-9


def test_every_action_is_reached_from_the_latent_box():
    # Coverage: the corners, the edges' midpoints and random points of the action box, at random states, each have a
    # preimage in the latent box that decodes back onto them.
    generator = warped_flow(std=0.3)
    grid = th.tensor([-1.0, 0.0, 1.0])
    corners_and_edges = th.cartesian_prod(*[grid] * ACTION_DIM)  # 3^6 points, the corners included
    actions = th.cat([corners_and_edges, box(2000, ACTION_DIM)])
    for seed in range(3):
        obs = th.randn(1, OBS_DIM, generator=th.Generator().manual_seed(seed)).expand(len(actions), -1)
        with th.no_grad():
            latent = generator.encode(obs, actions)[0]
            assert latent.abs().max() <= BOUND + 1e-5  # float32 rounding at the faces
            assert (generator.decode(obs, latent) - actions).abs().max() < 1e-5


def test_loss_stays_finite_and_bounded_with_actions_at_the_bounds():
    # Replay buffers hold clipped actions: 30% of entries at exactly -1 or +1.
    generator = ActionGenerator((OBS_DIM,), ACTION_DIM, decoder="flow", net_arch=[64, 64])
    optimizer = th.optim.Adam(generator.parameters(), lr=1e-3)
    rng = th.Generator().manual_seed(0)
    losses = []
    for _ in range(1000):
        obs = th.randn(256, OBS_DIM, generator=rng)
        actions = (0.5 * obs[:, :ACTION_DIM]).tanh() + 0.1 * th.randn(256, ACTION_DIM, generator=rng)
        at_bound = th.rand(256, ACTION_DIM, generator=rng) < 0.3
        actions = th.where(at_bound, th.sign(th.randn(256, ACTION_DIM, generator=rng)), actions.clamp(-1, 1))
        loss, stats = generator.loss(obs, actions, kl_weight=0.5)
        optimizer.zero_grad()
        loss.backward()
        assert all(th.isfinite(p.grad).all() for p in generator.parameters() if p.grad is not None)
        optimizer.step()
        losses.append(loss.item())
        assert stats[1] == 0.0  # no KL: the posterior is exact
    losses_array = np.array(losses)
    print(f"loss: first {losses_array[0]:.3f}, max {losses_array.max():.3f}, last 100 {losses_array[-100:].mean():.3f}")
    assert np.isfinite(losses_array).all()
    # Bounded: never above where it started (the identity flow), and it learns the data's shape.
    assert losses_array.max() <= losses_array[:10].max() + 0.5
    assert losses_array[-100:].mean() < losses_array[0] - 1.0


def test_flow_has_no_encoder_network_and_no_decoder_noise():
    generator = ActionGenerator((OBS_DIM,), ACTION_DIM, decoder="flow", latent_bound=BOUND)
    names = {name for name, _ in generator.named_parameters()}
    assert names and all(name.startswith("flow.") for name in names)
    obs, latent = th.randn(16, OBS_DIM), box(16, ACTION_DIM, BOUND)
    assert th.equal(generator.sample_actions(obs, latent), generator.decode(obs, latent))
    # Its prior is N(0, I) restricted to the box: samples inside, density integrating to one there.
    codes = generator.sample_prior(obs, 500)
    assert codes.abs().max() <= BOUND and abs(codes.std().item() - 0.88) < 0.05  # std of N(0,1) truncated at +-2
    mass = th.linspace(-BOUND, BOUND, 20001)[:, None]
    one_dim = ActionGenerator((OBS_DIM,), 1, decoder="flow", latent_bound=BOUND)
    density = one_dim.prior_log_prob(th.zeros(len(mass), OBS_DIM), mass).exp().squeeze(1)
    assert abs(th.trapezoid(density, mass.squeeze(1)).item() - 1.0) < 1e-4


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ActionGenerator((3,), 2, latent_dim=3, decoder="flow"), "latent_dim == action_dim"),
        (lambda: ActionGenerator((3,), 2, decoder="flow", prior="learned"), "prior='standard' only"),
        (lambda: ActionGenerator((3,), 2, decoder="flow", latent_bound=0.0), "latent_bound must be"),
        (lambda: LatentSAC("Pendulum-v1", policy_kwargs=dict(decoder="flow", latent_dim=2)), "latent_dim == action_dim"),
        (lambda: LatentSAC("Pendulum-v1", policy_kwargs=dict(decoder="flow", prior="learned")), "prior='standard' only"),
    ],
)
def test_bad_flow_options_are_one_clear_error(make, match):
    with pytest.raises(UserInputError, match=match):
        make()


# --- LatentSAC with the flow ---------------------------------------------------------------------------------------


def flow_model(env: str = "Pendulum-v1") -> LatentSAC:
    """LatentSAC with a flow generator on a latent box of half-width 1.5, after 100 gradient steps."""
    return quiet(LatentSAC(env, **FAST, policy_kwargs=dict(FLOW, latent_bound=1.5))).learn(250)


source_model = functools.cache(functools.partial(flow_model, "HalfCheetah-v4"))


def test_learns_logs_the_likelihood_and_round_trips_save_and_load(tmp_path):
    model = flow_model()
    logged = model.logger.name_to_value
    assert "train/generator_nll" in logged and "train/decoder_std" not in logged and "train/kl_loss" not in logged
    assert model.generator_diagnostics().keys() == {"action_spread_over_z"}
    model.save(tmp_path / "model.zip")
    model.save_action_generator(tmp_path / "generator.pt")
    loaded = LatentSAC.load(tmp_path / "model.zip")
    generator = ActionGenerator.load(tmp_path / "generator.pt")
    assert loaded.policy.latent_bound == generator.latent_bound == 1.5 and generator.decoder == "flow"
    obs = th.randn(32, 3)
    latent = box(32, 1, 1.5)
    for other in (loaded.action_generator, generator):
        assert th.equal(other.decode(obs, latent), model.action_generator.decode(obs, latent))
    observation = np.zeros((1, 3), dtype=np.float32)
    actions = [m.predict(observation, deterministic=True)[0] for m in (loaded, model)]
    assert np.array_equal(*actions)


@pytest.mark.parametrize("mode", ["frozen", "finetune", "residual"])
@pytest.mark.parametrize("source_kind", ["model", "file"])
def test_transfer_modes_keep_the_flow_and_its_box(mode, source_kind, tmp_path):
    source = source_model()
    source.save_action_generator(tmp_path / "generator.pt")
    before = {name: value.clone() for name, value in source.action_generator.state_dict().items()}
    origin = source if source_kind == "model" else tmp_path / "generator.pt"
    target = quiet(latent_transfer(origin, "HalfCheetahBackward-v4", mode, **FAST))
    # The flow's box comes with it, from a file too: the latent policy emits codes in the box the flow maps from.
    assert target.policy.latent_bound == 1.5 and target.action_generator.decoder == "flow"
    target.learn(250)
    after = target.action_generator.state_dict()
    changed = any(not th.equal(before[name], after[name]) for name in before)
    assert changed == (mode == "finetune")


def test_a_flow_with_another_box_is_refused_on_transfer(tmp_path):
    source_model().save_action_generator(tmp_path / "generator.pt")
    with pytest.raises(UserInputError, match="latent_bound"):
        latent_transfer(
            tmp_path / "generator.pt", "HalfCheetahBackward-v4", "frozen", policy_kwargs=dict(latent_bound=2.0), **FAST
        )


def test_multitask_flow_generator(tmp_path):
    options = dict(FAST, policy_kwargs=FLOW)
    del options["seed"]
    generator, models = train_multitask_generator(
        ["HalfCheetah-v4", "HalfCheetahBackward-v4"], 250, chunk=100, seed=0, save_path=tmp_path / "multitask.pt", **options
    )
    assert generator.decoder == "flow" and all(m.action_generator is generator for m in models.values())
    assert ActionGenerator.load(tmp_path / "multitask.pt").decoder == "flow"


def test_zoo_params_select_the_flow(zoo_env, tmp_path):
    params = "learning_starts:150 generator_warmup_steps:20 policy_kwargs:\"dict(decoder='flow', net_arch=[32, 32])\""
    run_python(f"-m rl_zoo3.train --algo latent_sac --env HalfCheetah-v4 -f . -n 250 --eval-freq -1 -params {params}",
               tmp_path, zoo_env)  # fmt: skip
    model_path = tmp_path / "latent_sac" / "HalfCheetah-v4_1" / "HalfCheetah-v4.zip"
    assert n_updates(model_path) == 100
    assert LatentSAC.load(model_path).action_generator.decoder == "flow"


# --- Learning: the flow against the default decoder, Pendulum-v1 (make test-slow) ----------------------------------


def _final_return(decoder: str, seed: int, steps: int) -> float:
    th.set_num_threads(1)
    model = LatentSAC("Pendulum-v1", learning_rate=1e-3, policy_kwargs=dict(decoder=decoder), seed=seed)
    model.learn(steps)
    return float(evaluate_policy(model, model.get_env(), n_eval_episodes=10, deterministic=True)[0])


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_flow_learns_pendulum_as_well_as_the_default_decoder():
    # 15k steps (the YAML's learning rate), 3 seeds each, final return over 10 deterministic episodes. The flow's
    # mean is within 2 pooled standard errors of the default's.
    jobs = [(decoder, seed) for decoder in ("flow", "residual") for seed in range(3)]
    with ProcessPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1), mp_context=get_context("spawn")) as pool:
        returns = list(pool.map(_final_return, *zip(*jobs, strict=True), [15_000] * len(jobs)))
    flow, default = returns[:3], returns[3:]
    pooled_se = math.sqrt(  # the standard error of the difference of the two means
        (statistics.variance(flow) + statistics.variance(default)) / 3
    )
    print(f"flow {flow} mean {statistics.mean(flow):.1f}; residual {default} mean {statistics.mean(default):.1f}")
    assert abs(statistics.mean(flow) - statistics.mean(default)) <= 2 * pooled_se
    assert statistics.mean(flow) > -500  # and it learns (a random policy scores about -1,200)
