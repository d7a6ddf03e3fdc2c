"""The one reader of rl-zoo3 run folders: model zip, args and config, replay buffer, VecNormalize statistics.

rl-zoo3's layout of a run, ``<log folder>/<algo>/<env>_<id>/``::

    <env>.zip                    the final model (best_model.zip beside it when rl-zoo3 evaluated)
    <env>/args.yml, config.yml   the command line and the hyperparameters
    <env>/vecnormalize.pkl       VecNormalize statistics, if the run normalised
    replay_buffer.pkl            rl-zoo3's --save-replay-buffer: SB3's pickle of the whole buffer
    replay_buffer.npz            or our compact file, the filled rows only (experiment checkpoints and source runs)

Naive transfer, latent transfer, the start-up hook's ``-i`` support and the experiments read runs here. Nothing here
builds a model, and nothing here imports another module of ours but :mod:`sb3_latent.common` and
:mod:`sb3_latent.errors`: LatentSAC reads its generator sources through this module, so a LatentSAC zip is loaded by
the class that the caller passes.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch as th
import yaml
from gymnasium import Env
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.save_util import json_to_data
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from sb3_latent.common.action_generator import ActionGenerator
from sb3_latent.errors import UserInputError

# rl-zoo3's replay buffer file (its -i reloads it), and the compact one of our checkpoints and source runs.
ZOO_REPLAY_BUFFER_FILE = "replay_buffer.pkl"
REPLAY_BUFFER_FILE = "replay_buffer.npz"


def _transition_arrays(buffer: ReplayBuffer) -> dict[str, np.ndarray]:
    """Every per-transition array of the buffer (first axis = buffer_size), dict observations flattened."""
    arrays: dict[str, np.ndarray] = {}
    for name, value in vars(buffer).items():
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == buffer.buffer_size:
            arrays[name] = value
        elif isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
            for key, array in value.items():
                if array.shape[0] == buffer.buffer_size:
                    arrays[f"{name}/{key}"] = array
    return arrays


def save_replay_buffer(buffer: ReplayBuffer, path: Path) -> int:
    """Save the filled rows of ``buffer``, oldest first (``.npz``). Returns the number of rows saved.

    SB3's ``save_replay_buffer`` pickles the whole preallocated array (about 300 MB for HalfCheetah's 1M buffer even
    when it holds 5k transitions), which would make frequent checkpoints impractical.
    """
    if buffer.optimize_memory_usage:
        raise NotImplementedError("compact checkpoints do not support optimize_memory_usage=True replay buffers")
    size = buffer.buffer_size if buffer.full else buffer.pos
    order = (np.arange(size) + buffer.pos) % buffer.buffer_size if buffer.full else np.arange(size)
    rows = {name: array[order] for name, array in _transition_arrays(buffer).items()}
    with open(path, "wb") as file:
        np.savez(file, **rows)  # type: ignore[arg-type]
    return size


def restore_replay_buffer(buffer: ReplayBuffer, path: Path) -> int:
    """Fill ``buffer`` (freshly built, empty) with the rows saved at ``path``. Returns the number of rows.

    The buffer may be larger than the saved one (it keeps all rows) or smaller (it keeps the newest
    rows, as the smaller buffer would have).
    """
    arrays = _transition_arrays(buffer)
    with np.load(path) as saved:
        names = set(saved.files)
        if names != set(arrays):
            raise UserInputError(
                f"{path} holds replay-buffer fields {sorted(names)}, but this model's buffer has {sorted(arrays)}: "
                "it was written by another algorithm or buffer class. Move it aside to start from an empty replay buffer."
            )
        n_saved = saved[next(iter(names))].shape[0] if names else 0
        keep = min(n_saved, buffer.buffer_size)
        for name, array in arrays.items():
            rows = saved[name][n_saved - keep :]
            if rows.shape[1:] != array.shape[1:]:
                raise UserInputError(
                    f"{path}: field {name} has rows of shape {rows.shape[1:]}, this model's buffer {array.shape[1:]}: it "
                    "was recorded on another env. Move it aside to start from an empty replay buffer."
                )
            array[:keep] = rows
    buffer.pos = keep % buffer.buffer_size
    buffer.full = keep == buffer.buffer_size
    return keep


def load_replay_buffer(model: OffPolicyAlgorithm, path: Path, truncate_last_traj: bool = True) -> None:
    """Put the replay buffer saved at ``path`` into ``model``: our compact ``.npz`` or SB3's pickle (rl-zoo3's)."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"No replay buffer file at {path}: pass the replay_buffer.pkl or replay_buffer.npz of a run.")
    assert model.replay_buffer is not None
    try:
        if path.suffix == ".npz":
            restore_replay_buffer(model.replay_buffer, path)
        else:
            # SB3's own method, named on the base class: LatentSAC's load_replay_buffer comes here.
            OffPolicyAlgorithm.load_replay_buffer(model, path, truncate_last_traj)
    except UserInputError:
        raise
    except Exception as error:  # unpickling random bytes raises almost anything; SB3 asserts a ReplayBuffer came out
        raise UserInputError(
            f"{path} is not a readable replay buffer (truncated, corrupt or another kind of file: {type(error).__name__}). "
            "Move it aside to start from an empty replay buffer."
        ) from None


