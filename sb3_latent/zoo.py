"""Registration with rl-zoo3 2.9, without editing rl-zoo3.

rl-zoo3 has no plugin mechanism: ``--algo`` is checked against ``rl_zoo3.utils.ALGOS`` when each
script starts, and hyperparameters are read from rl-zoo3's own ``hyperparams/<algo>.yml``. The
start-up hook (:mod:`sb3_latent._startup`) calls the ``patch_*`` functions below as soon as the
matching rl-zoo3 module has loaded, so ``python -m rl_zoo3.train/enjoy/record_video`` and
``-optimize`` see our algorithms and YAMLs. :func:`register` does the same explicitly, for
processes without the hook (``python -m sb3_latent.train``).

What we never change: for an env id that our YAML does not list (CartPole, Atari, ...), rl-zoo3
reads its own YAML exactly as it would without sb3-latent installed.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from sb3_latent.errors import UserInputError

# --algo name -> "module:Class".
ALGORITHMS: dict[str, str] = {"latent_sac": "sb3_latent.latent_sac:LatentSAC"}
# --algo name -> ("module:sampler", "module:converter") for rl-zoo3's -optimize (the converter turns a
# stored trial's raw parameters back into hyperparameters, for --storage/--study-name/--trial-id).
SAMPLERS: dict[str, tuple[str, str]] = {
    "latent_sac": (
        "sb3_latent.latent_sac.tuning:sample_latent_sac_params",
        "sb3_latent.latent_sac.tuning:convert_latent_sac_params",
    ),
}

# Training entry points default to this many torch threads. One SAC update is compute-bound, and on a
# shared 2-core machine torch's default of 2 threads ran an MLP update ~25x slower than 1 thread
# while another process held the second core. rl-zoo3's --num-threads still overrides it.
NUM_THREADS_ENV_VAR = "SB3_LATENT_NUM_THREADS"


def hyperparams_dir() -> Path:
    """The YAMLs shipped with the package (normal install), or the repo's top-level folder (editable)."""
    package_dir = Path(__file__).resolve().parent
    packaged = package_dir / "hyperparams"
    return packaged if packaged.is_dir() else package_dir.parent / "hyperparams"


def zoo_hyperparams_dir() -> Path:
    """rl-zoo3's own YAML folder: inside the package when installed, beside it in a source checkout."""
    spec = importlib.util.find_spec("rl_zoo3")  # its location only: rl-zoo3 itself is not imported
    if spec is None or spec.origin is None:
        raise UserInputError("rl-zoo3 is not installed: pip install rl_zoo3.")
    zoo_root = Path(spec.origin).resolve().parent
    return zoo_root / "hyperparams" if (zoo_root / "hyperparams").is_dir() else zoo_root.parent / "hyperparams"


def zoo_config(algo: str, env_id: str) -> str:
    """The YAML rl-zoo3 reads for (algo, env_id) with sb3-latent installed: ours if it lists env_id, else rl-zoo3's."""
    zoo_default = str(zoo_hyperparams_dir() / f"{algo}.yml")
    return resolve_config(algo, env_id, zoo_default, zoo_default)


def _load(target: str) -> Any:
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def default_num_threads() -> int:
    """Torch intra-op threads for our training entry points: 1 unless SB3_LATENT_NUM_THREADS says otherwise."""
    value = os.environ.get(NUM_THREADS_ENV_VAR, "1")
    try:
        return int(value)
    except ValueError:
        raise UserInputError(
            f"{NUM_THREADS_ENV_VAR}={value!r} is not an integer; use e.g. 1, or -1 for torch's default."
        ) from None


def set_default_num_threads() -> None:
    import torch as th

    num_threads = default_num_threads()
    if num_threads > 0:
        th.set_num_threads(num_threads)


def our_config(algo: str, env_id: str) -> str | None:
    """Path of our YAML for (algo, env_id) if it has an entry for env_id."""
    path = hyperparams_dir() / f"{algo}.yml"
    if not path.is_file():
        return None
    with open(path) as file:
        entries = yaml.safe_load(file) or {}
    return str(path) if env_id in entries else None


