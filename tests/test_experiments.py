"""python -m sb3_latent.experiments: runs through the zoo, skips finished runs, resumes, transfers, reports."""

import csv
import dataclasses
import inspect
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer

from sb3_latent.errors import UserInputError
from sb3_latent.experiments import BUDGETS, EXPERIMENTS, Condition, Experiment, Panel, Source
from sb3_latent.experiments.backends import InlineBackend, execute
from sb3_latent.experiments.plan import plan_runs
from sb3_latent.experiments.report import Curves, markdown_table, summarize
from sb3_latent.experiments.runner import run_one
from sb3_latent.experiments.runs import read_evaluations
from sb3_latent.experiments.transfers import TRANSFERS
from sb3_latent.zoo_runs import restore_replay_buffer, save_replay_buffer

SMOKE_STEPS = [0, 200, 400]  # the smoke budget evaluates at step 0 and every 200 steps, for 400 steps


def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sb3_latent.experiments", *args, "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )


def check_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def evaluated_steps(run: Path) -> list[int]:
    return [int(row["steps"]) for row in read_evaluations(run / "evaluations.csv")]


def run_folder(out: Path, condition: str, seed: int = 0) -> Path:
    """The one folder of ``condition``'s run of ``seed`` (``runs/<condition>/<fingerprint>/seed<k>``)."""
    (folder,) = (out / "runs" / condition).glob(f"*/seed{seed}")
    return folder


def summary_rows(out: Path) -> dict[str, dict[str, str]]:
    return {row["condition"]: row for row in csv.DictReader((out / "summary.csv").read_text().splitlines())}


def checkpoint_state(run: Path) -> dict:
    return json.loads((run / "checkpoint" / "state.json").read_text())


# ----------------------------------------------------------------------------------------------------------------------
# Command line


