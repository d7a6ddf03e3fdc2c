"""The start-up hook that makes our tasks and algorithms visible in every Python process.

``sb3_latent_startup.pth`` (installed at the root of site-packages) calls :func:`install` when
Python starts. Gymnasium 1.x and rl-zoo3 2.9 have no plugin entry points, and SB3's
``SubprocVecEnv`` workers (forkserver), process pools and Ray workers import nothing of ours, so a
hook at start-up is the one place that reaches them all.

It must cost nothing at start-up: it imports only the standard library and adds one meta-path
finder. When one of the watched modules below *finishes* loading, the finder calls our patch for
it. So torch, gymnasium and rl-zoo3 are never imported because of us.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any

# module that finished loading -> "module:function" that patches it (called with the module).
POST_IMPORT_PATCHES = {
    "gymnasium": "sb3_latent.envs.registration:register_envs_hook",
    "rl_zoo3.utils": "sb3_latent.zoo:patch_utils",
    "rl_zoo3.hyperparams_opt": "sb3_latent.zoo:patch_hyperparams_opt",
    "rl_zoo3.exp_manager": "sb3_latent.zoo:patch_exp_manager",
    "rl_zoo3.callbacks": "sb3_latent.zoo:patch_callbacks",
}


def _run_patch(module: ModuleType) -> None:
    target = POST_IMPORT_PATCHES[module.__name__]
    module_name, function_name = target.split(":")
    try:
        patch = getattr(importlib.import_module(module_name), function_name)
        patch(module)
    except Exception as error:  # never break gymnasium or rl-zoo3 for users of neither of our features
        import warnings

        warnings.warn(f"sb3-latent could not register itself with {module.__name__}: {error!r}", stacklevel=2)


class _PatchingLoader(importlib.abc.Loader):
    """Runs the real loader, then our patch. Everything else is delegated to the real loader."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _run_patch(module)

    def __getattr__(self, name: str) -> Any:
        # get_resource_reader, get_data, is_package, ... keep working through the wrapper.
        return getattr(self._loader, name)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in POST_IMPORT_PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader)  # type: ignore[assignment]
                return spec
        return None


def install() -> None:
    """Install the finder once; patch the watched modules that are already loaded."""
    if any(isinstance(finder, _PostImportFinder) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _PostImportFinder())
    for name in POST_IMPORT_PATCHES:
        module = sys.modules.get(name)
        if module is not None:
            _run_patch(module)
