"""Type tests for the argument checks (LatentSAC._check_options, the policy, the generator), and the check of
argument names.

A bool is an int in Python, and YAML or numpy hand over numpy scalars: these tests say what an option's value may be
before it is compared, so that a wrong type gets our message rather than a TypeError from the comparison.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Iterable
from typing import Any, TypeGuard

import numpy as np

from sb3_latent.errors import UserInputError


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def is_finite(value: Any) -> TypeGuard[float]:
    return is_number(value) and math.isfinite(value)


def check_argument_names(algorithm_class: type, names: Iterable[str], fix: str, also: Iterable[str] = ()) -> None:
    """Refuse a name that ``algorithm_class(...)`` does not take (nor one of ``also``), before an env or folder is made.

    A constructor fails on one only after the env is built (rl-zoo3 has made the run folder by then), and SB3's
    ``load(path, **kwargs)`` sets any name as an attribute, so a misspelt override (rl-zoo3's ``-i``, naive transfer)
    would be ignored without a word. ``fix`` says where the name came from, e.g. "Correct or remove it in -params.".
    """
    parameters = inspect.signature(algorithm_class).parameters  # the constructor's, without self
    if any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters.values()):
        return  # takes any name: nothing to check against
    known = set(parameters) | set(also)
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UserInputError(f"{algorithm_class.__name__} takes no argument {name!r}{hint}. {fix}")
