"""What a run (condition x seed) is, and what its folder holds: the experiments' shared types and run-folder I/O.

A leaf: it imports no other module of the experiments (the driver, the workers and the report all read runs through
it). A run's folder is ``<root>/<experiment>/runs/<condition>/<fingerprint>/seed<k>``: the fingerprint of the
settings it trains under (:func:`sb3_latent.experiments.plan.run_settings`), so that runs under other settings never
share a folder. Everything a run writes lives in its folder::

    <run>/evaluations.csv            one row per evaluation, appended as it happens
    <run>/run.json                   what the run is: its fingerprint and the settings hashed into it
    <run>/status.json                written when it finishes
    <run>/progress.json              num_timesteps while it trains (read by the progress bar)
    <run>/train.log                  rl-zoo3's and SB3's output
    <run>/error.txt                  the traceback of its last failure (deleted once it succeeds)
    <run>/checkpoint/                last checkpoint, and checkpoint.previous/ the one before (see checkpoints.py)
    <run>/<algo>/<env>_1/            rl-zoo3 layout: <env>.zip, best_model.zip, 0.monitor.csv, evaluations.npz,
                                     <env>/config.yml

Folders of the earlier layout, ``runs/<condition>/seed<k>`` (no fingerprint), are still read by the report
(:func:`report_folder`); they are not resumed.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: planning and reading results import no SB3 through this module
    from sb3_latent.experiments.specs import Condition, Experiment
    from sb3_latent.zoo_runs import RunFolder

EVALUATIONS_FILE = "evaluations.csv"
EVALUATION_COLUMNS = ("steps", "eval_return_mean", "eval_return_std", "eval_length_mean", "wall_time_s", "time")
STATUS_FILE = "status.json"
PROGRESS_FILE = "progress.json"
RUN_FILE = "run.json"
LOG_FILE = "train.log"
ERROR_FILE = "error.txt"
LOCK_FILE = ".lock"
# Seconds between two writes of progress.json.
PROGRESS_PERIOD = 2.0
# Hashed into every run's fingerprint. Bump it by hand when a change of the code changes what a run means without
# showing in the values the fingerprint sees (a constant inside a module, a transfer hook's behaviour, the training
# loop): every run then gets a new folder instead of being resumed or skipped under the old meaning.
SETTINGS_REVISION = 1
# Hex digits of the fingerprint in folder names.
FINGERPRINT_LENGTH = 12


class RunWarning(UserWarning):
    """Something a worker tells the command (a checkpoint fallback): it travels back in the run's result."""


