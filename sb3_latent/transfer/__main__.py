"""``python -m sb3_latent.transfer``: naive transfer from the command line, into an rl-zoo3 style run folder.

    python -m sb3_latent.transfer --source logs/sac/HalfCheetah-v4_1 --env HalfCheetahBackward-v4 -n 30000 -f logs

writes ``logs/sac/HalfCheetahBackward-v4_<id>/HalfCheetahBackward-v4.zip`` with ``0.monitor.csv`` beside it and
``HalfCheetahBackward-v4/{args,config}.yml`` (plus ``vecnormalize.pkl`` when normalised), so rl-zoo3's ``enjoy``
and ``record_video`` read it, and it can be the source of a further transfer.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any

import yaml


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from rl_zoo3.utils import StoreDict

    parser = argparse.ArgumentParser(
        prog="python -m sb3_latent.transfer",
        description="Fine-tune a saved off-policy model (SAC, TD3, TQC, ...) on a target task (naive transfer).",
    )
    parser.add_argument("--source", required=True, help="rl-zoo3 run folder (logs/sac/HalfCheetah-v4_1) or saved model zip")
    parser.add_argument("--env", required=True, help="target env id, e.g. HalfCheetahBackward-v4")
    parser.add_argument("--env-kwargs", nargs="+", action=StoreDict, default=None, help="target env kwargs, key:value")
    parser.add_argument("-n", "--n-timesteps", type=int, required=True, help="fine-tuning steps on the target task")
    parser.add_argument("-f", "--log-folder", default="logs", help="log folder, as rl-zoo3's (default: logs)")
    parser.add_argument("--algo", default=None, help="rl-zoo3 algorithm name, for a zip outside an rl-zoo3 run folder")
    parser.add_argument("--source-env", default=None, help="source task env id, where the run folder does not say it")
    parser.add_argument("--source-env-kwargs", nargs="+", action=StoreDict, default=None, help="source env kwargs")
    parser.add_argument("--keep-buffer", action="store_true", help="keep the source's replay buffer, relabelled")
    parser.add_argument("--replay-buffer", default=None, help="replay buffer pickle to keep (with --keep-buffer)")
    parser.add_argument("--reset-entropy", action="store_true", help="reset SAC/TQC's entropy temperature")
    parser.add_argument("--reset-critic", action="store_true", help="re-initialise the critic and its target")
    parser.add_argument("--warmup", choices=["policy", "random"], default="policy", help="who acts before learning starts")
    parser.add_argument("--learning-starts", type=int, default=None, help="steps before the first gradient step")
    parser.add_argument("--no-vecnormalize", action="store_true", help="do not carry the source's VecNormalize statistics")
    parser.add_argument("-params", "--hyperparams", nargs="+", action=StoreDict, default={}, help="overrides, key:value")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: the source model's)")
    parser.add_argument("--save-replay-buffer", action="store_true", help="save the replay buffer too")
    parser.add_argument("--verbose", type=int, default=1, help="verbosity of the model (0: none)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from huggingface_sb3 import EnvironmentName
    from rl_zoo3.utils import get_latest_run_id

    from sb3_latent.errors import UserInputError
    from sb3_latent.transfer.naive import finetune, load_source_run
    from sb3_latent.zoo import register, set_default_num_threads

    register()  # our algorithms in rl-zoo3's ALGOS, for --algo latent_sac
    set_default_num_threads()
    args = parse_args(argv)
    # rl-zoo3 habit: -params learning_starts:1000 seed:0. Here they are finetune's own arguments.
    for name in ("learning_starts", "seed"):
        if name in args.hyperparams:
            setattr(args, name, args.hyperparams.pop(name))
    try:
        run = load_source_run(
            args.source, algo=args.algo, source_env=args.source_env, source_env_kwargs=args.source_env_kwargs
        )
        algo = run.algo or args.algo or run.algorithm_class.__name__.lower()
        env_name = EnvironmentName(args.env)
        log_path = os.path.join(args.log_folder, algo)
        save_path = os.path.join(log_path, f"{env_name}_{get_latest_run_id(log_path, env_name) + 1}")
        params_path = os.path.join(save_path, env_name)
        model = finetune(
            args.source,
            args.env,
            env_kwargs=args.env_kwargs,
            keep_buffer=args.keep_buffer,
            replay_buffer=args.replay_buffer,
            reset_entropy=args.reset_entropy,
            reset_critic=args.reset_critic,
            warmup=args.warmup,
            learning_starts=args.learning_starts,
            seed=args.seed,
            algo=args.algo,
            source_env=args.source_env,
            source_env_kwargs=args.source_env_kwargs,
            vecnormalize=not args.no_vecnormalize,
            monitor_dir=save_path,
            verbose=args.verbose,
            **args.hyperparams,
        )
    except UserInputError as error:
        sys.exit(f"error: {error}")

    # rl-zoo3's enjoy reads env_kwargs from args.yml, and normalize / env_wrapper from config.yml.
    saved_args: dict[str, Any] = {**vars(args), "algo": algo}
    config = {**run.config, **args.hyperparams, "learning_starts": model.learning_starts, "n_timesteps": args.n_timesteps}
    if model.get_vec_normalize_env() is None:
        config["normalize"] = False
    elif not config.get("normalize"):
        config["normalize"] = True  # statistics given explicitly (vecnormalize=...), not by the source's config
    os.makedirs(params_path, exist_ok=True)
    for name, content in (("args.yml", saved_args), ("config.yml", config)):
        with open(os.path.join(params_path, name), "w") as file:
            yaml.dump(content, file)
    if args.verbose > 0:
        print(f"Fine-tuning {run.model_path or args.source} on {args.env}; log path: {save_path}")

    with contextlib.suppress(KeyboardInterrupt):  # as rl-zoo3: Ctrl-C saves what was learned so far
        model.learn(args.n_timesteps)
    print(f"Saving to {save_path}")
    model.save(os.path.join(save_path, env_name))
    if args.save_replay_buffer:
        model.save_replay_buffer(os.path.join(save_path, "replay_buffer.pkl"))
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        vec_normalize.save(os.path.join(params_path, "vecnormalize.pkl"))


if __name__ == "__main__":
    main()
