"""rl-zoo3's ExperimentManager for one run: fixed folder, layered overrides, resume and transfer.

rl-zoo3 does the work (reading the YAML, preprocessing it, building envs and model, saving config
and model); this subclass changes only what a resumable, transferable run needs:

- ``save_path`` is fixed to ``<run>/<algo>/<env>_1`` instead of the next free ``_<id>``;
- :meth:`RunManager.read_hyperparameters` applies the run's override layers (budget, then condition) on
  the YAML entry, resolving :class:`~.specs.MergeDict` and :class:`~.specs.TargetEntropyScale`, so the
  saved ``config.yml`` holds the values the model got;
- :meth:`RunManager._load_pretrained_agent`, rl-zoo3's "continue training" branch, loads the last
  checkpoint (with our compact replay buffer) or calls the condition's transfer hook.
"""

from __future__ import annotations

import argparse
import pprint
from pathlib import Path
from typing import Any

import gymnasium as gym
import rl_zoo3.exp_manager as zoo_exp_manager
from rl_zoo3.exp_manager import ExperimentManager
from rl_zoo3.utils import ALGOS
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from sb3_latent.experiments.runs import RunSpec, check_settings
from sb3_latent.experiments.specs import MergeDict, TargetEntropyScale
from sb3_latent.experiments.transfers import TRANSFERS
from sb3_latent.zoo import zoo_config
from sb3_latent.zoo_runs import RunFolder, load_replay_buffer

MODES = ("scratch", "resume", "transfer")


def as_dict(value: Any) -> dict[str, Any]:
    """A ``policy_kwargs``-like entry as a dict; strings are evaluated where rl-zoo3 evaluates them (``nn`` in scope)."""
    return dict(eval(value, vars(zoo_exp_manager))) if isinstance(value, str) else dict(value or {})


def merge(base: Any, override: MergeDict) -> Any:
    """``override`` merged into a YAML entry. A string entry stays a string (``"dict(<entry>, **{...})"``), so
    ``config.yml`` stays readable and rl-zoo3 evaluates it as usual; override values are plain (lists, numbers)."""
    if isinstance(base, str):
        return f"dict({base}, **{override.as_dict()!r})"
    return {**dict(base or {}), **override.as_dict()}


def resolve_target_entropy(
    scale: TargetEntropyScale, algo: str, env_id: str, env_kwargs: dict[str, Any], hyperparams: dict
) -> float:
    """``scale.factor`` times the default target entropy: -action_dim (SAC, TQC), -latent_dim (LatentSAC)."""
    env = gym.make(env_id, **env_kwargs)
    action_dim = int(env.action_space.shape[0])  # type: ignore[index]
    env.close()
    dim = action_dim
    if algo == "latent_sac":
        dim = int(as_dict(hyperparams.get("policy_kwargs")).get("latent_dim") or action_dim)
    return -scale.factor * dim


class RunManager(ExperimentManager):
    """See the module docstring. ``mode`` is ``scratch``, ``resume`` (from ``trained_agent``, a checkpoint) or
    ``transfer`` (from ``spec.source``, through the condition's transfer hook)."""

    def __init__(self, spec: RunSpec, mode: str, segment_seed: int, trained_agent: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        condition = spec.condition
        self.spec = spec
        self.mode = mode
        # What rl-zoo3 saves as args.yml.
        args = argparse.Namespace(
            algo=condition.algo,
            env=condition.env_id,
            experiment=spec.experiment,
            condition=condition.name,
            budget=spec.budget,
            seed=spec.seed,
            segment_seed=segment_seed,
            n_timesteps=spec.n_timesteps,
            eval_freq=spec.eval_freq,
            eval_episodes=spec.n_eval_episodes,
            env_kwargs=spec.env_kwargs,
            source=spec.source.save_path if spec.source else None,
            mode=mode,
        )
        super().__init__(
            args,
            condition.algo,
            condition.env_id,
            log_folder=str(spec.path),
            n_timesteps=spec.n_timesteps,
            eval_freq=-1,  # our EvaluationCSV callback evaluates (keyed on num_timesteps, so resumable)
            save_freq=-1,  # our Checkpoints callback saves (with the replay buffer)
            env_kwargs=dict(spec.env_kwargs),
            trained_agent=trained_agent,
            seed=segment_seed,
            verbose=1,
            config=zoo_config(condition.algo, condition.env_id),  # plan_runs checked that it has an entry
        )
        # A stable folder: rl-zoo3 would open <env>_<last id + 1> on each call.
        self.save_path = str(spec.save_path)
        self.params_path = str(spec.save_path / self.env_name)
        self.continue_training = mode in ("resume", "transfer")
        if mode == "resume":
            # Append to the Monitor CSV instead of overwriting the episodes of earlier segments.
            self.monitor_kwargs = {"override_existing": False}

    def read_hyperparameters(self) -> tuple[dict[str, Any], dict[str, Any]]:
        hyperparams, _ = super().read_hyperparameters()
        condition = self.spec.condition
        for layer in self.spec.layers:
            for key, value in layer.items():
                hyperparams[key] = merge(hyperparams.get(key), value) if isinstance(value, MergeDict) else value
        for key, value in list(hyperparams.items()):
            if isinstance(value, TargetEntropyScale):
                hyperparams[key] = resolve_target_entropy(
                    value, condition.algo, condition.env_id, self.spec.env_kwargs, hyperparams
                )
        # Copies: SB3 adds keys to the policy_kwargs dict it is given.
        saved = {key: (dict(value) if isinstance(value, dict) else value) for key, value in sorted(hyperparams.items())}
        print(f"Hyperparameters after the budget and condition overrides ({self.spec.budget}, {condition.name}):")
        pprint.pprint(saved)
        check_settings(self.spec, saved)
        return hyperparams, saved

    def _load_pretrained_agent(self, hyperparams: dict[str, Any], env: VecEnv) -> BaseAlgorithm:
        if self.mode == "resume":
            model = super()._load_pretrained_agent(hyperparams, env)
            # A checkpoint folder has rl-zoo3's layout, with our compact replay buffer.
            buffer_path = RunFolder(str(Path(self.trained_agent).parent)).replay_buffer_path()
            if buffer_path is not None:
                load_replay_buffer(model, buffer_path)  # type: ignore[arg-type]
            return model
        spec, source = self.spec, self.spec.condition.source
        assert spec.source is not None and source is not None
        algorithm_class = ALGOS[spec.condition.algo]

        def make_model(**extra: Any) -> BaseAlgorithm:
            # What ExperimentManager.setup_experiment does for a model from scratch, plus the hook's arguments.
            return algorithm_class(
                env=env,
                tensorboard_log=self.tensorboard_log,
                seed=self.seed,
                verbose=self.verbose,
                device=self.device,
                **{**hyperparams, **extra},
            )

        return TRANSFERS[source.transfer](spec.source, env, make_model, self.seed, **dict(source.kwargs))