def load_vecnormalize(path: Path, venv: VecEnv, fix: str) -> VecNormalize:
    """The VecNormalize statistics saved at ``path`` (a run's ``<env>/vecnormalize.pkl``), wrapped around ``venv``.

    As ``VecNormalize.load``, with one line for a missing, truncated or foreign file; ``fix`` says how to do without it.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"No VecNormalize statistics at {path}. {fix}")
    try:
        with open(path, "rb") as file:
            stats = pickle.load(file)
    except Exception as error:  # unpickling random bytes raises almost anything
        raise UserInputError(
            f"{path} is not readable VecNormalize statistics (truncated, corrupt or another kind of file: "
            f"{type(error).__name__}). {fix}"
        ) from None
    if not isinstance(stats, VecNormalize):
        raise UserInputError(f"{path} holds a {type(stats).__name__}, not VecNormalize statistics. {fix}")
    stats.set_venv(venv)
    return stats


def read_zoo_yaml(path: Path) -> dict[str, Any]:
    """An rl-zoo3 ``args.yml`` or ``config.yml``.

    rl-zoo3 writes them as OrderedDicts (python tags) and reads them with the UnsafeLoader; so do we. They come from the
    same run as the model zip, which SB3 unpickles anyway.
    """
    try:
        with open(path) as file:
            content = yaml.load(file, Loader=yaml.UnsafeLoader)
        return dict(content or {})
    except (yaml.YAMLError, TypeError, ValueError, UnicodeDecodeError) as error:
        problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserInputError(
            f"{path} is not a readable rl-zoo3 {path.name} ({problem}). Restore it, or pass the model zip itself "
            "(with the algorithm's name, e.g. --algo sac)."
        ) from None


@dataclass(frozen=True)
class RunFolder:
    """An rl-zoo3 run folder (``<log folder>/<algo>/<env>_<id>``), by its path: the files of the layout above.

    It may not exist yet: an experiment names the folder of a source run before that run has trained.
    """

    save_path: str

    @property
    def path(self) -> Path:
        return Path(self.save_path)

    def params_dirs(self) -> list[Path]:
        """Every ``<env>/`` folder that holds an ``args.yml`` (one, in a run that rl-zoo3 wrote)."""
        return sorted(args.parent for args in self.path.glob("*/args.yml"))

    def model_path(self) -> Path | None:
        """The final model ``<env>.zip``, named by the run's ``args.yml``; None while the run has not saved it."""
        params_dirs = self.params_dirs()
        if len(params_dirs) != 1:
            return None
        model_path = self.path / f"{read_zoo_yaml(params_dirs[0] / 'args.yml').get('env')}.zip"
        return model_path if model_path.is_file() else None

    def replay_buffer_path(self) -> Path | None:
        """rl-zoo3's ``replay_buffer.pkl`` or our ``replay_buffer.npz``, whichever the run saved."""
        for name in (ZOO_REPLAY_BUFFER_FILE, REPLAY_BUFFER_FILE):
            if (self.path / name).is_file():
                return self.path / name
        return None

    def zips(self) -> str:
        """The zip files in the folder, for error messages."""
        return ", ".join(sorted(p.name for p in self.path.glob("*.zip"))) or "none"


