"""Naive transfer, end to end: SAC learns to run forward, then fine-tunes on running backward.

    python examples/naive_transfer.py    # about a minute on one CPU core

The step counts are a smoke run, far from the poster's curves (10^5-10^6 steps). See docs/transfer.md.
"""

import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_latent.transfer import finetune

th.set_num_threads(1)  # one SAC update is compute-bound: one thread is fastest on a shared CPU

STEPS = 2_000
LEARNING_STARTS = 500

# The base task: run forward.
source = SAC("MlpPolicy", "HalfCheetah-v4", learning_starts=LEARNING_STARTS, buffer_size=10_000, seed=0)
source.learn(STEPS)
source.save("sac_forward")

# The target task: run backward. Keep the buffer (its rewards relabelled to running backward), reset the entropy
# temperature so that the agent explores again, and let the transferred policy act during the warm-up.
# The source model stays as it is: finetune works on a copy.
model = finetune(
    source, "HalfCheetahBackward-v4", keep_buffer=True, reset_entropy=True, learning_starts=LEARNING_STARTS, seed=0
)
model.learn(STEPS)
model.save("sac_backward")

mean_return, std_return = evaluate_policy(model, model.get_env(), n_eval_episodes=1)
print(f"Return on HalfCheetahBackward-v4 after {STEPS} fine-tuning steps: {mean_return:.1f}")