class RunRefused(RuntimeError):
    """The run was not started: its folder holds other settings, or another process is training it."""


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to train one run (picklable, for process pools and Ray).

    :param experiment: experiment name
    :param condition: the condition
    :param seed: seed of this run (also its folder ``seed<k>``)
    :param run_dir: the run's folder
    :param n_timesteps: train until ``num_timesteps`` reaches this
    :param eval_freq: evaluate every this many env steps
    :param n_eval_episodes: episodes per evaluation
    :param checkpoint_freq: checkpoint every this many env steps
    :param layers: hyperparameter overrides applied in order on the YAML entry (budget, then condition)
    :param env_kwargs: env kwargs (budget's, then condition's)
    :param budget: budget name (recorded only)
    :param source: the rl-zoo3 folder of the source run, for a transfer run
    :param save_replay_buffer: keep the replay buffer beside the final model (the run is a source)
    :param fingerprint: hash of ``settings`` (the run's folder is named after it)
    :param settings: what the run trains under, as hashed (recorded in run.json)
    """

    experiment: str
    condition: Condition
    seed: int
    run_dir: str
    n_timesteps: int
    eval_freq: int
    n_eval_episodes: int
    checkpoint_freq: int
    layers: tuple[dict[str, Any], ...] = ()
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    budget: str = ""
    source: RunFolder | None = None
    save_replay_buffer: bool = False
    fingerprint: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.condition.name}/seed{self.seed}"

    @property
    def path(self) -> Path:
        return Path(self.run_dir)

    @property
    def save_path(self) -> Path:
        """rl-zoo3's ``<log folder>/<algo>/<env>_<id>`` with id fixed to 1."""
        return self.path / self.condition.algo / f"{self.condition.env_id}_1"


@dataclass(frozen=True)
class RunResult:
    """What became of a run: ``done`` (trained now), ``skipped`` (already finished), ``refused`` (not started, see
    :class:`RunRefused`) or ``failed`` (see ``message``); ``warnings``: the worker's :class:`RunWarning` messages."""

    key: str
    status: str
    num_timesteps: int = 0
    wall_time_s: float = 0.0
    message: str = ""
    warnings: tuple[str, ...] = ()


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_finished(spec: RunSpec) -> bool:
    """True if the run already trained for ``spec.n_timesteps`` steps (or stopped early by its own callback)."""
    status = read_json(spec.path / STATUS_FILE)
    if not status or status.get("status") != "done":
        return False
    return int(status.get("num_timesteps", 0)) >= spec.n_timesteps or bool(status.get("stopped_early"))


def progress_of(spec: RunSpec) -> int:
    """Steps trained so far (from progress.json), for progress bars."""
    progress = read_json(spec.path / PROGRESS_FILE)
    return int(progress.get("num_timesteps", 0)) if progress else 0


def read_evaluations(path: Path) -> list[dict[str, float]]:
    """The rows of an evaluations.csv (numbers as floats; the ``time`` column is dropped)."""
    if not path.is_file():
        return []
    with open(path, newline="") as file:
        return [
            {key: float(value) for key, value in row.items() if key != "time" and value not in ("", None)}
            for row in csv.DictReader(file)
        ]


def truncate_evaluations(path: Path, max_steps: int) -> None:
    """Drop rows logged after the checkpoint we resume from: they will be logged again."""
    if not path.is_file():
        return
    with open(path, newline="") as file:
        rows = [row for row in csv.DictReader(file) if int(float(row["steps"])) <= max_steps]
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=EVALUATION_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _jsonable(value: Any) -> Any:
    """A JSON-comparable form of a hyperparameter value (objects by their repr)."""
    return json.loads(json.dumps(value, default=repr, sort_keys=True))


def write_progress(spec: RunSpec, num_timesteps: int) -> None:
    tmp = spec.path / f"{PROGRESS_FILE}.tmp"
    tmp.write_text(json.dumps({"num_timesteps": int(num_timesteps), "target": spec.n_timesteps}))
    tmp.replace(spec.path / PROGRESS_FILE)


def fingerprint(settings: dict[str, Any]) -> str:
    """The hash of ``settings`` (with :data:`SETTINGS_REVISION`), in :data:`FINGERPRINT_LENGTH` hex digits."""
    text = json.dumps({"revision": SETTINGS_REVISION, **_jsonable(settings)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_LENGTH]


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The keys whose values differ, down to the innermost dicts (``model.batch_size``)."""
    found = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}")
    return found


def record_run(spec: RunSpec) -> None:
    """Write run.json, or refuse a folder that another fingerprint (a hand-made spec, other code) trained."""
    path = spec.path / RUN_FILE
    recorded = read_json(path)
    if recorded is not None and recorded.get("fingerprint") != spec.fingerprint:
        diff = _differences(recorded.get("settings") or {}, _jsonable(spec.settings))
        raise RunRefused(
            f"{spec.path} holds a run with other settings (fingerprint {recorded.get('fingerprint')}, not "
            f"{spec.fingerprint}; differs in: {', '.join(diff) or 'the settings revision'}). Use another results "
            "folder (-f), or delete this run folder to train it again."
        )
    if recorded is None:
        record = {"experiment": spec.experiment, "condition": spec.condition.name, "seed": spec.seed, "budget": spec.budget}
        record |= {"fingerprint": spec.fingerprint, "revision": SETTINGS_REVISION, "settings": _jsonable(spec.settings)}
        path.write_text(json.dumps(record, indent=1))


def finished_result(spec: RunSpec) -> RunResult:
    """The result of a run that finished earlier (``skipped``), from its status.json."""
    status = read_json(spec.path / STATUS_FILE) or {}
    return RunResult(spec.key, "skipped", int(status.get("num_timesteps", 0)), float(status.get("wall_time_s", 0.0)))


def experiment_dir(root: str | Path, experiment: Experiment) -> Path:
    return Path(root) / experiment.name


def run_dir(root: str | Path, experiment: Experiment, condition: str, fingerprint: str, seed: int) -> Path:
    return experiment_dir(root, experiment) / "runs" / condition / fingerprint / f"seed{seed}"


def report_folder(spec: RunSpec) -> Path:
    """The folder the report reads for ``spec``: its own, or if that has no evaluations yet, the folder of the
    earlier layout (``runs/<condition>/seed<k>``, no fingerprint) if one was trained under the same budget."""
    legacy = spec.path.parent.parent / f"seed{spec.seed}"
    recorded = read_json(legacy / RUN_FILE)
    if (spec.path / EVALUATIONS_FILE).is_file() or not recorded or "fingerprint" in recorded:
        return spec.path
    return legacy if recorded.get("budget") == spec.budget else spec.path
