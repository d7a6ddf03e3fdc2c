"""Skill transfer from a base task to a target task.

- :func:`finetune` (naive transfer): fine-tune a saved off-policy model on the target task, choosing what to keep:
  the replay buffer (relabelled to the target task), the entropy temperature, the critic, and who acts during
  the warm-up. ``python -m sb3_latent.transfer`` runs it from the command line.

See ``docs/transfer.md``.
"""

from sb3_latent.transfer.naive import (
    WARMUPS,
    PolicyWarmup,
    SourceRun,
    base_algorithm,
    finetune,
    load_source_run,
    reinitialise_critic,
    relabel_replay_buffer,
    reset_entropy_coefficient,
    with_policy_warmup,
)

__all__ = [
    "WARMUPS",
    "PolicyWarmup",
    "SourceRun",
    "base_algorithm",
    "finetune",
    "load_source_run",
    "reinitialise_critic",
    "relabel_replay_buffer",
    "reset_entropy_coefficient",
    "with_policy_warmup",
]
