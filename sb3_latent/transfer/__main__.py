"""``python -m sb3_latent.transfer``: transfer from the command line, into rl-zoo3 style run folders.

Naive transfer (no subcommand):

    python -m sb3_latent.transfer --source logs/sac/HalfCheetah-v4_1 --env HalfCheetahBackward-v4 -n 30000 -f logs

writes ``logs/sac/HalfCheetahBackward-v4_<id>/HalfCheetahBackward-v4.zip`` with ``0.monitor.csv`` beside it and
``HalfCheetahBackward-v4/{args,config}.yml`` (plus ``vecnormalize.pkl`` when normalised), so rl-zoo3's ``enjoy``
and ``record_video`` read it, and it can be the source of a further transfer.

Multi-task latent transfer (poster, Figure 1), the ``multitask`` subcommand:

    python -m sb3_latent.transfer multitask --tasks HalfCheetah-v4 HalfCheetahBackward-v4 \
        --target HalfCheetahTask-v4 --target-kwargs target_speed:1.5 -n 30000 --mode frozen -f logs

trains one LatentSAC per base task, all sharing one action generator, then a LatentSAC on the target task that
starts from that generator. Each base task gets a run folder ``logs/latent_sac/<task>_<id>/`` and the target one
``logs/latent_sac/<target>_<id>/``, which also holds the generator as ``action_generator.pt``.

Both take rl-zoo3's ``-P/--progress``, ``-tb/--tensorboard-log``, ``--eval-freq`` and ``--eval-episodes`` (for
``multitask``, of the target's training), write ``evaluations.npz`` and ``best_model.zip`` in the run folder as
rl-zoo3 does, and end with one line: the final model's deterministic evaluation return.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # heavy (torch, SB3): imported once the command line is parsed
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
    from stable_baselines3.common.vec_env import VecEnv


def _add_zoo_flags(parser: argparse.ArgumentParser, what: str = "") -> None:
    """rl-zoo3's train flags for progress, TensorBoard and evaluation, with its defaults and meanings."""
    parser.add_argument("-P", "--progress", action="store_true", help=f"display a progress bar{what} using tqdm and rich")
    parser.add_argument("-tb", "--tensorboard-log", default="", help="TensorBoard log dir (events in <dir>/<env>/)")
    parser.add_argument(
        "--eval-freq",
        type=int,
        default=25000,
        help=f"evaluate the agent{what} every n steps, into <run>/evaluations.npz (if negative, no evaluation)",
    )
    parser.add_argument("--eval-episodes", type=_episodes, default=5, help="number of episodes to use for evaluation")


