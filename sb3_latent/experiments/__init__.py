"""The poster's experiments as configuration, run resumably through rl-zoo3's code path.

``python -m sb3_latent.experiments <name> --budget smoke|quick|paper`` trains every run of an
experiment (condition x seed) and draws its figure; see ``docs/experiments.md``.

- :mod:`~sb3_latent.experiments.specs`: experiments, conditions and budgets (pure configuration);
- :mod:`~sb3_latent.experiments.runs`: what a run is and what its folder holds (shared by all the others);
- :mod:`~sb3_latent.experiments.transfers`: named hooks that start a run from a source run;
- :mod:`~sb3_latent.experiments.runner`: one run through rl-zoo3's ExperimentManager, resumable (a worker's entry);
- :mod:`~sb3_latent.experiments.segments`: a run's model built, resumed or transferred, trained and saved;
- :mod:`~sb3_latent.experiments.multitask`: a multi-task source run, one model per task sharing one generator;
- :mod:`~sb3_latent.experiments.checkpoints`: model + replay buffer + VecNormalize checkpoints;
- :mod:`~sb3_latent.experiments.plan`: runs, their checks, folders and dependencies;
- :mod:`~sb3_latent.experiments.backends`: local process pool or Ray, with a progress bar;
- :mod:`~sb3_latent.experiments.report`: figures (bootstrap CIs) and summary tables.

Importing this package is light (no torch): only the configuration is loaded.
"""

from sb3_latent.experiments.specs import (
    BUDGETS,
    EXPERIMENTS,
    Budget,
    Condition,
    Experiment,
    MergeDict,
    Panel,
    Source,
    TargetEntropyScale,
)

__all__ = [
    "BUDGETS",
    "EXPERIMENTS",
    "Budget",
    "Condition",
    "Experiment",
    "MergeDict",
    "Panel",
    "Source",
    "TargetEntropyScale",
]