@dataclass
class SourceRun:
    """The source model and what its rl-zoo3 run folder says about it.

    :param algorithm_class: the algorithm that saved the model
    :param model_path: the saved model (``<run>/<env>.zip``); None when a loaded model was given
    :param model: the loaded model given by the caller; None when a path was given
    :param algo: rl-zoo3's name of the algorithm (``"sac"``), if known
    :param env_id: the source task's env id, if known (rl-zoo3's ``<run>/<env>/args.yml``, the model's env, or
        ``source_env``)
    :param env_kwargs: the source task's env kwargs
    :param config: rl-zoo3's saved hyperparameters (``<run>/<env>/config.yml``), empty without one
    :param replay_buffer: ``<run>/replay_buffer.pkl`` (rl-zoo3 writes it with ``--save-replay-buffer``),
        ``<run>/replay_buffer.npz`` (an experiment's source run) or the loaded model's non-empty buffer; None without one
    :param vecnormalize: ``<run>/<env>/vecnormalize.pkl`` or the loaded model's VecNormalize; None without one
    """

    algorithm_class: type[BaseAlgorithm]
    model_path: Path | None = None
    model: OffPolicyAlgorithm | None = None
    algo: str | None = None
    env_id: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    replay_buffer: Path | ReplayBuffer | None = None
    vecnormalize: Path | VecNormalize | None = None

    def model_file(self) -> Path | io.BytesIO:
        """The saved model, as a file SB3's ``load`` reads. A loaded model is saved to memory, so it stays untouched."""
        if self.model_path is not None:
            return self.model_path
        assert self.model is not None
        file = io.BytesIO()
        self.model.save(file)
        file.seek(0)
        return file


def _algorithm_class(algo: str) -> type[BaseAlgorithm]:
    from rl_zoo3.utils import ALGOS  # rl-zoo3's names, with ours added by sb3_latent.zoo

    if algo not in ALGOS:
        raise UserInputError(f"Unknown algorithm {algo!r}: rl-zoo3 knows {', '.join(sorted(ALGOS))}.")
    return cast(type[BaseAlgorithm], ALGOS[algo])


def env_spec(env: Env | VecEnv) -> tuple[str | None, dict[str, Any]]:
    """The registered id and kwargs of an env (None, {} for an env made without gymnasium's registry)."""
    spec = env.get_attr("spec", [0])[0] if isinstance(env, VecEnv) else env.spec
    if spec is None:
        return None, {}
    return spec.id, dict(spec.kwargs)