def _episodes(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 episode, got {value}")
    return value


# The transfer functions' messages name the fix as their Python keywords; on this command line it is a flag.
CLI_FIXES = {
    "keep_buffer=False": "leave out --keep-buffer",
    "keep_buffer=True": "--keep-buffer",
    "replay_buffer=<path or buffer>": "--replay-buffer <path>",
    "replay_buffer=...": "--replay-buffer",
    "source_env='HalfCheetah-v4'": "--source-env HalfCheetah-v4",
    "source_env_kwargs": "--source-env-kwargs",
    "algo='sac'": "--algo sac",
    "reset_entropy=False": "leave out --reset-entropy",
    "reset_entropy=True": "--reset-entropy",
    "reset_critic=False": "leave out --reset-critic",
    "reset_critic=True": "--reset-critic",
}


def error_line(error: Exception) -> str:
    """The one line this command prints for a UserInputError: its message, with each fix named as a flag."""
    message = str(error)
    for keyword, flag in CLI_FIXES.items():
        message = message.replace(keyword, flag)
    return f"error: {message}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from rl_zoo3.utils import StoreDict

    parser = argparse.ArgumentParser(
        prog="python -m sb3_latent.transfer",
        description="Fine-tune a saved off-policy model (SAC, TD3, TQC, ...) on a target task (naive transfer).",
        epilog="subcommands:\n  multitask   one action generator trained on several base tasks, then transferred to a "
        "target task (latent transfer);\n              see python -m sb3_latent.transfer multitask --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    _add_zoo_flags(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["multitask"]:
        multitask_main(argv[1:])
        return
    naive_main(argv)


def naive_main(argv: list[str]) -> None:
    from huggingface_sb3 import EnvironmentName
    from rl_zoo3.utils import get_latest_run_id

    from sb3_latent.envs.registration import check_env_id
    from sb3_latent.errors import UserInputError
    from sb3_latent.transfer.naive import _env_wrapper, finetune, load_source_run, make_target_env
    from sb3_latent.zoo import register, set_default_num_threads

    register()  # our algorithms in rl-zoo3's ALGOS, for --algo latent_sac
    set_default_num_threads()
    args = parse_args(argv)
    # rl-zoo3 habit: -params learning_starts:1000 seed:0. Here they are finetune's own arguments.
    for name in ("learning_starts", "seed"):
        if name in args.hyperparams:
            setattr(args, name, args.hyperparams.pop(name))
    try:
        check_env_id(args.env, "--env")
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
            # As rl-zoo3's -i: the run logs to --tensorboard-log, never to the source's saved tensorboard_log.
            tensorboard_log=os.path.join(args.tensorboard_log, env_name) if args.tensorboard_log else None,
            **args.hyperparams,
        )
        # The eval env is built like the target env (the source run's env_wrapper), one env as rl-zoo3's.
        eval_env = _eval_env(make_target_env(args.env, args.env_kwargs, 1, model.seed, None, _env_wrapper(run)), model)
    except UserInputError as error:
        sys.exit(error_line(error))

    # rl-zoo3's enjoy reads env_kwargs from args.yml, and normalize / env_wrapper from config.yml.
    saved_args: dict[str, Any] = {**vars(args), "algo": algo}
    config = {**run.config, **args.hyperparams, "learning_starts": model.learning_starts, "n_timesteps": args.n_timesteps}
    if model.get_vec_normalize_env() is None:
        config["normalize"] = False
    elif not config.get("normalize"):
        config["normalize"] = True  # statistics given explicitly (vecnormalize=...), not by the source's config
    _write_run_files(params_path, saved_args, config)
    if args.verbose > 0:
        print(f"Fine-tuning {run.model_path or args.source} on {args.env}; log path: {save_path}")

    _learn(model, args, args.n_timesteps, eval_env, save_path, params_path)
    print(f"Saving to {save_path}")
    model.save(os.path.join(save_path, env_name))
    if args.save_replay_buffer:
        model.save_replay_buffer(os.path.join(save_path, "replay_buffer.pkl"))
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        vec_normalize.save(os.path.join(params_path, "vecnormalize.pkl"))
    _final_evaluation(model, eval_env, args.env, args.eval_episodes)


def _eval_env(env: VecEnv, model: BaseAlgorithm) -> VecEnv:
    """As rl-zoo3's eval env: normalised like the training env (its statistics synced before each evaluation), with
    rewards left unnormalised."""
    from stable_baselines3.common.vec_env import VecNormalize

    train_env = model.get_vec_normalize_env()
    if train_env is None:
        return env
    return VecNormalize(
        env,
        training=False,
        norm_obs=train_env.norm_obs,
        norm_reward=False,
        clip_obs=train_env.clip_obs,
        epsilon=train_env.epsilon,
    )


def _learn(
    model: OffPolicyAlgorithm, args: argparse.Namespace, n_timesteps: int, eval_env: VecEnv, save_path: str, params_path: str
) -> None:
    """``learn()`` with rl-zoo3's progress bar and evaluation (``best_model.zip``, ``evaluations.npz`` in the run
    folder), then the last log row written."""
    from rl_zoo3.callbacks import SaveVecNormalizeCallback
    from stable_baselines3.common.callbacks import EvalCallback

    from sb3_latent.transfer.latent import flush_log

    callbacks: list[BaseCallback] = []
    if args.eval_freq > 0:
        callbacks.append(
            EvalCallback(
                eval_env,
                callback_on_new_best=SaveVecNormalizeCallback(save_freq=1, save_path=params_path),
                best_model_save_path=save_path,
                n_eval_episodes=args.eval_episodes,
                log_path=save_path,
                eval_freq=max(args.eval_freq // model.n_envs, 1),  # as rl-zoo3: --eval-freq counts env steps
                deterministic=True,
                verbose=args.verbose,
            )
        )
    with contextlib.suppress(KeyboardInterrupt):  # as rl-zoo3: Ctrl-C saves what was learned so far
        model.learn(n_timesteps, callback=callbacks, progress_bar=args.progress)
    flush_log(model)
    model.logger.close()


def _final_evaluation(model: BaseAlgorithm, eval_env: VecEnv, env_id: str, n_episodes: int) -> None:
    """The command's last line: the saved model's deterministic return on the target task."""
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import sync_envs_normalization

    train_env = model.get_env()
    if train_env is not None and model.get_vec_normalize_env() is not None:
        sync_envs_normalization(train_env, eval_env)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=n_episodes, deterministic=True, warn=False)
    eval_env.close()
    episodes = f"{n_episodes} episode{'s' if n_episodes > 1 else ''}"
    print(f"Final evaluation on {env_id} ({episodes}, deterministic): mean return {mean:.2f} +/- {std:.2f}")


def _write_run_files(params_path: str, args: dict[str, Any], config: dict[str, Any]) -> None:
    """rl-zoo3's ``<run>/<env>/args.yml`` and ``config.yml``, which its ``enjoy`` and our transfers read."""
    os.makedirs(params_path, exist_ok=True)
    for name, content in (("args.yml", args), ("config.yml", config)):
        with open(os.path.join(params_path, name), "w") as file:
            yaml.dump(content, file)


def parse_multitask_args(argv: list[str] | None = None) -> argparse.Namespace:
    from rl_zoo3.utils import StoreDict

    from sb3_latent.transfer.latent import TRANSFER_MODES

    parser = argparse.ArgumentParser(
        prog="python -m sb3_latent.transfer multitask",
        description="Train one action generator on several base tasks (one LatentSAC each, sharing the generator), "
        "then a LatentSAC on a target task that starts from it (latent transfer, poster Figure 1).",
    )
    parser.add_argument("--tasks", nargs="+", required=True, help="base task env ids (their data trains the generator)")
    parser.add_argument("--target", required=True, help="target task env id, e.g. HalfCheetahTask-v4")
    parser.add_argument("--target-kwargs", nargs="+", action=StoreDict, default=None, help="target env kwargs, key:value")
    parser.add_argument("-n", "--n-timesteps", type=int, required=True, help="env steps on each base task")
    parser.add_argument("--target-n-timesteps", type=int, default=None, help="env steps on the target task (default: -n)")
    parser.add_argument("--mode", choices=TRANSFER_MODES, default="frozen", help="what the target does with the generator")
    parser.add_argument("--chunk", type=int, default=1000, help="env steps per base task before switching to the next")
    parser.add_argument("-f", "--log-folder", default="logs", help="log folder, as rl-zoo3's (default: logs)")
    parser.add_argument("-params", "--hyperparams", nargs="+", action=StoreDict, default={}, help="LatentSAC args, key:value")
    parser.add_argument(
        "--target-params", nargs="+", action=StoreDict, default={}, help="LatentSAC args of the target only (over -params)"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (base task i: seed + i; target: seed + n)")
    parser.add_argument("--verbose", type=int, default=1, help="verbosity of the models (0: none)")
    _add_zoo_flags(parser, " of the target's training")
    return parser.parse_args(argv)


def multitask_main(argv: list[str]) -> None:
    from huggingface_sb3 import EnvironmentName
    from rl_zoo3.utils import get_latest_run_id

    from sb3_latent.common.checks import check_argument_names
    from sb3_latent.envs.registration import check_env_id
    from sb3_latent.errors import UserInputError
    from sb3_latent.latent_sac import LatentSAC
    from sb3_latent.transfer.latent import (
        check_latent_sac_arguments,
        latent_transfer,
        run_logger,
        train_multitask_generator,
    )
    from sb3_latent.transfer.naive import make_target_env
    from sb3_latent.zoo import register, set_default_num_threads

    register()
    set_default_num_threads()
    args = parse_multitask_args(argv)
    if "seed" in args.hyperparams:  # rl-zoo3 habit: -params seed:0
        args.seed = args.hyperparams.pop("seed")
    target_kwargs = {**args.hyperparams, **args.target_params}
    try:  # before any run folder is made, and before the base tasks train for the target's sake
        for task in args.tasks:
            check_env_id(task, "--tasks")
        check_env_id(args.target, "--target")
        if len(set(args.tasks)) != len(args.tasks):
            raise UserInputError(f"Each base task must appear once in --tasks, got {args.tasks}.")
        check_argument_names(LatentSAC, args.hyperparams, "Correct or remove it in -params.")
        check_argument_names(LatentSAC, args.target_params, "Correct or remove it in --target-params.")
        check_latent_sac_arguments(args.tasks[0], None, args.hyperparams, "train_multitask_generator")
        check_latent_sac_arguments(args.target, args.target_kwargs, target_kwargs, "latent_transfer")
    except UserInputError as error:
        sys.exit(error_line(error))
    log_path = os.path.join(args.log_folder, "latent_sac")

    def new_run(env_id: str) -> tuple[str, str]:
        env_name = EnvironmentName(env_id)
        save_path = os.path.join(log_path, f"{env_name}_{get_latest_run_id(log_path, env_name) + 1}")
        os.makedirs(save_path, exist_ok=True)
        return save_path, os.path.join(save_path, env_name)

    base_runs = {task: new_run(task) for task in args.tasks}
    target_path, target_params_path = new_run(args.target)
    generator_path = os.path.join(target_path, "action_generator.pt")
    target_n_timesteps = args.target_n_timesteps if args.target_n_timesteps is not None else args.n_timesteps
    try:
        if args.verbose > 0:
            print(f"Training one action generator on {', '.join(args.tasks)}: {args.n_timesteps} steps each")
        generator, models = train_multitask_generator(
            args.tasks,
            args.n_timesteps,
            chunk=args.chunk,
            seed=args.seed,
            save_path=generator_path,
            log_dirs={task: save_path for task, (save_path, _) in base_runs.items()},
            verbose=args.verbose,
            tensorboard_log=args.tensorboard_log or None,  # each task under <dir>/<task>/, as rl-zoo3's
            **args.hyperparams,
        )
        target_seed = None if args.seed is None else args.seed + len(args.tasks)
        model = latent_transfer(
            generator,
            args.target,
            args.mode,
            env_kwargs=args.target_kwargs,
            monitor_dir=target_path,
            seed=target_seed,
            verbose=args.verbose,
            tensorboard_log=os.path.join(args.tensorboard_log, EnvironmentName(args.target)) if args.tensorboard_log else None,
            **target_kwargs,
        )
        eval_env = _eval_env(make_target_env(args.target, args.target_kwargs, 1, target_seed, None), model)
    except UserInputError as error:
        sys.exit(error_line(error))

    for task, (save_path, params_path) in base_runs.items():
        models[task].save(os.path.join(save_path, EnvironmentName(task)))
        models[task].logger.close()
        saved_args = {"algo": "latent_sac", "env": task, "env_kwargs": None, "seed": args.seed, "multitask": vars(args)}
        config = {**args.hyperparams, "n_timesteps": args.n_timesteps, "normalize": False, "multitask_tasks": args.tasks}
        _write_run_files(params_path, saved_args, config)
    # The target run's config reproduces its training with rl-zoo3 (action_generator and generator_mode are
    # LatentSAC arguments): python -m rl_zoo3.train --algo latent_sac --env <target> -params action_generator:... ...
    saved_args = {"algo": "latent_sac", "env": args.target, "env_kwargs": args.target_kwargs, "seed": target_seed}
    config = {
        **target_kwargs,
        "action_generator": os.path.abspath(generator_path),
        "generator_mode": args.mode,
        "n_timesteps": target_n_timesteps,
        "normalize": False,
        "multitask_tasks": args.tasks,
    }
    _write_run_files(target_params_path, {**saved_args, "multitask": vars(args)}, config)
    if args.verbose > 0:
        print(f"Action generator saved to {generator_path}; training {args.target} ({args.mode}); log path: {target_path}")
    model.set_logger(run_logger(target_path, model))
    _learn(model, args, target_n_timesteps, eval_env, target_path, target_params_path)
    print(f"Saving to {target_path}")
    model.save(os.path.join(target_path, EnvironmentName(args.target)))
    _final_evaluation(model, eval_env, args.target, args.eval_episodes)


if __name__ == "__main__":
    main()
