"""rl-zoo3's plotting scripts on our runs: rl_zoo3.plots imports, and all_plots reads the evaluations.npz we write."""

import importlib


def test_rl_zoo3_plots_imports():
    # The [plots] extra pins what rliable's arch needs (setup.cfg); a broken pin fails here, on import.
    importlib.import_module("rl_zoo3.plots")
