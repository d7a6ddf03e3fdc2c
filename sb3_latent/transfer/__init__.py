"""Skill transfer from a base task to a target task.

- :func:`finetune` (naive transfer): fine-tune a saved off-policy model on the target task, choosing what to keep:
  the replay buffer (relabelled to the target task), the entropy temperature, the critic, and who acts during
  the warm-up. ``python -m sb3_latent.transfer`` runs it from the command line.
- :func:`latent_transfer`: a LatentSAC on the target task that starts from a source LatentSAC's action generator,
  frozen, fine-tuned, or frozen with a residual action (``mode``), with a fresh latent policy and critic.
- :func:`train_multitask_generator`: one action generator trained on several tasks' pooled data (poster, Figure 1),
  each task with its own LatentSAC. ``python -m sb3_latent.transfer multitask`` trains it and transfers it to a
  new task in one command.

See ``docs/transfer.md``.
"""

from sb3_latent.transfer.latent import (
    TRANSFER_MODES,
    latent_transfer,
    load_generator,
    task_name,
    train_multitask_generator,
)
from sb3_latent.transfer.naive import (
    WARMUPS,
    PolicyWarmup,
    base_algorithm,
    finetune,
    load_source_run,
    reinitialise_critic,
    relabel_replay_buffer,
    reset_entropy_coefficient,
    with_policy_warmup,
)
from sb3_latent.zoo_runs import SourceRun

__all__ = [
    "TRANSFER_MODES",
    "WARMUPS",
    "PolicyWarmup",
    "SourceRun",
    "base_algorithm",
    "finetune",
    "latent_transfer",
    "load_generator",
    "load_source_run",
    "reinitialise_critic",
    "relabel_replay_buffer",
    "reset_entropy_coefficient",
    "task_name",
    "train_multitask_generator",
    "with_policy_warmup",
]
