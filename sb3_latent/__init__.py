"""sb3-latent: latent-action skill transfer for Stable-Baselines3 and the RL Zoo.

This module is imported at every Python start by the startup hook (``sb3_latent_startup.pth``), so
it stays light: the algorithms are loaded on first attribute access (PEP 562), and nothing here
imports torch, gymnasium or rl-zoo3.
"""

import importlib
import sys
from typing import Any

from sb3_latent.version import __version__

# name -> module that defines it; loaded on first access.
_LAZY_ATTRIBUTES = {
    "LatentSAC": "sb3_latent.latent_sac",
}

__all__ = ["__version__", *_LAZY_ATTRIBUTES]


def __getattr__(name: str) -> Any:
    if name in _LAZY_ATTRIBUTES:
        return getattr(importlib.import_module(_LAZY_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'sb3_latent' has no attribute {name!r}")


# `gym.make("sb3_latent:HalfCheetahBackward-v4")` imports this module and expects the ids to exist
# afterwards. gymnasium is loaded by then, so registering costs nothing extra.
if "gymnasium" in sys.modules:
    from sb3_latent.envs import register_envs

    register_envs()
