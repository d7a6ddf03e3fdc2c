import os

import pytest
import torch as th

# One SAC update is compute-bound: on a shared 2-core machine one thread per process is fastest.
os.environ.setdefault("OMP_NUM_THREADS", "1")
th.set_num_threads(1)


@pytest.fixture
def zoo_env() -> dict[str, str]:
    """Environment for rl-zoo3 subprocesses: headless, single-threaded, quiet."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
