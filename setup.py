"""Build hooks that setup.cfg cannot express.

Two files must land outside the ``sb3_latent`` package source:

- ``sb3_latent_startup.pth`` (and its PEP 829 twin ``sb3_latent_startup.start``) go to the root of
  site-packages, where Python's ``site`` module runs their one line at start-up. That line installs
  a lazy import hook which registers our tasks with
  gymnasium and our algorithms with rl-zoo3 when (and only when) those modules are imported.
- the top-level ``hyperparams/`` folder (the source of truth) is shipped inside the package as
  ``sb3_latent/hyperparams`` so that a non-editable install finds the YAMLs.

Both editable (``pip install -e .``) and normal installs run ``build_py``; the wheel then carries
whatever sits in ``build_lib``.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_FILE = "sb3_latent_startup.pth"
# Python >= 3.15 (PEP 829) runs the entry point of a .start file named like the .pth file, and then ignores
# the .pth file's import line; older Pythons ignore .start files. Shipping both works on every version.
START_FILE = "sb3_latent_startup.start"
STARTUP_FILES = (PTH_FILE, START_FILE)


class BuildPyWithStartupHook(build_py):
    def run(self) -> None:
        super().run()
        # The .pth file: its name sorts after setuptools' "__editable__*.pth", so in editable mode the
        # package is already importable when our line runs.
        for name in STARTUP_FILES:
            self.copy_file(name, os.path.join(self.build_lib, name), preserve_mode=False)
        if self.editable_mode:
            # An editable wheel ignores build_lib and packs the folder `install` targets instead
            # (setuptools.command.editable_wheel._configure_build).
            install_lib = self.distribution.get_command_obj("install").install_lib
            if install_lib:
                for name in STARTUP_FILES:
                    self.copy_file(name, os.path.join(install_lib, name), preserve_mode=False)
        if not self.editable_mode:
            # Editable installs read the top-level folder directly (see sb3_latent.zoo.hyperparams_dir).
            target = os.path.join(self.build_lib, "sb3_latent", "hyperparams")
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree("hyperparams", target)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        outputs.extend(os.path.join(self.build_lib, name) for name in STARTUP_FILES)
        return outputs


setup(cmdclass={"build_py": BuildPyWithStartupHook})