@pytest.mark.parametrize(
    "args, message",
    [
        (["figure-9"], "invalid choice: 'figure-9'"),
        (["baselines", "--budget", "huge"], "invalid choice: 'huge'"),
        (["baselines", "--seeds", "0"], "expected a positive integer, got 0"),
        (["baselines", "--seeds", "-1"], "expected a positive integer, got -1"),
        (["baselines", "--conditions", "a2c"], "baselines has no condition 'a2c'"),
    ],
)
def test_bad_input_is_a_short_error(args, message, zoo_env, tmp_path):
    result = cli(args, zoo_env, tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


# ----------------------------------------------------------------------------------------------------------------------
# Whole experiments through the command line (local process pool)


def test_naive_transfer_smoke_then_skip(zoo_env, tmp_path):
    args = ["naive-transfer", "--budget", "smoke", "--seeds", "2", "-f", str(tmp_path)]
    check_ok(cli(args, zoo_env, tmp_path))
    out = tmp_path / "naive-transfer"
    envs = {"scratch": "HalfCheetahBackward-v4", "pretrain-forward": "HalfCheetah-v4", "finetuned": "HalfCheetahBackward-v4"}
    for condition, env_id in envs.items():
        for seed in (0, 1):
            run = run_folder(out, condition, seed)
            assert evaluated_steps(run) == SMOKE_STEPS, run
            save_path = run / "sac" / f"{env_id}_1"  # rl-zoo3's layout, with a stable run id
            assert (save_path / f"{env_id}.zip").is_file()
            assert (save_path / env_id / "config.yml").is_file()
            assert json.loads((run / "status.json").read_text())["num_timesteps"] == 400
    # The source keeps its replay buffer for the transfer; the transfer run records where it started from.
    assert (run_folder(out, "pretrain-forward") / "sac/HalfCheetah-v4_1/replay_buffer.npz").is_file()
    record = json.loads((run_folder(out, "finetuned", 1) / "run.json").read_text())
    assert record["settings"]["source"][:2] == ["pretrain-forward", "finetune"]
    assert record["settings"]["source_fingerprint"] == run_folder(out, "pretrain-forward", 1).parent.name
    assert (out / "naive-transfer.png").stat().st_size > 10_000
    summary = (out / "summary.csv").read_text().splitlines()
    assert len(summary) == 4 and all(",2,400," in line for line in summary[1:])
    assert len((out / "evaluations.csv").read_text().splitlines()) == 1 + 3 * 2 * len(SMOKE_STEPS)
    assert "| SAC pretrained forward, fine-tuned |" in (out / "summary.md").read_text()

    before = (run_folder(out, "finetuned") / "evaluations.csv").read_text()
    second = cli(args, zoo_env, tmp_path)
    check_ok(second)
    assert "runs: 0 trained, 6 already finished, 0 failed" in second.stdout
    assert (run_folder(out, "finetuned") / "evaluations.csv").read_text() == before

    # Another budget is other settings: its runs get folders of their own, the smoke runs are neither reused nor
    # overwritten, and the report shows the quick runs only.
    quick = cli(
        ["naive-transfer", "--budget", "quick", "--conditions", "scratch", "--timesteps", "10", "-f", str(tmp_path)],
        zoo_env,
        tmp_path,
    )
    check_ok(quick)
    assert "runs: 3 trained, 0 already finished, 0 failed" in quick.stdout  # quick's 3 seeds: none of smoke's
    assert len(list((out / "runs/scratch").glob("*/seed0"))) == 2
    assert (run_folder(out, "finetuned") / "evaluations.csv").read_text() == before
    summary = (out / "summary.md").read_text()
    assert "Budget `quick`" in summary and summary.count("no evaluations yet") == 2
    rows = summary_rows(out)
    assert rows["scratch"]["steps"] == "0" and rows["finetuned"]["status"] == "no evaluations yet"


def test_latent_ablation_smoke(zoo_env, tmp_path):
    from sb3_latent import LatentSAC

    check_ok(cli(["latent-ablation", "--budget", "smoke", "--seeds", "1", "-f", str(tmp_path)], zoo_env, tmp_path))
    out = tmp_path / "latent-ablation"
    experiment = EXPERIMENTS["latent-ablation"]
    # SAC, the five rungs, three leave-one-out rows, two candidates; SAC and a candidate on the base task
    assert len(experiment.conditions) == 1 + 5 + 3 + 2 + 2
    for condition in experiment.conditions:
        assert evaluated_steps(run_folder(out, condition.name)) == SMOKE_STEPS, condition.name

    def zip_path(condition: str, task: str = "HalfCheetahBackward-v4") -> Path:
        return run_folder(out, condition) / f"latent_sac/{task}_1/{task}.zip"

    # The first rung is the SAC-equivalent configuration; the last is today's default.
    sac_like = LatentSAC.load(zip_path("rung0-sac-equivalent"))
    assert sac_like.generator_mode == "fixed" and sac_like.action_generator.decoder == "identity"
    assert sac_like.policy.latent_bound == 1.0 and not sac_like.policy.decoder_noise
    assert sac_like.target_entropy == -6.0
    default = LatentSAC.load(zip_path("rung4-elbo"))
    assert default.generator_mode == "train" and default.action_generator.decoder == "residual"
    assert default.policy.latent_bound == 2.0 and default.policy.decoder_noise and default.target_entropy == -6.0
    candidate = LatentSAC.load(zip_path("candidate"))
    assert candidate.action_generator.decoder == "sac-residual" and candidate.policy.latent_bound == 1.0
    assert candidate.generator_mode == "train" and candidate.policy.decoder_noise
    forward = LatentSAC.load(zip_path("candidate-forward", "HalfCheetah-v4"))
    assert forward.action_generator.decoder == "sac-residual"  # trained on the base task: its run folder says so
    without_entropy = LatentSAC.load(zip_path("without-entropy"))
    assert without_entropy.target_entropy == pytest.approx(-6.0 * (1 - np.log(2.0)))
    assert (out / "latent-ablation.png").is_file() and "| LatentSAC as SAC |" in (out / "summary.md").read_text()


def test_baselines_smoke_extends_finished_runs(zoo_env, tmp_path):
    """Cheap baselines for 200 steps, then 400: the second call resumes each run from its last checkpoint."""
    args = ["baselines", "--budget", "smoke", "--seeds", "1", "--conditions", "sac", "ppo", "-f", str(tmp_path)]
    check_ok(cli([*args, "--timesteps", "200"], zoo_env, tmp_path))
    sac, ppo = run_folder(tmp_path / "baselines", "sac"), run_folder(tmp_path / "baselines", "ppo")
    assert checkpoint_state(sac)["num_timesteps"] == 200 and checkpoint_state(sac)["replay_buffer_size"] == 200
    ppo_steps = checkpoint_state(ppo)["num_timesteps"]  # PPO stops at a multiple of n_steps (64 in smoke)
    with open(ppo / "checkpoint/HalfCheetah-v4/vecnormalize.pkl", "rb") as file:
        count_before = pickle.load(file).obs_rms.count

    result = cli([*args, "--timesteps", "400"], zoo_env, tmp_path)
    check_ok(result)
    assert "runs: 2 trained" in result.stdout
    assert f"resume at 200 steps, target 400, seed {0 + 200}" in (sac / "train.log").read_text()
    assert f"resume at {ppo_steps} steps" in (ppo / "train.log").read_text()
    # num_timesteps continued, the replay buffer came back (400 rows, not 200), the evaluations did not restart.
    assert checkpoint_state(sac)["num_timesteps"] == 400 and checkpoint_state(sac)["replay_buffer_size"] == 400
    assert evaluated_steps(sac) == SMOKE_STEPS and evaluated_steps(ppo) == SMOKE_STEPS
    # rl-zoo3's evaluations.npz beside the CSV holds the same evaluations, none twice.
    assert np.load(sac / "sac/HalfCheetah-v4_1/evaluations.npz")["timesteps"].tolist() == SMOKE_STEPS
    with open(ppo / "checkpoint/HalfCheetah-v4/vecnormalize.pkl", "rb") as file:
        assert pickle.load(file).obs_rms.count > count_before + 100  # statistics continued, not restarted
    assert (tmp_path / "baselines/baselines.png").is_file()

    third = cli([*args, "--timesteps", "400"], zoo_env, tmp_path)
    check_ok(third)
    assert "runs: 0 trained, 2 already finished" in third.stdout

    # While another command trains the SAC run (it holds the run's lock), this one is refused: no summary, no figure.
    fcntl = pytest.importorskip("fcntl")
    report = {path: path.read_bytes() for path in (tmp_path / "baselines").glob("*.*")}
    with open(sac / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        sac_only = ["baselines", "--budget", "smoke", "--seeds", "1", "--conditions", "sac", "-f", str(tmp_path)]
        refused = cli([*sac_only, "--timesteps", "600"], zoo_env, tmp_path)
    assert refused.returncode == 1 and "refused   sac/seed0: another process is training" in refused.stderr
    assert "summary and figure" in refused.stderr and "Traceback" not in refused.stderr
    assert {path: path.read_bytes() for path in (tmp_path / "baselines").glob("*.*")} == report


# ----------------------------------------------------------------------------------------------------------------------
# In-process checks (InlineBackend: the run trains in the test process, so it can be patched)


def test_interrupted_run_resumes_with_its_replay_buffer(tmp_path, monkeypatch):
    import sb3_latent.experiments.callbacks as callbacks

    experiment = EXPERIMENTS["baselines"]
    (spec,) = plan_runs(experiment, BUDGETS["smoke"], 1, tmp_path, [experiment.condition("sac")])
    run = spec.path
    real_save = callbacks.save_checkpoint

    def save_then_interrupt(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # Ctrl-C right after the first checkpoint (step 200 of 400)

    monkeypatch.setattr(callbacks, "save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_one(spec)
    monkeypatch.undo()
    assert checkpoint_state(run)["num_timesteps"] == 200
    assert evaluated_steps(run) == [0, 200]
    assert not (run / "status.json").exists()
    interrupted_buffer = dict(np.load(run / "checkpoint/replay_buffer.npz"))

    result = run_one(spec)
    assert result.status == "done" and result.num_timesteps == 400, result
    assert "resume at 200 steps" in (run / "train.log").read_text()
    assert evaluated_steps(run) == SMOKE_STEPS
    final_buffer = np.load(run / "checkpoint/replay_buffer.npz")
    assert final_buffer["observations"].shape[0] == 400
    for name, rows in interrupted_buffer.items():
        np.testing.assert_array_equal(final_buffer[name][:200], rows)  # the first 200 transitions were restored
    from stable_baselines3 import SAC

    assert SAC.load(spec.save_path / "HalfCheetah-v4.zip").num_timesteps == 400

    # Other settings get another folder, instead of silently mixing two configurations; a spec made by hand that
    # points at this folder with other settings is refused.
    budget = dataclasses.replace(BUDGETS["smoke"], off_policy={**BUDGETS["smoke"].off_policy, "batch_size": 64})
    (other,) = plan_runs(experiment, budget, 1, tmp_path, [experiment.condition("sac")], n_timesteps=600)
    assert other.path != run and other.path.parent.parent == run.parent.parent
    assert other.settings["model"]["batch_size"] == 64 and spec.settings["model"]["batch_size"] == 32
    refused = run_one(dataclasses.replace(other, run_dir=spec.run_dir))
    assert refused.status == "refused" and "other settings" in refused.message
    assert "differs in: hyperparams.batch_size, model.batch_size" in refused.message
    assert json.loads((run / "status.json").read_text())["num_timesteps"] == 400  # the finished run is untouched


def interrupt_at_checkpoint(monkeypatch, spec, nth: int) -> None:
    """Run ``spec`` and Ctrl-C it right after its ``nth`` checkpoint."""
    import sb3_latent.experiments.callbacks as callbacks

    real_save, saved = callbacks.save_checkpoint, []

    def save_then_interrupt(*args, **kwargs):
        real_save(*args, **kwargs)
        saved.append(args)
        if len(saved) == nth:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(callbacks, "save_checkpoint", save_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            run_one(spec)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_truncated_checkpoint_falls_back_to_the_other_or_to_step_0(zoo_env, tmp_path, monkeypatch):
    """Interrupted after its second checkpoint, each seed gets one file of its newest checkpoint truncated (the last
    seed: in both checkpoints); the same command then finishes every run and prints where each one resumed."""
    experiment = EXPERIMENTS["baselines"]
    files = ["HalfCheetah-v4.zip", "replay_buffer.npz", "state.json"]
    seeds = len(files) + 1
    specs = plan_runs(experiment, BUDGETS["smoke"], seeds, tmp_path, [experiment.condition("sac")])
    for spec in specs:
        interrupt_at_checkpoint(monkeypatch, spec, 2)  # checkpoints at 200 and 400 steps, not marked finished
        assert checkpoint_state(spec.path)["num_timesteps"] == 400
        assert json.loads((spec.path / "checkpoint.previous/state.json").read_text())["num_timesteps"] == 200
    assert sorted(path.name for path in (specs[0].path / "checkpoint").iterdir()) == ["HalfCheetah-v4", *files]
    for spec, name in zip(specs, files, strict=False):
        truncate(spec.path / "checkpoint" / name)
    for folder in ("checkpoint", "checkpoint.previous"):
        truncate(specs[-1].path / folder / "replay_buffer.npz")
    (specs[0].path / "error.txt").write_text("a failure of an earlier try")

    result = cli(
        ["baselines", "--budget", "smoke", "--seeds", str(seeds), "--conditions", "sac", "-f", str(tmp_path)],
        zoo_env,
        tmp_path,
    )
    check_ok(result)
    assert f"runs: {seeds} trained, 0 already finished, 0 failed" in result.stdout
    for spec, name in zip(specs, files, strict=False):
        assert f"warning   {spec.key}: {spec.path}: deleted the checkpoint checkpoint/: " in result.stdout
        warning = next(line for line in result.stdout.splitlines() if line.startswith(f"warning   {spec.key}:"))
        assert name in warning and warning.endswith("resuming from step 200."), warning
        assert "resume at 200 steps" in (spec.path / "train.log").read_text()
    last = specs[-1]
    warning = next(line for line in result.stdout.splitlines() if line.startswith(f"warning   {last.key}:"))
    assert "checkpoint/: replay_buffer.npz" in warning and "checkpoint.previous/: replay_buffer.npz" in warning
    assert warning.endswith("training again from step 0.")
    assert "scratch at 0 steps" in (last.path / "train.log").read_text()
    for spec in specs:
        assert evaluated_steps(spec.path) == SMOKE_STEPS
        assert json.loads((spec.path / "status.json").read_text())["num_timesteps"] == 400
        assert checkpoint_state(spec.path)["num_timesteps"] == 400
    assert not (specs[0].path / "error.txt").exists()  # the run succeeded: the earlier failure no longer applies


def fake_checkpoint(folder: Path, steps: int, whole: bool = True) -> None:
    """A checkpoint folder of ``steps`` steps, as save_checkpoint writes it (without its state.json: interrupted)."""
    from sb3_latent.experiments.checkpoints import _sha256

    folder.mkdir(parents=True)
    (folder / "model.zip").write_bytes(bytes(range(256)) * steps)
    if whole:
        state = {"num_timesteps": steps, "files": {"model.zip": _sha256(folder / "model.zip")}}
        (folder / "state.json").write_text(json.dumps(state))


@pytest.mark.parametrize(
    "folders, expected, warned",
    [
        # Interrupted after the new one was written, before the rotation: it becomes checkpoint/.
        ({"checkpoint.tmp": 3, "checkpoint": 2, "checkpoint.previous": 1}, (3, 2), False),
        ({"checkpoint.tmp": 3, "checkpoint.previous": 2}, (3, 2), False),
        # Interrupted while the new one was written: it is dropped, silently.
        ({"checkpoint.tmp": None, "checkpoint": 2, "checkpoint.previous": 1}, (2, 1), False),
        ({"checkpoint.previous": 1}, (1, None), False),
        ({"checkpoint": "corrupt", "checkpoint.previous": 1}, (1, None), True),
        ({"checkpoint": "corrupt", "checkpoint.previous": "corrupt"}, (None, None), True),
        ({}, (None, None), False),
    ],
)
def test_settle_checkpoints_keeps_the_two_newest_whole_ones(folders, expected, warned, tmp_path, recwarn):
    from sb3_latent.experiments.checkpoints import settle_checkpoints
    from sb3_latent.experiments.runs import RunWarning

    for name, steps in folders.items():
        fake_checkpoint(tmp_path / name, 5 if steps in (None, "corrupt") else steps, whole=steps is not None)
        if steps == "corrupt":
            truncate(tmp_path / name / "model.zip")
    state = settle_checkpoints(tmp_path)
    found = tuple(
        json.loads((tmp_path / name / "state.json").read_text())["num_timesteps"] if (tmp_path / name).is_dir() else None
        for name in ("checkpoint", "checkpoint.previous")
    )
    assert found == expected and (state or {}).get("num_timesteps") == expected[0]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        name for name, steps in zip(("checkpoint", "checkpoint.previous"), expected, strict=True) if steps is not None
    ]
    messages = [str(warning.message) for warning in recwarn if issubclass(warning.category, RunWarning)]
    assert len(messages) == int(warned)
    if warned:
        assert "model.zip is truncated or corrupt" in messages[0]
        assert messages[0].endswith("resuming from step 1." if expected[0] else "training again from step 0.")


def test_fingerprint_sees_a_changed_default_and_not_an_output_option(tmp_path, monkeypatch):
    from stable_baselines3 import SAC

    experiment, smoke = EXPERIMENTS["baselines"], BUDGETS["smoke"]
    conditions = [experiment.condition("sac")]
    (spec,) = plan_runs(experiment, smoke, 1, tmp_path, conditions)
    # Output-only options, the budget's name and --timesteps (which extends a run) keep the run's folder.
    output_only = dataclasses.replace(smoke, name="smoke-again", checkpoint_freq=100, description="other words")
    (same,) = plan_runs(experiment, output_only, 1, tmp_path, conditions, n_timesteps=800)
    assert same.path == spec.path and same.settings == spec.settings

    # A changed default of the algorithm's own Python code, set neither by the YAML nor by the experiment.
    names = [p.name for p in inspect.signature(SAC.__init__).parameters.values() if p.default is not p.empty]
    defaults = list(SAC.__init__.__defaults__)
    assert defaults[names.index("tau")] == 0.005
    defaults[names.index("tau")] = 0.01
    monkeypatch.setattr(SAC.__init__, "__defaults__", tuple(defaults))
    (changed,) = plan_runs(experiment, smoke, 1, tmp_path, conditions)
    assert changed.fingerprint != spec.fingerprint and changed.path != spec.path
    assert changed.settings["model"]["tau"] == 0.01 and changed.settings["hyperparams"] == spec.settings["hyperparams"]
    monkeypatch.undo()

    # A change that shows in no value: the settings revision.
    import sb3_latent.experiments.runs as runs

    monkeypatch.setattr(runs, "SETTINGS_REVISION", runs.SETTINGS_REVISION + 1)
    (revised,) = plan_runs(experiment, smoke, 1, tmp_path, conditions)
    assert revised.settings == spec.settings and revised.path != spec.path


def test_report_reads_runs_of_the_earlier_layout(tmp_path, capsys):
    """runs/<condition>/seed<k> (no fingerprint) is still drawn, for the budget it was trained under."""
    from sb3_latent.experiments.__main__ import main

    legacy = tmp_path / "baselines/runs/sac/seed0"
    legacy.mkdir(parents=True)
    (legacy / "run.json").write_text(json.dumps({"condition": "sac", "seed": 0, "budget": "smoke", "settings": {}}))
    rows = ["steps,eval_return_mean,eval_return_std,eval_length_mean,wall_time_s,time"]
    rows += [f"{step},{step / 10},1.0,100.0,1.0,2025-01-01T00:00:00" for step in SMOKE_STEPS]
    (legacy / "evaluations.csv").write_text("\n".join(rows) + "\n")
    args = ["baselines", "--budget", "smoke", "--seeds", "1", "--plot-only", "-f", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    summary = summary_rows(tmp_path / "baselines")
    assert summary["sac"]["steps"] == "400" and float(summary["sac"]["final_return"]) == 40.0
    assert summary["td3"]["status"] == "no evaluations yet"
    assert main([*args[:2], "quick", *args[3:]]) == 0  # trained under another budget: not these settings' run
    summary = summary_rows(tmp_path / "baselines")
    assert summary["sac"]["status"] == "no evaluations yet"


def test_overrides_are_resolved_into_the_saved_config(tmp_path):
    """TargetEntropyScale and MergeDict end up as plain values in rl-zoo3's config.yml."""
    experiment = EXPERIMENTS["target-entropy"]
    specs = plan_runs(experiment, BUDGETS["smoke"], 1, tmp_path, [experiment.condition("sac-x2")], n_timesteps=200)
    results = execute(specs, InlineBackend, show_progress=False, log=lambda line: None)
    assert results["sac-x2/seed0"].status == "done", results
    config_path = specs[0].save_path / "HalfCheetah-v4" / "config.yml"
    config = yaml.load(config_path.read_text(), Loader=yaml.UnsafeLoader)
    assert config["target_entropy"] == -12.0  # 2 x SAC's default -action_dim
    assert config["policy_kwargs"] == {"net_arch": [16]}  # the smoke budget's tiny network
    from stable_baselines3 import SAC

    assert SAC.load(specs[0].save_path / "HalfCheetah-v4.zip").target_entropy == -12.0


def test_generator_transfer_keeps_or_trains_the_source_generator(tmp_path, monkeypatch):
    latent_sac = pytest.importorskip("sb3_latent.latent_sac")
    import torch as th
    from rl_zoo3.utils import ALGOS

    from sb3_latent.zoo import our_config, register

    register()
    monkeypatch.setitem(ALGOS, "latent_sac", ALGOS.get("latent_sac", latent_sac.LatentSAC))
    if our_config("latent_sac", "HalfCheetahBackward-v4") is None:
        pytest.skip("hyperparams/latent_sac.yml has no HalfCheetahBackward-v4 entry yet")
    experiment = EXPERIMENTS["latent-transfer"]
    conditions = experiment.with_sources(["frozen", "finetuned"])
    specs = plan_runs(experiment, BUDGETS["smoke"], 1, tmp_path, conditions, n_timesteps=200)
    results = execute(specs, InlineBackend, show_progress=False, log=lambda line: None)
    assert {key: result.status for key, result in results.items()} == dict.fromkeys(
        ["pretrain-forward/seed0", "frozen/seed0", "finetuned/seed0"], "done"
    ), results
    saved = {spec.condition.name: latent_sac.LatentSAC.load(spec.save_path / f"{spec.condition.env_id}.zip") for spec in specs}

    def same_generator(a, b) -> bool:
        pairs = zip(a.action_generator.state_dict().values(), b.action_generator.state_dict().values(), strict=True)
        return all(th.equal(x, y) for x, y in pairs)

    assert same_generator(saved["frozen"], saved["pretrain-forward"]) and saved["frozen"].generator_mode == "frozen"
    assert (
        not same_generator(saved["finetuned"], saved["pretrain-forward"]) and saved["finetuned"].generator_mode == "finetune"
    )


def test_multitask_source_shares_one_generator_and_resumes(tmp_path, monkeypatch):
    import torch as th

    import sb3_latent.experiments.callbacks as callbacks
    import sb3_latent.experiments.multitask as multitask
    from sb3_latent.latent_sac import LatentSAC

    monkeypatch.setattr(multitask, "CHUNK", 100)  # several turns per task within the smoke budget's 400 steps
    experiment = EXPERIMENTS["latent-transfer"]
    source, target = plan_runs(experiment, BUDGETS["smoke"], 1, tmp_path, experiment.with_sources(["multitask"]))
    assert source.condition.name == "pretrain-multitask" and target.source.save_path == str(source.save_path)
    first_task, second_task = multitask.task_runs(source)
    assert second_task.path == source.path / "tasks" / "HalfCheetahTask-v4(target_speed=1.5)"
    assert second_task.env_kwargs["target_speed"] == 1.5 and second_task.seed == source.seed + 1

    real_save = callbacks.save_checkpoint

    def save_then_interrupt(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # Ctrl-C right after the first checkpoint: the first task's, at step 200

    monkeypatch.setattr(callbacks, "save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_one(source)
    monkeypatch.setattr(callbacks, "save_checkpoint", real_save)
    assert checkpoint_state(source.path)["num_timesteps"] == 200

    results = execute([source, target], InlineBackend, show_progress=False, log=lambda line: None)
    assert {key: result.status for key, result in results.items()} == {
        "pretrain-multitask/seed0": "done",
        "multitask/seed0": "done",
    }, results
    assert "resume at 200 steps" in (source.path / "train.log").read_text()
    for run in (first_task, second_task):
        assert evaluated_steps(run.path) == SMOKE_STEPS
        assert json.loads((run.path / "status.json").read_text())["num_timesteps"] == 400
    saved = [LatentSAC.load(run.save_path / f"{run.condition.env_id}.zip") for run in (first_task, second_task)]
    # One generator: both saved models hold the same weights, trained by the updates of both tasks.
    generators = [model.action_generator.state_dict() for model in saved]
    assert all(th.equal(tensor, generators[1][key]) for key, tensor in generators[0].items())
    assert saved[0]._n_generator_updates > 0 and saved[1]._n_generator_updates > 0


def test_a_run_being_trained_elsewhere_is_left_alone(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    experiment = EXPERIMENTS["baselines"]
    (spec,) = plan_runs(experiment, BUDGETS["smoke"], 1, tmp_path, [experiment.condition("sac")])
    spec.path.mkdir(parents=True)
    with open(spec.path / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a second command on the same folder would hold it
        result = run_one(spec)
    assert result.status == "refused" and "another process" in result.message
    assert not (spec.path / "evaluations.csv").exists()


# ----------------------------------------------------------------------------------------------------------------------
# Configuration and building blocks


def test_experiments_are_consistent():
    assert {"baselines", "naive-transfer", "latent-transfer", "target-entropy", "prior"} <= set(EXPERIMENTS)
    for experiment in EXPERIMENTS.values():
        names = [condition.name for condition in experiment.conditions]
        assert len(names) == len(set(names)), experiment.name
        for condition in experiment.conditions:
            if condition.source is not None:
                # A source is declared before its targets, and its hook is known.
                assert names.index(condition.source.condition) < names.index(condition.name)
                assert condition.source.transfer in TRANSFERS
        for panel in experiment.panels:
            assert set(panel.conditions) <= set(names), (experiment.name, panel.title)
    for budget in BUDGETS.values():
        assert budget.n_timesteps % budget.eval_freq == 0 and budget.n_timesteps % budget.checkpoint_freq == 0
    assert BUDGETS["paper"].n_timesteps == 1_000_000 and not BUDGETS["paper"].off_policy  # the poster's protocol
    assert [c.algo for c in EXPERIMENTS["baselines"].conditions] == ["sac", "td3", "ddpg", "ppo", "tqc", "latent_sac"]


@pytest.mark.parametrize(
    "condition, message",
    [
        (Condition("c", "sac", "Pendulum-v1", source=Source("fine", "no-such-hook")), "unknown transfer hook 'no-such-hook'"),
        (Condition("c", "sac", "NoSuchEnv-v0"), "gymnasium has no env NoSuchEnv-v0"),
        (Condition("c", "latent_sac", "HalfCheetah-v4", multitask=(("NoSuchEnv-v0", {}),)), "no env NoSuchEnv-v0"),
        (Condition("c", "no_such_algo", "Pendulum-v1"), "rl-zoo3 has no --algo no_such_algo"),
    ],
)
def test_unknown_hook_env_or_algo_is_an_error_at_planning(condition, message, tmp_path):
    conditions = (Condition("fine", "sac", "Pendulum-v1"), condition)
    experiment = Experiment("toy", "toy", "none", conditions, (Panel("all", ("c",)),))
    with pytest.raises(UserInputError, match=message):
        plan_runs(experiment, BUDGETS["smoke"], 1, tmp_path, list(experiment.conditions))
    assert not tmp_path.joinpath("toy").exists()


def test_cli_reports_a_planning_error_in_one_line(tmp_path, monkeypatch, capsys):
    from sb3_latent.experiments.__main__ import main

    bad = dataclasses.replace(EXPERIMENTS["baselines"], conditions=(Condition("sac", "sac", "NoSuchEnv-v0"),))
    monkeypatch.setitem(EXPERIMENTS, "baselines", bad)
    assert main(["baselines", "--budget", "smoke", "-f", str(tmp_path), "--no-progress"]) == 2
    assert "error: Condition 'sac': gymnasium has no env NoSuchEnv-v0" in capsys.readouterr().err
    assert not (tmp_path / "baselines").exists()


def test_summary_statistics():
    condition = Condition("c", "sac", "HalfCheetah-v4")
    scores = np.array([[0.0, 500.0, 1200.0, 1500.0], [0.0, 1100.0, 1300.0, 1400.0], [0.0, 100.0, 300.0, 900.0]])
    row = summarize(Curves(condition, [0, 1, 2], np.array([0, 100, 200, 300]), scores), threshold=1000.0)
    assert row["final_return"] == pytest.approx(1266.67, abs=0.01)
    assert row["final_ci_low"] <= row["final_return"] <= row["final_ci_high"]
    assert row["final_ci_low"] >= 900.0 and row["final_ci_high"] <= 1500.0
    assert row["iqm_final"] == pytest.approx(1266.67, abs=0.01)  # 3 seeds: trim_mean(0.25) cuts nothing
    assert row["mean_over_training"] == pytest.approx(scores.mean())
    per_seed_mean = scores.mean(axis=1)  # 800, 950, 325
    assert row["mean_over_training_ci_low"] <= row["mean_over_training"] <= row["mean_over_training_ci_high"]
    assert per_seed_mean.min() <= row["mean_over_training_ci_low"] and row["mean_over_training_ci_high"] <= 950.0
    assert row["seed_list"] == "0 1 2" and row["final_per_seed"] == "1500.0 1400.0 900.0"
    assert row["mean_over_training_per_seed"] == "800.0 950.0 325.0"
    line = markdown_table([row], threshold=1000.0).splitlines()[-1]
    assert "| 1,500, 1,400, 900 |" in line and "| 800, 950, 325 |" in line
    assert row["steps_to_threshold"] == 150.0 and row["seeds_reaching_threshold"] == 2  # median of 200 and 100


def test_summary_table_keeps_small_returns_readable():
    # A smoke run's returns lie between -1 and 0: whole numbers would print them as -0 and [-1, -0].
    condition = Condition("c", "sac", "HalfCheetah-v4")
    scores = np.array([[-0.9, -0.42, -0.31], [-0.8, -0.6, -0.05]])
    row = summarize(Curves(condition, [0, 1], np.array([0, 200, 400]), scores), threshold=0.0)
    line = markdown_table([row], threshold=0.0).splitlines()[-1]
    assert "| -0.18 [-0.31, -0.05] |" in line and "-0 " not in line and "-0]" not in line
    assert markdown_table([{**row, "final_return": 1234.4, "final_ci_low": -0.0}], 0.0).count("1,234 [0, ") == 1


@pytest.mark.parametrize("n_added, new_size", [(7, 10), (13, 10), (13, 20), (13, 5), (3, 2)])
def test_compact_replay_buffer_roundtrip(n_added, new_size, tmp_path):
    observation_space = spaces.Box(-1, 1, (3,))
    action_space = spaces.Box(-1, 1, (2,))
    buffer = ReplayBuffer(10, observation_space, action_space)
    for i in range(n_added):
        obs = np.full((1, 3), i, dtype=np.float32)
        buffer.add(obs, obs + 0.5, np.full((1, 2), i, dtype=np.float32), np.array([i]), np.array([False]), [{}])
    assert save_replay_buffer(buffer, tmp_path / "buffer.npz") == min(n_added, 10)
    restored = ReplayBuffer(new_size, observation_space, action_space)
    kept = restore_replay_buffer(restored, tmp_path / "buffer.npz")
    # The newest transitions, oldest first, as the restored buffer would hold them had it been filled directly.
    expected = list(range(n_added))[-min(n_added, 10, new_size) :]
    assert kept == len(expected)
    assert restored.observations[:kept, 0, 0].tolist() == expected
    assert restored.rewards[:kept, 0].tolist() == expected
    assert restored.full == (kept == new_size) and restored.pos == kept % new_size


# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ray_backend_on_a_local_instance(zoo_env, tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'sb3-latent[ray]'")
    args = ["baselines", "--budget", "smoke", "--seeds", "2", "--conditions", "sac", "-f", str(tmp_path)]
    result = cli([*args, "--backend", "ray", "--address", "local"], zoo_env, tmp_path)
    check_ok(result)
    for seed in (0, 1):
        assert evaluated_steps(run_folder(tmp_path / "baselines", "sac", seed)) == SMOKE_STEPS
    second = cli([*args, "--backend", "ray", "--address", "local"], zoo_env, tmp_path)
    assert "runs: 0 trained, 2 already finished" in second.stdout


def test_fingerprint_sees_a_changed_default_of_the_policy(tmp_path, monkeypatch):
    """A policy default that changes no network shape (here the residual decoders' warp bound) gets a new folder."""
    latent_sac = pytest.importorskip("sb3_latent.latent_sac")
    policy_class = latent_sac.LatentSACPolicy
    experiment, smoke = EXPERIMENTS["latent-ablation"], BUDGETS["smoke"]
    conditions = [experiment.condition("rung4-elbo")]  # does not set it
    (spec,) = plan_runs(experiment, smoke, 1, tmp_path, conditions)
    names = [p.name for p in inspect.signature(policy_class.__init__).parameters.values() if p.default is not p.empty]
    defaults = list(policy_class.__init__.__defaults__)
    old = defaults[names.index("residual_bound")]
    defaults[names.index("residual_bound")] = old + 0.5
    monkeypatch.setattr(policy_class.__init__, "__defaults__", tuple(defaults))
    (changed,) = plan_runs(experiment, smoke, 1, tmp_path, conditions)
    assert changed.path != spec.path
    assert changed.settings["model"]["policy_kwargs"] == spec.settings["model"]["policy_kwargs"]
    assert changed.settings["model"]["networks"] == spec.settings["model"]["networks"]
    assert changed.settings["model"]["policy_constructor"]["residual_bound"] == old + 0.5
