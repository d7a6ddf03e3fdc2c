"""``python -m sb3_latent.train``: rl-zoo3's ``train`` with our algorithms, tasks and YAMLs.

It takes exactly rl-zoo3's arguments (``--algo``, ``--env``, ``-n``, ``-f``, ``-params``, ``-i``,
``-optimize``, ...). Use it where you would rather not rely on the start-up hook that makes plain
``python -m rl_zoo3.train`` see sb3-latent.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from sb3_latent.envs import register_envs
    from sb3_latent.zoo import register, user_error_line

    register_envs()
    register()
    from rl_zoo3.train import train

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    try:
        train()
    except Exception as error:
        line = user_error_line(error)
        if line is None:
            raise
        sys.exit(line)


if __name__ == "__main__":
    main()
