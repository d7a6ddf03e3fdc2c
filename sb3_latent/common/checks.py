"""Type tests for the argument checks (LatentSAC._check_options, the policy, the generator).

A bool is an int in Python, and YAML or numpy hand over numpy scalars: these tests say what an option's value may be
before it is compared, so that a wrong type gets our message rather than a TypeError from the comparison.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

import numpy as np


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def is_finite(value: Any) -> TypeGuard[float]:
    return is_number(value) and math.isfinite(value)
