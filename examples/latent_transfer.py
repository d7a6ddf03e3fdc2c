"""Latent transfer, end to end: reuse a LatentSAC's action generator on new HalfCheetah tasks.

    python examples/latent_transfer.py    # one to two minutes on one CPU core

1. The base task: LatentSAC runs forward, with a learned prior p(z|s); its action generator is saved.
2. The target task (run backward) starts from that generator: frozen, fine-tuned, or frozen with a residual action;
   then frozen again, with the KL-to-prior regulariser instead of the entropy bonus.
3. A multi-task generator (poster, Figure 1) trained on forward and backward running, transferred to a task none of
   its data came from: running forward at 1.5 m/s.

The step counts are a smoke run, far from the poster's curves (10^5-10^6 steps). See docs/transfer.md.
"""

import torch as th
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_latent import LatentSAC
from sb3_latent.transfer import latent_transfer, train_multitask_generator

th.set_num_threads(1)  # one update is compute-bound: one thread is fastest on a shared CPU

STEPS = 1_500
SMALL = dict(learning_starts=500, buffer_size=10_000, policy_kwargs=dict(net_arch=[64, 64]), seed=0)


def report(name: str, model: LatentSAC) -> None:
    mean_return, _ = evaluate_policy(model, model.get_env(), n_eval_episodes=1)
    print(f"{name:<48} return {mean_return:8.1f}")


# 1. The base task: run forward. prior="learned" adds p(z|s), which travels with the generator.
source = LatentSAC(
    "HalfCheetah-v4",
    learning_starts=1_000,
    generator_warmup_steps=300,
    buffer_size=10_000,
    policy_kwargs=dict(net_arch=[64, 64], prior="learned"),
    seed=0,
)
source.learn(2 * STEPS)
source.save_action_generator("forward_generator.pt")
report("base task (HalfCheetah-v4)", source)

# 2. The target task: run backward, from the saved generator (a model, its zip or its rl-zoo3 run folder work too).
# The latent policy and the critic start afresh in every mode.
for mode in ("frozen", "finetune", "residual"):
    model = latent_transfer("forward_generator.pt", "HalfCheetahBackward-v4", mode, generator_learning_rate=1e-4, **SMALL)
    model.learn(STEPS)
    report(f"{mode} generator (HalfCheetahBackward-v4)", model)

# The entropy bonus replaced by -alpha KL(pi(z|s) || p(z|s)) to the transferred (frozen) prior.
model = latent_transfer("forward_generator.pt", "HalfCheetahBackward-v4", "frozen", policy_regularizer="prior_kl", **SMALL)
model.learn(STEPS)
report("frozen generator + KL to prior (backward)", model)

# 3. One generator for two tasks, each with its own LatentSAC; then a target speed none of them was trained on.
generator, models = train_multitask_generator(
    ["HalfCheetah-v4", "HalfCheetahBackward-v4"],
    STEPS,
    chunk=500,
    generator_warmup_steps=200,
    save_path="multitask_generator.pt",
    **SMALL,
)
model = latent_transfer(generator, "HalfCheetahTask-v4", "frozen", env_kwargs={"target_speed": 1.5}, **SMALL)
model.learn(STEPS)
report("multi-task generator, frozen (target_speed=1.5)", model)