def read_run(path: Path, algo: str | type[BaseAlgorithm] | None = None) -> SourceRun:
    """The model of an rl-zoo3 run folder, or a saved model zip, and what its folder says about it.

    :param path: an rl-zoo3 run folder (``logs/sac/HalfCheetah-v4_1``) or a saved model (``.../HalfCheetah-v4.zip``,
        ``best_model.zip``, any SB3 zip)
    :param algo: rl-zoo3's name (``"sac"``) or the class; needed only for a zip outside an rl-zoo3 run folder
    """
    if path.is_dir():
        folder, model_path = RunFolder(str(path)), None
    elif path.is_file() and path.suffix == ".zip":
        folder, model_path = RunFolder(str(path.parent)), path
    elif path.is_file():
        raise UserInputError(
            f"{path} is neither a saved model (.zip) nor a run folder. Pass an rl-zoo3 run folder "
            "(logs/sac/HalfCheetah-v4_1) or the .zip that model.save() (or rl-zoo3) wrote."
        )
    else:
        raise UserInputError(
            f"No saved model or run folder at {path}. Pass an rl-zoo3 run folder (logs/sac/HalfCheetah-v4_1) or a saved "
            "model (logs/sac/HalfCheetah-v4_1/HalfCheetah-v4.zip)."
        )
    params_dirs = folder.params_dirs()
    if model_path is not None and (folder.path / model_path.stem / "args.yml").is_file():
        params_dirs = [folder.path / model_path.stem]
    if model_path is None and len(params_dirs) != 1:
        raise UserInputError(
            f"{folder.path} is not an rl-zoo3 run folder: expected one <env>/args.yml, found {len(params_dirs)}. "
            f"Pass the saved model itself (zip files there: {folder.zips()})."
        )
    params_dir = params_dirs[0] if len(params_dirs) == 1 else None
    args = read_zoo_yaml(params_dir / "args.yml") if params_dir is not None else {}
    config = read_zoo_yaml(params_dir / "config.yml") if params_dir and (params_dir / "config.yml").is_file() else {}
    env_id = args.get("env")
    if model_path is None:
        model_path = folder.path / f"{env_id}.zip"
        if not model_path.is_file():
            raise UserInputError(
                f"{folder.path} has no final model {model_path.name} (zip files there: {folder.zips()}); pass one."
            )

    algo_name = algo if isinstance(algo, str) else args.get("algo")
    if isinstance(algo, type):
        algorithm_class = algo
    elif algo_name is not None:
        algorithm_class = _algorithm_class(algo_name)
    else:
        raise UserInputError(
            f"Cannot tell which algorithm saved {model_path} (no rl-zoo3 args.yml beside it): pass "
            "rl-zoo3's name of the algorithm: algo='sac'."
        )
    model_path = check_saved_model(model_path, algorithm_class)
    vecnormalize = params_dir / "vecnormalize.pkl" if params_dir is not None else None
    return SourceRun(
        algorithm_class=algorithm_class,
        model_path=model_path,
        algo=algo_name,
        env_id=env_id,
        env_kwargs={**(config.get("env_kwargs") or {}), **(args.get("env_kwargs") or {})},
        config=config,
        replay_buffer=folder.replay_buffer_path(),
        vecnormalize=vecnormalize if vecnormalize is not None and vecnormalize.is_file() else None,
    )


def read_action_generator(
    source: ActionGenerator | BaseAlgorithm | str | Path | io.BufferedIOBase,
    latent_sac_class: type[BaseAlgorithm],
    device: th.device | str = "cpu",
) -> ActionGenerator:
    """The action generator of ``source``.

    :param source: an ``ActionGenerator``; a generator file (``save_action_generator``); a LatentSAC model; its saved
        zip; or its rl-zoo3 run folder (``logs/latent_sac/HalfCheetah-v4_1``)
    :param latent_sac_class: the class that loads a LatentSAC zip (LatentSAC itself, which this module cannot import:
        LatentSAC imports it)
    :param device: where a generator read from a file is put
    :return: the generator (the source's own module for a module or a model: not a copy); it records the latent box
        its policy queried it in (``latent_bound``), which a model built from it takes
    """
    if isinstance(source, ActionGenerator):
        return source
    if isinstance(source, latent_sac_class):
        return source.action_generator  # type: ignore[attr-defined]
    if isinstance(source, BaseAlgorithm):
        raise UserInputError(
            f"The source is a {type(source).__name__} model, which has no action generator: latent transfer starts from a "
            "LatentSAC (or a generator file). For other algorithms use naive transfer, sb3_latent.transfer.finetune."
        )
    if isinstance(source, io.IOBase):
        return ActionGenerator.load(source, device=device)
    if not isinstance(source, (str, os.PathLike)):
        raise UserInputError(
            f"action_generator={source!r} is not a generator source: pass a generator file "
            "(model.save_action_generator), a LatentSAC zip, an rl-zoo3 latent_sac run folder, a LatentSAC model or an "
            "ActionGenerator."
        )
    path = Path(source)
    if path.is_dir():
        run = read_run(path)
        if not issubclass(run.algorithm_class, latent_sac_class):
            raise UserInputError(
                f"{path} is a {run.algorithm_class.__name__} run, which has no action generator: latent transfer starts "
                "from a latent_sac run (or a generator file). For other algorithms use naive transfer."
            )
        assert run.model_path is not None
        path = run.model_path
    elif not path.is_file():
        raise UserInputError(
            f"No action generator at {path}: pass a generator file (model.save_action_generator), a LatentSAC zip, an "
            "rl-zoo3 latent_sac run folder, a LatentSAC model or an ActionGenerator."
        )
    if path.suffix != ".zip" and not _is_sb3_zip(path):  # a .zip is a model, readable or not
        return ActionGenerator.load(path, device=device)
    policy_class = saved_policy_class(saved_model_path(path))
    latent_policy_classes = tuple(latent_sac_class.policy_aliases.values())
    if not (isinstance(policy_class, type) and issubclass(policy_class, latent_policy_classes)):
        name = getattr(policy_class, "__name__", policy_class)
        raise UserInputError(
            f"{path} holds a model with policy {name}, which has no action generator: latent transfer starts from a "
            "LatentSAC zip (or a generator file). For other algorithms use naive transfer."
        )
    model = latent_sac_class.load(path, device=device)
    return model.action_generator  # type: ignore[attr-defined]


