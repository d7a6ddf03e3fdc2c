"""Bad inputs, one table per interface: each is answered by one readable line that names the problem (issue 13).

Python API and corrupt files: the call raises a UserInputError (a ValueError) whose message is one line. CLIs: the
command exits non-zero with one ``error:`` line and no traceback. Everything runs in-process (a CLI's ``main(argv)``)
but for three rl-zoo3 commands, which go through the start-up hook in a fresh interpreter as a user would.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml
from stable_baselines3 import PPO, SAC
from zoo_helpers import run_python

from sb3_latent import LatentSAC
from sb3_latent.common import ActionGenerator
from sb3_latent.errors import UserInputError
from sb3_latent.experiments.__main__ import main as experiments_main
from sb3_latent.train import main as train_main
from sb3_latent.transfer import finetune
from sb3_latent.transfer.__main__ import main as transfer_main
from sb3_latent.zoo_runs import load_replay_buffer, read_run

TINY = dict(policy_kwargs=dict(net_arch=[8], generator_net_arch=[8]), buffer_size=300, learning_starts=10)


def latent_sac(**kwargs: Any) -> LatentSAC:
    return LatentSAC("Pendulum-v1", **{**TINY, **kwargs})


def truncated(source: Path, target: Path) -> Path:
    content = source.read_bytes()
    target.write_bytes(content[: len(content) // 2])
    return target


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Good and bad files of each kind: models, generators, replay buffers, run folders."""
    folder = tmp_path_factory.mktemp("files")
    paths = {name: folder / name for name in ("lat.zip", "sac.zip", "ppo.zip", "gen.pt", "buffer.pkl", "buffer.npz")}
    model = latent_sac(generator_warmup_steps=1)
    model.learn(20)
    model.save(paths["lat.zip"])
    model.save_action_generator(paths["gen.pt"])
    model.save_replay_buffer(paths["buffer.pkl"])
    from sb3_latent.zoo_runs import save_replay_buffer

    save_replay_buffer(model.replay_buffer, paths["buffer.npz"])
    SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8])).save(paths["sac.zip"])
    PPO("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8])).save(paths["ppo.zip"])
    for name in ("lat.zip", "gen.pt", "buffer.pkl", "buffer.npz"):
        stem, suffix = name.split(".")
        paths[f"truncated.{suffix}" if suffix != "zip" else "truncated.zip"] = truncated(
            paths[name], folder / f"{stem}_truncated.{suffix}"
        )
    rng = np.random.default_rng(0)  # not the models' random numbers: those are seeded by SB3
    for name in ("random.bin", "random.pt", "random.zip", "random.pkl"):
        paths[name] = folder / name
        paths[name].write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    # A buffer of another env (HalfCheetah: other observation shape).
    cheetah = LatentSAC("HalfCheetah-v4", **TINY)
    paths["cheetah.npz"] = folder / "cheetah.npz"
    cheetah.learn(5)
    save_replay_buffer(cheetah.replay_buffer, paths["cheetah.npz"])
    # rl-zoo3 run folders: one with an unreadable args.yml, one without any.
    for name, args in (("bad_args_run", "algo: sac\nenv: [unclosed\n"), ("no_args_run", None)):
        run = folder / name
        (run / "Pendulum-v1").mkdir(parents=True)
        if args is not None:
            (run / "Pendulum-v1" / "args.yml").write_text(args)
        paths[name] = run
    # A SAC run folder whose VecNormalize statistics are truncated.
    run = folder / "bad_vecnormalize_run"
    (run / "Pendulum-v1").mkdir(parents=True)
    (run / "Pendulum-v1.zip").write_bytes(paths["sac.zip"].read_bytes())
    (run / "Pendulum-v1" / "args.yml").write_text(yaml.dump({"algo": "sac", "env": "Pendulum-v1", "env_kwargs": None}))
    (run / "Pendulum-v1" / "config.yml").write_text(yaml.dump({"policy": "MlpPolicy", "normalize": True}))
    (run / "Pendulum-v1" / "vecnormalize.pkl").write_bytes(paths["random.pkl"].read_bytes())
    paths["bad_vecnormalize_run"] = run
    paths["missing"] = folder / "missing.zip"
    return paths


@pytest.fixture(scope="module")
def cheetah_run(tmp_path_factory) -> Path:
    """A SAC run folder on the base task, in rl-zoo3's layout, with its replay buffer."""
    run = tmp_path_factory.mktemp("zoo") / "sac" / "HalfCheetah-v4_1"
    (run / "HalfCheetah-v4").mkdir(parents=True)
    model = SAC("MlpPolicy", "HalfCheetah-v4", buffer_size=100, learning_starts=0, policy_kwargs=dict(net_arch=[8]))
    model.learn(4)
    model.save(run / "HalfCheetah-v4.zip")
    model.save_replay_buffer(run / "replay_buffer.pkl")
    (run / "HalfCheetah-v4" / "args.yml").write_text(yaml.dump({"algo": "sac", "env": "HalfCheetah-v4", "env_kwargs": None}))
    (run / "HalfCheetah-v4" / "config.yml").write_text(yaml.dump({"policy": "MlpPolicy"}))
    return run


# ---------------------------------------------------------------- Python API: (id, call, what the line says)

API_CASES: list[tuple[str, Callable[[], Any], str]] = [
    ("kl_weight str", lambda: latent_sac(kl_weight="abc"), r"kl_weight must be a finite number >= 0 .*got 'abc'"),
    ("kl_weight inf", lambda: latent_sac(kl_weight=math.inf), r"kl_weight must be a finite number .*got inf"),
    ("kl_weight nan", lambda: latent_sac(kl_weight=math.nan), r"kl_weight must be a finite number .*got nan"),
    ("kl_weight negative", lambda: latent_sac(kl_weight=-1.0), r"kl_weight must be .*>= 0"),
    ("batch_size str", lambda: latent_sac(batch_size="abc"), r"batch_size must be an integer >= 1 .*got 'abc'"),
    ("batch_size -5", lambda: latent_sac(batch_size=-5), r"batch_size must be an integer >= 1 .*got -5"),
    ("batch_size 0", lambda: latent_sac(batch_size=0), r"batch_size must be an integer >= 1 .*got 0"),
    ("batch_size float", lambda: latent_sac(batch_size=64.5), r"batch_size must be an integer .*got 64.5"),
    ("batch_size bool", lambda: latent_sac(batch_size=True), r"batch_size must be an integer .*got True"),
    ("learning_rate negative", lambda: latent_sac(learning_rate=-1e-3), r"learning_rate must be a number >= 0 .*-0.001"),
    ("learning_rate str", lambda: latent_sac(learning_rate="abc"), r"learning_rate must be .*got 'abc'"),
    ("learning_rate inf", lambda: latent_sac(learning_rate=math.inf), r"learning_rate must be .*got inf"),
    ("negative schedule", lambda: latent_sac(learning_rate=lambda _: -1.0), r"learning_rate .*a schedule that starts at -1.0"),
    ("generator_learning_rate", lambda: latent_sac(generator_learning_rate=-1), r"generator_learning_rate must be"),
    ("buffer_size 0", lambda: latent_sac(buffer_size=0), r"buffer_size must be an integer >= 1"),
    ("buffer_size float", lambda: latent_sac(buffer_size=1e6), r"buffer_size must be an integer .*got 1000000.0"),
    ("learning_starts -1", lambda: latent_sac(learning_starts=-1), r"learning_starts must be an integer >= 0"),
    ("gradient_steps -2", lambda: latent_sac(gradient_steps=-2), r"gradient_steps must be an integer >= 0 .*or -1"),
    ("gradient_steps str", lambda: latent_sac(gradient_steps="all"), r"gradient_steps must be an integer"),
    ("train_freq 0", lambda: latent_sac(train_freq=0), r"train_freq must be an integer >= 1"),
    ("train_freq unit", lambda: latent_sac(train_freq=(1, "epoch")), r"train_freq .*\(1, 'episode'\).*got \(1, 'epoch'\)"),
    ("tau", lambda: latent_sac(tau=1.5), r"tau must be a number in \[0, 1\]"),
    ("gamma", lambda: latent_sac(gamma=-0.1), r"gamma must be a number in \[0, 1\]"),
    ("ent_coef auto_x", lambda: latent_sac(ent_coef="auto_x"), r"ent_coef must be .*'auto_0.1', got 'auto_x'"),
    ("ent_coef negative", lambda: latent_sac(ent_coef=-0.1), r"ent_coef must be a number > 0"),
    ("target_entropy", lambda: latent_sac(target_entropy="high"), r"target_entropy must be 'auto'"),
    ("target_update_interval", lambda: latent_sac(target_update_interval=0), r"target_update_interval must be an integer"),
    ("n_steps", lambda: latent_sac(n_steps=0), r"n_steps must be an integer >= 1"),
    ("generator_train_freq", lambda: latent_sac(generator_train_freq=0), r"generator_train_freq must be an integer >= 1"),
    ("generator_warmup_steps", lambda: latent_sac(generator_warmup_steps=-1), r"generator_warmup_steps must be an integer"),
    ("generator_mode", lambda: latent_sac(generator_mode="bogus"), r"generator_mode must be one of"),
    ("frozen without generator", lambda: latent_sac(generator_mode="frozen"), r"none was given. Pass action_generator="),
    ("actor_trains_generator", lambda: latent_sac(actor_trains_generator="yes"), r"actor_trains_generator must be True or"),
    ("policy_regularizer", lambda: latent_sac(policy_regularizer="l2"), r"policy_regularizer must be one of"),
    ("residual_scale", lambda: latent_sac(residual_scale="big"), r"residual_scale must be a number in \(0, 2\]"),
    ("target_kl", lambda: latent_sac(target_kl=-1), r"target_kl must be 'auto' or a finite number >= 0"),
    ("policy_kwargs str", lambda: latent_sac(policy_kwargs="abc"), r"policy_kwargs must be a dict"),
    ("latent_dim 0", lambda: latent_sac(policy_kwargs=dict(latent_dim=0)), r"latent_dim must be a positive integer"),
    ("latent_dim str", lambda: latent_sac(policy_kwargs=dict(latent_dim="abc")), r"latent_dim must be .*got 'abc'"),
    ("latent_bound -1", lambda: latent_sac(policy_kwargs=dict(latent_bound=-1)), r"latent_bound must be a finite number > 0"),
    ("latent_bound str", lambda: latent_sac(policy_kwargs=dict(latent_bound="abc")), r"latent_bound must be .*got 'abc'"),
    ("latent_gain", lambda: latent_sac(policy_kwargs=dict(latent_gain=0)), r"latent_gain must be a finite number > 0"),
    ("residual_bound", lambda: latent_sac(policy_kwargs=dict(residual_bound=math.nan)), r"residual_bound must be a finite"),
    ("generator_net_arch", lambda: latent_sac(policy_kwargs=dict(generator_net_arch=[8, "x"])), r"net_arch must be a list"),
    ("decoder", lambda: latent_sac(policy_kwargs=dict(decoder="spline")), r"decoder must be one of"),
    ("action_generator int", lambda: latent_sac(action_generator=123), r"action_generator=123 is not a generator source"),
]


def assert_one_line(message: str, pattern: str) -> None:
    assert "\n" not in message.strip(), message
    assert re.search(pattern, message), f"{pattern!r} not in: {message}"
    assert "weights_only" not in message


@pytest.mark.parametrize("call, pattern", [case[1:] for case in API_CASES], ids=[case[0] for case in API_CASES])
def test_python_api(call: Callable[[], Any], pattern: str) -> None:
    with pytest.raises(UserInputError) as error:
        call()
    assert_one_line(str(error.value), pattern)


# ---------------------------------------------------------------- Files: (id, call with the files, what the line says)

FILE_CASES: list[tuple[str, Callable[[dict[str, Path]], Any], str]] = [
    ("load SAC zip", lambda f: LatentSAC.load(f["sac.zip"]), r"sac.zip holds a model with policy SACPolicy .*not a LatentSAC"),
    ("load PPO zip", lambda f: LatentSAC.load(f["ppo.zip"]), r"ppo.zip holds .*ActorCriticPolicy.*not a LatentSAC model"),
    ("load truncated zip", lambda f: LatentSAC.load(f["truncated.zip"]), r"lat_truncated.zip is not a readable SB3 model zip"),
    ("load random zip", lambda f: LatentSAC.load(f["random.zip"]), r"random.zip is not a readable SB3 model zip"),
    ("load missing zip", lambda f: LatentSAC.load(f["missing"]), r"No saved model at .*missing.zip"),
    (
        "load generator file",
        lambda f: LatentSAC.load(f["gen.pt"]),
        r"gen.pt is not a readable SB3 model zip \(no .data. member",
    ),
    ("load batch_size=-5", lambda f: LatentSAC.load(f["lat.zip"], batch_size=-5), r"batch_size must be an integer >= 1"),
    ("load kl_weight=abc", lambda f: LatentSAC.load(f["lat.zip"], kl_weight="abc"), r"kl_weight must be a finite number"),
    ("load learning_rate=-1", lambda f: LatentSAC.load(f["lat.zip"], learning_rate=-1), r"learning_rate must be"),
    ("generator random", lambda f: ActionGenerator.load(f["random.pt"]), r"random.pt is not an action generator file"),
    ("generator truncated", lambda f: ActionGenerator.load(f["truncated.pt"]), r"gen_truncated.pt is not an action generator"),
    ("generator missing", lambda f: ActionGenerator.load(f["missing"]), r"No action generator file at .*missing.zip"),
    ("generator of a zip", lambda f: ActionGenerator.load(f["lat.zip"]), r"lat.zip is not an action generator file"),
    ("action_generator=random", lambda f: latent_sac(action_generator=f["random.pt"]), r"random.pt is not an action gen"),
    ("action_generator=truncated", lambda f: latent_sac(action_generator=f["truncated.pt"]), r"truncated.pt is not an act"),
    (
        "action_generator=truncated zip",
        lambda f: latent_sac(action_generator=f["truncated.zip"]),
        r"not a readable SB3 model zip",
    ),
    ("action_generator=SAC zip", lambda f: latent_sac(action_generator=f["sac.zip"]), r"SACPolicy, which has no action gen"),
    ("action_generator=PPO zip", lambda f: latent_sac(action_generator=f["ppo.zip"]), r"ActorCriticPolicy, which has no act"),
    ("action_generator=missing", lambda f: latent_sac(action_generator=f["missing"]), r"No action generator at .*missing"),
    ("buffer truncated pkl", lambda f: latent_sac().load_replay_buffer(f["truncated.pkl"]), r"not a readable replay buffer"),
    ("buffer random pkl", lambda f: latent_sac().load_replay_buffer(f["random.pkl"]), r"random.pkl is not a readable replay"),
    ("buffer of a zip", lambda f: latent_sac().load_replay_buffer(f["lat.zip"]), r"lat.zip is not a readable replay buffer"),
    ("buffer truncated npz", lambda f: load_replay_buffer(latent_sac(), f["truncated.npz"]), r"not a readable replay buffer"),
    ("buffer other env npz", lambda f: load_replay_buffer(latent_sac(), f["cheetah.npz"]), r"recorded on another env"),
    ("buffer missing", lambda f: load_replay_buffer(latent_sac(), f["missing"]), r"No replay buffer file at"),
    (
        "finetune unknown env",
        lambda f: finetune(f["sac.zip"], "Pendulum-v2", algo="sac"),
        r"target_env: gymnasium has no env Pendulum-v2\. Use a registered id: did you mean Pendulum-v1\?",
    ),
    (
        "vecnormalize random",
        lambda f: finetune(f["sac.zip"], "Pendulum-v1", algo="sac", vecnormalize=f["random.pkl"]),
        r"random.pkl is not readable VecNormalize statistics \(.*\)\. Move it aside, or .*: vecnormalize=False",
    ),
    (
        "vecnormalize of a buffer",
        lambda f: finetune(f["sac.zip"], "Pendulum-v1", algo="sac", vecnormalize=f["buffer.pkl"]),
        r"buffer.pkl holds a ReplayBuffer, not VecNormalize statistics",
    ),
    (
        "vecnormalize missing",
        lambda f: finetune(f["sac.zip"], "Pendulum-v1", algo="sac", vecnormalize=f["missing"]),
        r"No VecNormalize statistics at .*missing.zip",
    ),
    ("run with bad args.yml", lambda f: read_run(f["bad_args_run"]), r"args.yml is not a readable rl-zoo3 args.yml"),
    ("run without args.yml", lambda f: read_run(f["no_args_run"]), r"no_args_run is not an rl-zoo3 run folder"),
    ("run of a random file", lambda f: read_run(f["random.bin"]), r"random.bin is neither a saved model \(.zip\) nor a run"),
    ("run of a truncated zip", lambda f: read_run(f["truncated.zip"], "latent_sac"), r"not a readable SB3 model zip"),
    ("run of a PPO zip as sac", lambda f: read_run(f["ppo.zip"], "sac"), r"ActorCriticPolicy .*not a SAC model"),
]


@pytest.mark.parametrize("call, pattern", [case[1:] for case in FILE_CASES], ids=[case[0] for case in FILE_CASES])
def test_files(files: dict[str, Path], call: Callable[[dict[str, Path]], Any], pattern: str) -> None:
    with pytest.raises(UserInputError) as error:
        call(files)
    assert_one_line(str(error.value), pattern)


# ---------------------------------------------------------------- CLIs: (id, argv with {placeholders}, what the line says)


def run_main(main: Callable[[list[str]], Any], argv: list[str], capsys) -> tuple[int, str]:
    """Run a CLI's main in-process: its exit status and everything it printed, as the shell would see them."""
    try:
        status = main(argv) or 0
    except SystemExit as exit_:
        # sys.exit("error: ...") prints the message to stderr and exits with status 1.
        status = 1 if isinstance(exit_.code, str) else int(exit_.code or 0)
        message = exit_.code if isinstance(exit_.code, str) else ""
    else:
        message = ""
    captured = capsys.readouterr()
    return status, captured.out + captured.err + message


def assert_one_error_line(status: int, output: str, pattern: str) -> None:
    assert status != 0, output
    assert "Traceback" not in output, output
    error_lines = [line for line in output.splitlines() if "error:" in line]
    assert len(error_lines) == 1, output
    assert re.search(pattern, error_lines[0]), f"{pattern!r} not in: {error_lines[0]}"
    assert "weights_only" not in output


ZOO = ["--algo", "latent_sac", "--env", "Pendulum-v1", "-n", "50", "--eval-freq", "-1"]
ZOO_CASES = [
    ("kl_weight:abc", [*ZOO, "-params", "kl_weight:abc"], r"error: kl_weight must be a finite number >= 0 .*'abc'"),
    ("batch_size:-5", [*ZOO, "-params", "batch_size:-5"], r"error: batch_size must be an integer >= 1 .*got -5"),
    ("batch_size:abc", [*ZOO, "-params", "batch_size:abc"], r"error: batch_size must be an integer >= 1 .*got 'abc'"),
    ("learning_rate:-1", [*ZOO, "-params", "learning_rate:-1"], r"error: learning_rate must be a number >= 0"),
    ("lin_-1e-3", [*ZOO, "-params", "learning_rate:'lin_-1e-3'"], r"error: learning_rate .*a schedule that starts at -0.001"),
    ("unquoted string", [*ZOO, "-params", "learning_rate:lin_-1e-3"], r"error: .*'lin_-1e-3' is not a Python value .*quotes"),
    ("kl_weight empty", [*ZOO, "-params", "kl_weight:"], r"error: -params 'kl_weight:': no value after the colon"),
    (
        "unevaluable value",
        [*ZOO, "-params", "kl_weight:1e"],
        r"error: -params 'kl_weight:1e': '1e' is not a Python value \(SyntaxError\)",
    ),
    ("generator_mode:bogus", [*ZOO, "-params", "generator_mode:bogus"], r"error: generator_mode must be one of"),
    ("gamma:2", [*ZOO, "-params", "gamma:2"], r"error: gamma must be a number in \[0, 1\]"),
    ("latent_bound", [*ZOO, "-params", "policy_kwargs:dict(latent_bound=0)"], r"error: latent_bound must be a finite"),
    ("-i truncated zip", [*ZOO, "-i", "{truncated.zip}"], r"error: .*lat_truncated.zip is not a readable SB3 model zip"),
    ("-i SAC zip", [*ZOO, "-i", "{sac.zip}"], r"error: .*sac.zip holds a model with policy SACPolicy"),
    ("-i PPO zip", [*ZOO, "-i", "{ppo.zip}"], r"error: .*ppo.zip holds a model with policy ActorCriticPolicy"),
    ("-i random zip", [*ZOO, "-i", "{random.zip}"], r"error: .*random.zip is not a readable SB3 model zip"),
    ("-i with batch_size:0", [*ZOO, "-i", "{lat.zip}", "-params", "batch_size:0"], r"error: batch_size must be an integer"),
    ("action_generator random", [*ZOO, "-params", "action_generator:'{random.pt}'"], r"random.pt is not an action generator"),
    # rl-zoo3's own refusals (an assertion and a ValueError in its train()), as one line with the flag.
    ("-i missing", [*ZOO, "-i", "{missing}"], r"error: -i/--trained-agent must name a saved model's .zip file that exists"),
    ("-i not a zip", [*ZOO, "-i", "{random.bin}"], r"error: -i/--trained-agent must name .*; leave out -i to train from"),
    (
        "unknown env",
        ["--algo", "sac", "--env", "HalfCheetahBackwards-v4", "-n", "10"],
        r"error: --env HalfCheetahBackwards-v4 not found in gym registry, you maybe meant HalfCheetahBackward-v4\?$",
    ),
]
RELABEL = ["--algo", "sac", "--env", "HalfCheetahTask-v4", "--env-kwargs", "target_speed:1.0", "-n", "10", "--eval-freq", "-1"]


def fill(argv: list[str], paths: dict[str, Any]) -> list[str]:
    return [re.sub(r"\{([^}]+)\}", lambda match: str(paths[match.group(1)]), argument) for argument in argv]


@pytest.mark.parametrize("argv, pattern", [case[1:] for case in ZOO_CASES], ids=[case[0] for case in ZOO_CASES])
def test_zoo(files, tmp_path, monkeypatch, capsys, argv: list[str], pattern: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # rl-zoo3 reads sys.argv, which main sets
    status, output = run_main(train_main, [*fill(argv, files), "-f", str(tmp_path)], capsys)
    assert_one_error_line(status, output, pattern)


def test_zoo_relabelling_refusal_names_the_file_to_move(cheetah_run, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    argv = [*RELABEL, "-i", str(cheetah_run / "HalfCheetah-v4.zip"), "-f", str(tmp_path), "-params", "buffer_size:100"]
    status, output = run_main(train_main, argv, capsys)
    assert_one_error_line(status, output, rf"error: .*Start .* empty replay buffer instead: move {cheetah_run}/replay_buffer")
    assert "keep_buffer" not in output
    assert output.count("empty replay buffer") == 1  # the fix is said once


# Through rl-zoo3's own entry point and the start-up hook, in a fresh interpreter: the examples of the issue.
HOOK_CASES = [
    ("kl_weight:abc", "-params kl_weight:abc", r"error: kl_weight must be a finite number >= 0"),
    ("generator_mode:bogus", "-params generator_mode:bogus", r"error: generator_mode must be one of"),
    ("-i truncated zip", "-i {truncated.zip}", r"error: .*is not a readable SB3 model zip"),
    ("-i missing", "-i {missing}", r"error: -i/--trained-agent must name a saved model's .zip file that exists"),
]


@pytest.mark.parametrize("extra, pattern", [case[1:] for case in HOOK_CASES], ids=[case[0] for case in HOOK_CASES])
def test_zoo_through_the_hook(files, tmp_path, extra: str, pattern: str) -> None:
    command = f"-m rl_zoo3.train {' '.join(ZOO)} -f . {fill([extra], files)[0]}"
    result = run_python(command, tmp_path, check=False)
    assert result.returncode == 1
    assert_one_error_line(result.returncode, result.stdout + result.stderr, pattern)


TRANSFER = "--env HalfCheetahBackward-v4 -n 10"
MULTITASK = "multitask --tasks HalfCheetah-v4 --target HalfCheetahBackward-v4 -n 10"
RELABEL_TARGET = "--env HalfCheetahTask-v4 --env-kwargs target_speed:1.0 -n 10"
TRANSFER_CASES = [
    ("missing source", f"--source {{missing}} {TRANSFER}", r"error: No saved model or run folder at .*missing.zip"),
    ("random source", f"--source {{random.bin}} {TRANSFER}", r"error: .*random.bin is neither a saved model"),
    ("truncated source", f"--source {{truncated.zip}} --algo sac {TRANSFER}", r"error: .*not a readable SB3 model zip"),
    ("PPO source", f"--source {{ppo.zip}} --algo ppo {TRANSFER}", r"error: .*is a PPO model; naive transfer"),
    ("SAC as latent_sac", f"--source {{sac.zip}} --algo latent_sac {TRANSFER}", r"error: .*not a LatentSAC model"),
    ("zip without algo", f"--source {{sac.zip}} {TRANSFER}", r"error: Cannot tell which algorithm .*: --algo sac\.$"),
    ("bad args.yml", f"--source {{bad_args_run}} {TRANSFER}", r"error: .*args.yml is not a readable rl-zoo3 args.yml"),
    ("no args.yml", f"--source {{no_args_run}} {TRANSFER}", r"error: .*no_args_run is not an rl-zoo3 run folder"),
    ("-n abc", "--source {sac.zip} --env Pendulum-v1 -n abc", r"error: argument -n/--n-timesteps"),
    ("--warmup bogus", f"--source {{sac.zip}} {TRANSFER} --warmup bogus", r"error: argument --warmup: invalid"),
    ("empty -params", f"--source {{sac.zip}} {TRANSFER} -params batch_size:", r"error: -params 'batch_size:': no value"),
    (
        "relabel impossible",
        f"--source {{run}} {RELABEL_TARGET} --keep-buffer",
        r"error: .*impossible: .* Start the target task with an empty replay buffer instead: leave out --keep-buffer\.$",
    ),
    (
        "source outside the family",
        "--source {sac.zip} --algo sac --source-env Pendulum-v1 --env Pendulum-v1 -n 1 --keep-buffer",
        r"error: .*Pendulum-v1 is not a HalfCheetah task.*: leave out --keep-buffer\.$",
    ),
    (
        "unknown source task",
        f"--source {{sac.zip}} --algo sac {TRANSFER} --keep-buffer --replay-buffer {{buffer.pkl}}",
        r"error: .*Name it with --source-env HalfCheetah-v4 \(and --source-env-kwargs\).*leave out --keep-buffer\.$",
    ),
    (
        "buffer without --keep-buffer",
        f"--source {{sac.zip}} --algo sac {TRANSFER} --replay-buffer {{buffer.pkl}}",
        r"error: --replay-buffer is the buffer to keep: pass --keep-buffer too",
    ),
    (
        "truncated buffer",
        f"--source {{run}} {TRANSFER} --keep-buffer --replay-buffer {{truncated.pkl}}",
        r"error: .*buffer_truncated.pkl is not a readable replay buffer",
    ),
    (
        "truncated vecnormalize",
        "--source {bad_vecnormalize_run} --env Pendulum-v1 -n 10",
        r"error: .*vecnormalize.pkl is not readable VecNormalize statistics .*--no-vecnormalize in the CLI\)\.$",
    ),
    ("multitask kl_weight:abc", f"{MULTITASK} -params kl_weight:abc", r"error: kl_weight must be a finite number >= 0"),
    ("multitask batch_size:-5", f"{MULTITASK} -params batch_size:-5", r"error: batch_size must be an integer >= 1"),
    ("multitask --mode", f"{MULTITASK} --mode bogus", r"error: argument --mode: invalid choice"),
]


@pytest.mark.parametrize("argv, pattern", [case[1:] for case in TRANSFER_CASES], ids=[case[0] for case in TRANSFER_CASES])
def test_transfer_cli(files, cheetah_run, tmp_path, capsys, argv: str, pattern: str) -> None:
    argv = fill(argv.split(), {**files, "run": cheetah_run})
    status, output = run_main(transfer_main, [*argv, "-f", str(tmp_path)], capsys)
    assert_one_error_line(status, output, pattern)
    assert not re.search(r"\b(keep_buffer|source_env|replay_buffer)=", output)  # Python keywords this CLI does not have


# Refused before rl-zoo3 or our CLIs make a run folder: a misspelt argument name (a constructor would fail only after
# the env is built, and SB3's load(**kwargs) would set it as an attribute without a word), and multitask's bad values
# (the target's too, which would otherwise be found only after the base tasks trained).
NO_FOLDER_CASES = [
    (
        "zoo latent_sac",
        train_main,
        [*ZOO, "-params", "kl_wieght:0.5"],
        r"error: LatentSAC takes no argument 'kl_wieght' \(did you mean kl_weight\?\)\. Correct or remove it in -params, "
        r"or in the entry for Pendulum-v1 in .*latent_sac\.yml\.$",
    ),
    (
        "zoo sac",
        train_main,
        ["--algo", "sac", "--env", "Pendulum-v1", "-n", "50", "-params", "learning_rat:0.001"],
        r"error: SAC takes no argument 'learning_rat' \(did you mean learning_rate\?\)",
    ),
    ("zoo -i", train_main, [*ZOO, "-i", "{lat.zip}", "-params", "kl_wieght:0.5"], r"error: LatentSAC takes no argument 'kl_"),
    (
        "naive transfer",
        transfer_main,
        ["--source", "{sac.zip}", "--algo", "sac", *TRANSFER.split(), "-params", "learning_rat:0.001"],
        r"error: SAC takes no argument 'learning_rat' \(did you mean learning_rate\?\)\. Correct or remove that override",
    ),
    (
        "multitask -params",
        transfer_main,
        [*MULTITASK.split(), "-params", "kl_wieght:0.5"],
        r"error: LatentSAC takes no argument 'kl_wieght' \(did you mean kl_weight\?\)\. Correct or remove it in -params\.$",
    ),
    (
        "multitask --target-params",
        transfer_main,
        [*MULTITASK.split(), "--target-params", "bogus:1"],
        r"error: LatentSAC takes no argument 'bogus'\. Correct or remove it in --target-params\.$",
    ),
    (
        "multitask unknown task",
        transfer_main,
        ["multitask", "--tasks", "HalfCheetah-v4", "HalfCheetahBackwards-v4", "--target", "HalfCheetahTask-v4", "-n", "10"],
        r"error: --tasks: gymnasium has no env HalfCheetahBackwards-v4\. Use a registered id: did you mean HalfCheetahBack",
    ),
    (
        "multitask unknown target",
        transfer_main,
        ["multitask", "--tasks", "HalfCheetah-v4", "--target", "NoSuchEnv-v0", "-n", "10"],
        r"error: --target: gymnasium has no env NoSuchEnv-v0\.",
    ),
    (
        "naive unknown env",
        transfer_main,
        ["--source", "{sac.zip}", "--algo", "sac", "--env", "Pendulum-v2", "-n", "10"],
        r"error: --env: gymnasium has no env Pendulum-v2\. Use a registered id: did you mean Pendulum-v1\?$",
    ),
    ("multitask kl_weight", transfer_main, [*MULTITASK.split(), "-params", "kl_weight:abc"], r"error: kl_weight must be"),
    (
        "multitask target kl_weight",
        transfer_main,
        [*MULTITASK.split(), "--target-params", "kl_weight:-1"],
        r"error: kl_weight must be a finite number >= 0",
    ),
    (
        "multitask target generator_mode",
        transfer_main,
        [*MULTITASK.split(), "--target-params", "generator_mode:frozen"],
        r"error: latent_transfer sets generator_mode itself",
    ),
]


@pytest.mark.parametrize(
    "main, argv, pattern", [case[1:] for case in NO_FOLDER_CASES], ids=[case[0] for case in NO_FOLDER_CASES]
)
def test_refused_before_any_run_folder(
    files, tmp_path, monkeypatch, capsys, main: Callable[[list[str]], Any], argv: list[str], pattern: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # rl-zoo3 reads sys.argv, which main sets
    status, output = run_main(main, [*fill(argv, files), "-f", str(tmp_path / "logs")], capsys)
    assert_one_error_line(status, output, pattern)
    assert not (tmp_path / "logs").exists()


EXPERIMENT_CASES = [
    ("unknown experiment", ["transfer"], r"error: argument name: invalid choice: 'transfer'"),
    ("unknown budget", ["prior", "--budget", "huge"], r"error: argument --budget: invalid choice: 'huge'"),
    ("seeds 0", ["prior", "--seeds", "0"], r"error: argument --seeds: expected a positive integer, got 0"),
    ("timesteps -1", ["prior", "--timesteps", "-1"], r"error: argument --timesteps: expected a positive integer, got -1"),
    ("workers abc", ["prior", "--workers", "abc"], r"error: argument --workers: expected a positive integer, got 'abc'"),
    ("threshold abc", ["prior", "--threshold", "abc"], r"error: argument --threshold: invalid float value: 'abc'"),
    ("unknown condition", ["prior", "--conditions", "nosuch"], r"error: prior has no condition 'nosuch'; choose from"),
    ("address without ray", ["prior", "--address", "auto"], r"error: --address is for --backend ray"),
    ("unknown backend", ["prior", "--backend", "slurm"], r"error: argument --backend: invalid choice: 'slurm'"),
    ("folder is a file", ["prior", "--plot-only", "-f", "{random.bin}"], r"error: -f .*random.bin is a file; name a folder"),
    (
        "folder under a file",
        ["prior", "--plot-only", "-f", "{random.bin}/runs"],
        r"error: -f .*random.bin/runs: cannot make this folder \(Not a directory\); name a folder you can write to",
    ),
]


@pytest.mark.parametrize("argv, pattern", [case[1:] for case in EXPERIMENT_CASES], ids=[case[0] for case in EXPERIMENT_CASES])
def test_experiments_cli(files, tmp_path, monkeypatch, capsys, argv: list[str], pattern: str) -> None:
    monkeypatch.chdir(tmp_path)
    status, output = run_main(experiments_main, fill(argv, files), capsys)
    assert_one_error_line(status, output, pattern)


# ---------------------------------------------------------------- NaN and inf from the env


class Corrupt(gym.ObservationWrapper):
    """Observations from step ``at`` on hold ``value``."""

    def __init__(self, env: gym.Env, at: int, value: float):
        super().__init__(env)
        self.at, self.value, self.steps = at, value, 0

    def observation(self, observation: np.ndarray) -> np.ndarray:
        self.steps += 1
        return np.full_like(observation, self.value) if self.steps > self.at else observation


@pytest.mark.parametrize("at, value", [(0, math.nan), (40, math.inf), (40, math.nan)], ids=["first", "inf", "nan"])
def test_nan_observation_stops_training_before_a_callback_saves(tmp_path, at: int, value: float) -> None:
    from stable_baselines3.common.callbacks import CheckpointCallback

    model = LatentSAC("MlpPolicy", Corrupt(gym.make("Pendulum-v1"), at, value), **{**TINY, "learning_starts": 20})
    checkpoints = CheckpointCallback(10, str(tmp_path), name_prefix="model")
    with pytest.raises(ValueError) as error:
        model.learn(100, callback=checkpoints)
    message = str(error.value)
    kind = "first observation" if at == 0 else "observation"
    assert_one_line(message, rf"the env's {kind} holds {value} at index \(0, 0\) \(num_timesteps={at}\)\. Training stopped")
    assert "VecCheckNan" in message
    # Every checkpoint written before the stop is a model that never saw the value.
    for path in tmp_path.glob("*.zip"):
        assert all(np.isfinite(p.detach().numpy()).all() for p in LatentSAC.load(path).policy.parameters())
