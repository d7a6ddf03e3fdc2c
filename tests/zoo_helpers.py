"""Helpers shared by the tests that run rl-zoo3 and our CLIs in subprocesses."""

import json
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

# Headless, single-threaded, quiet.
SUBPROCESS_ENV = {"OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl", "PYTHONWARNINGS": "ignore::DeprecationWarning"}


def run_python(command: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run `python <command>` in cwd; fail the test with its output unless it exits 0 (or check=False)."""
    env = env if env is not None else {**os.environ, **SUBPROCESS_ENV}
    result = subprocess.run([sys.executable, *shlex.split(command)], capture_output=True, text=True, env=env, cwd=cwd)
    if check and result.returncode != 0:
        pytest.fail(f"python {command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def n_updates(model_path: Path) -> int:
    """Gradient steps a saved SB3 model had taken."""
    with zipfile.ZipFile(model_path) as archive:
        return int(json.loads(archive.read("data"))["_n_updates"])