def resolve_config(algo: str, env_id: str, config: str, zoo_default: str) -> str:
    """The YAML rl-zoo3 should read: ours where it lists the env, else what rl-zoo3 chose.

    An explicit ``--conf-file`` (config != zoo_default) always wins.
    """
    if config != zoo_default:
        return config
    ours = our_config(algo, env_id)
    if ours is not None:
        return ours
    if not Path(zoo_default).is_file():
        # One of our algorithms (rl-zoo3 ships no YAML for it) on an id our YAML lacks.
        path = hyperparams_dir() / f"{algo}.yml"
        listed = ", ".join(yaml.safe_load(path.read_text()) or {}) if path.is_file() else "none"
        raise UserInputError(
            f"No hyperparameters for --algo {algo} on {env_id}: {path} lists only {listed}. "
            f"Add an entry for {env_id} to a copy of that file and pass it with --conf-file."
        )
    return config


# rl-zoo3's train() refuses these arguments with an exception (a traceback): (type, part of its message, our line).
ZOO_REFUSALS = (
    (
        AssertionError,
        "The trained_agent must be a valid path to a .zip file",
        "-i/--trained-agent must name a saved model's .zip file that exists (e.g. -i logs/sac/HalfCheetah-v4_1/"
        "HalfCheetah-v4.zip); leave out -i to train from scratch.",
    ),
    (ValueError, "not found in gym registry", "--env {exc}"),  # "<id> not found ..., you maybe meant <closest>?"
)


def user_error_line(exc: BaseException) -> str | None:
    """The one line for bad input to rl-zoo3's training (ours, or rl-zoo3's own refusals); None for anything else."""
    if isinstance(exc, UserInputError):
        return f"error: {exc}"
    for exc_type, part, line in ZOO_REFUSALS:
        if isinstance(exc, exc_type) and part in str(exc):
            return f"error: {line.format(exc=exc)}"
    return None


def _print_user_errors(previous_hook: Any) -> Any:
    def excepthook(exc_type: type[BaseException], exc: BaseException, traceback: Any) -> None:
        line = user_error_line(exc)
        if line is not None:
            print(line, file=sys.stderr)
        else:
            previous_hook(exc_type, exc, traceback)

    excepthook.sb3_latent = True  # type: ignore[attr-defined]
    return excepthook


def patch_utils(module: ModuleType) -> None:
    for name, target in ALGORITHMS.items():
        module.ALGOS.setdefault(name, _load(target))
    _patch_store_dict(module)


def _patch_store_dict(module: ModuleType) -> None:
    """Let ``-params key:word`` pass a bare word as a string (``generator_mode:frozen``); name a bad value in one line.

    rl-zoo3's StoreDict evaluates each value as Python in ``rl_zoo3.utils``' namespace, so a bare word that names
    nothing there fails with a NameError and must be quoted twice (``generator_mode:"'frozen'"``). Here such a word
    (an identifier, defined neither in that namespace nor among the builtins) is quoted before rl-zoo3 evaluates
    it; every value that evaluates today evaluates exactly as before.
    """
    store_dict = module.StoreDict
    if getattr(store_dict, "_sb3_latent_patched", False):
        return
    evaluate = store_dict.__call__
    namespace = vars(module)

    def quote_bare_words(self: Any, parser: Any, namespace_: Any, values: Any, option_string: Any = None) -> None:
        evaluated: dict[str, Any] = {}
        for argument in values:
            key, separator, value = argument.partition(":")
            if separator and value.isidentifier() and value not in namespace and not hasattr(builtins, value):
                argument = f"{key}:{value!r}"
            # One value at a time, so that a value Python cannot evaluate (an empty one, say) is named in one
            # argparse error line instead of a traceback from inside argparse.
            try:
                evaluate(self, parser, namespace_, [argument], option_string)
            except Exception as error:
                problem = "no value after the colon" if not value.strip() else f"{value!r} is not a Python value"
                parser.error(
                    f"{option_string} {argument!r}: {problem} ({type(error).__name__}). Write key:value with a Python "
                    """value, e.g. learning_rate:0.001, a string in quotes (learning_rate:"'lin_1e-3'") or """
                    """policy_kwargs:"dict(net_arch=[64, 64])"."""
                )
            evaluated.update(getattr(namespace_, self.dest))
        setattr(namespace_, self.dest, evaluated)

    store_dict.__call__ = quote_bare_words
    store_dict._sb3_latent_patched = True


def patch_hyperparams_opt(module: ModuleType) -> None:
    for name, (sampler, converter) in SAMPLERS.items():
        module.HYPERPARAMS_SAMPLER.setdefault(name, _load(sampler))
        module.HYPERPARAMS_CONVERTER.setdefault(name, _load(converter))