def saved_model_path(path: str | Path) -> Path:
    """The SB3 model zip at ``path`` (or ``path.zip``, as SB3's ``load`` tries), checked whole: not truncated, not corrupt.

    Every loader of a model zip reads it through here, so a bad file gets one message instead of zipfile's.
    """
    path = Path(path)
    if not path.is_file() and path.with_name(path.name + ".zip").is_file():
        path = path.with_name(path.name + ".zip")
    if not path.is_file():
        raise UserInputError(f"No saved model at {path}. Pass the .zip that model.save() (or rl-zoo3) wrote.")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            corrupt = archive.testzip() is not None  # reads every member: a corrupt one fails its checksum
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error):
        names, corrupt = [], True
    # A truncated model can still open as a zip: the inner torch archives it stores end in zip directories too.
    problem = "truncated or corrupt" if corrupt else None
    if problem is None and "data" not in names:
        problem = "no 'data' member: truncated, or another kind of zip archive such as a generator file"
    if problem is not None:
        raise UserInputError(
            f"{path} is not a readable SB3 model zip ({problem}). Pass the .zip that model.save() (or rl-zoo3) wrote; "
            "for a damaged one, another copy (best_model.zip, a checkpoint) or a new training run."
        )
    return path


def saved_policy_class(path: Path) -> Any:
    """The policy class that the SB3 model zip at ``path`` (checked by :func:`saved_model_path`) was saved with."""
    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read("data"))
    # That entry only: the others (schedules, spaces) may need the caller's custom_objects to deserialise.
    return json_to_data(json.dumps({"policy_class": data.get("policy_class")})).get("policy_class")


def check_saved_model(path: str | Path, algorithm_class: type[BaseAlgorithm]) -> Path:
    """The model zip at ``path``, checked whole and saved by ``algorithm_class`` (judged by its policy class)."""
    path = saved_model_path(path)
    policy_class = saved_policy_class(path)
    policy_classes = tuple(algorithm_class.policy_aliases.values())
    if not (isinstance(policy_class, type) and policy_classes and issubclass(policy_class, policy_classes)):
        name = getattr(policy_class, "__qualname__", policy_class)
        module = getattr(policy_class, "__module__", "an unknown module")
        raise UserInputError(
            f"{path} holds a model with policy {name} (from {module}), not a {algorithm_class.__name__} model. Load it "
            "with the algorithm that saved it (in rl-zoo3: the --algo it was trained with)."
        )
    return path


def _is_sb3_zip(path: Path) -> bool:
    # torch.save files are zip archives too; an SB3 model has a top-level "data" member.
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return "data" in archive.namelist()
