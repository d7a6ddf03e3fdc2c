"""gSDE with and without the decoder's noise when acting: the measurement behind LatentSAC's choice (decoder mean).

With ``use_sde=True`` LatentSAC acts with a = g_mean(s, z): the latent policy's state-dependent noise explores, and the
decoder adds none. The other arm (``noisy``) adds the decoder's i.i.d. noise sigma_g eps on top, as LatentSAC does
without gSDE. Each (arm, seed) run trains in turn in this one single-threaded process and reports the deterministic
eval return at the end, and the mean absolute step-to-step change of the stochastic action over one episode with
one exploration matrix (the jitter gSDE is meant to remove).

    python benchmarks/gsde_decoder_noise.py --env Pendulum-v1 --seeds 0 1 --steps 6000
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.type_aliases import PyTorchObs

from sb3_latent import LatentSAC
from sb3_latent.latent_sac import LatentSACPolicy


class NoisyDecoderPolicy(LatentSACPolicy):
    """The ``noisy`` arm: the decoder's noise on top of gSDE's."""

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        latent, _ = self.actor.latent_and_residual(observation, deterministic)
        return self.action_generator.sample_actions(self.generator_input(observation), latent, deterministic)


def action_jitter(model: LatentSAC, env_id: str, seed: int) -> float:
    """Mean |a_t - a_{t-1}| of stochastic actions over one episode with one exploration matrix (sde_sample_freq=-1
    and a rollout of the whole episode): what the decoder's noise adds to gSDE's smooth exploration."""
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    actions, done = [], False
    model.policy.reset_noise()
    while not done:
        action, _ = model.predict(obs, deterministic=False)
        actions.append(action)
        obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    return float(np.abs(np.diff(np.array(actions), axis=0)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    args = parser.parse_args()
    th.set_num_threads(1)
    print("arm, seed, eval return (mean +- std), stochastic-action jitter, wall time")
    for arm, policy in (("mean", LatentSACPolicy), ("noisy", NoisyDecoderPolicy)):
        for seed in args.seeds:
            start = time.time()
            model = LatentSAC(policy, args.env, learning_rate=1e-3, use_sde=True, seed=seed, device="cpu")
            model.learn(args.steps)
            eval_env = gym.make(args.env)
            eval_env.reset(seed=1000 + seed)
            mean, std = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
            jitter = action_jitter(model, args.env, seed)
            print(f"{arm}, {seed}, {mean:.0f} +- {std:.0f}, {jitter:.3f}, {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