def patch_callbacks(module: ModuleType) -> None:
    """Make rl-zoo3's ParallelTrainCallback reload a model as its own class.

    It saves the model and reloads the copy that trains in a second thread as plain ``SAC`` or ``TQC``
    (a hard-coded list), which would drop a subclass's extra parts, e.g. LatentSAC's action generator.
    While it sets up, the names it checks are bound to the model's own class.
    """
    callback_class = module.ParallelTrainCallback
    if getattr(callback_class, "_sb3_latent_patched", False):
        return
    init_callback = callback_class._init_callback

    def init_callback_with_own_class(self: Any) -> None:
        model_class = type(self.model)
        if model_class in (module.SAC, module.TQC) or not isinstance(self.model, (module.SAC, module.TQC)):
            return init_callback(self)
        base_name = "SAC" if isinstance(self.model, module.SAC) else "TQC"
        base_class = getattr(module, base_name)
        setattr(module, base_name, model_class)
        try:
            init_callback(self)
        finally:
            setattr(module, base_name, base_class)

    callback_class._init_callback = init_callback_with_own_class
    callback_class._sb3_latent_patched = True


def patch_exp_manager(module: ModuleType) -> None:
    manager = module.ExperimentManager
    if getattr(manager, "_sb3_latent_patched", False):
        return
    read_hyperparameters = manager.read_hyperparameters
    setup_experiment = manager.setup_experiment
    preprocess_hyperparams = manager._preprocess_hyperparams
    load_pretrained_agent = manager._load_pretrained_agent

    def read_hyperparameters_with_ours(self: Any) -> Any:
        zoo_default = str(zoo_hyperparams_dir() / f"{self.algo}.yml")
        self.config = resolve_config(self.algo, self.env_name.gym_id, self.config, zoo_default)
        return read_hyperparameters(self)

    def preprocess_hyperparams_checked(self: Any, hyperparams: dict[str, Any]) -> Any:
        # What is left goes to the model's constructor (or to load, with -i): names checked before the run folder.
        processed = preprocess_hyperparams(self, hyperparams)
        from rl_zoo3.utils import ALGOS

        from sb3_latent.common.checks import check_argument_names

        check_argument_names(
            ALGOS[self.algo],
            processed[0],
            f"Correct or remove it in -params, or in the entry for {self.env_name.gym_id} in {self.config}.",
            also=("noise_type", "noise_std"),  # rl-zoo3 turns them into action_noise later
        )
        return processed

    def setup_experiment_with_clear_errors(self: Any) -> Any:
        try:
            return setup_experiment(self)
        except AssertionError as error:
            # SB3 asserts `supported_action_spaces` deep inside the model constructor.
            if "as action spaces but" not in str(error):
                raise
            raise UserInputError(
                f"--algo {self.algo} needs continuous (Box) actions, but {self.env_name.gym_id} has other actions "
                f"({error}). Use an algorithm for discrete actions (ppo, a2c, dqn, qrdqn) or a continuous-action task."
            ) from None

    def load_pretrained_agent_relabelled(self: Any, hyperparams: dict[str, Any], env: Any) -> Any:
        # rl-zoo3's -i reloads <run>/replay_buffer.pkl as it is, so a transfer to another task would train on the
        # source task's rewards. Where the source run names another task, relabel the buffer or refuse.
        model = load_pretrained_agent(self, hyperparams, env)
        if (Path(self.trained_agent).parent / "replay_buffer.pkl").is_file():
            from sb3_latent.transfer.naive import relabel_buffer_for_target

            relabel_buffer_for_target(model, self.trained_agent, self.env_name.gym_id, self.env_kwargs)
        return model

    manager.read_hyperparameters = read_hyperparameters_with_ours
    manager.setup_experiment = setup_experiment_with_clear_errors
    manager._preprocess_hyperparams = preprocess_hyperparams_checked
    manager._load_pretrained_agent = load_pretrained_agent_relabelled
    manager._sb3_latent_patched = True
    # rl-zoo3's training script imports this module before parsing --num-threads, which it applies
    # only when > 0: so this is a default that the flag still overrides.
    set_default_num_threads()
    if not getattr(sys.excepthook, "sb3_latent", False):
        sys.excepthook = _print_user_errors(sys.excepthook)


def register() -> None:
    """Apply every patch now (idempotent). For processes where the start-up hook is not installed."""
    from sb3_latent import _startup

    _startup.install()
    for name in ("rl_zoo3.utils", "rl_zoo3.hyperparams_opt", "rl_zoo3.exp_manager", "rl_zoo3.callbacks"):
        importlib.import_module(name)
