"""Golden weights: LatentSAC's update, pinned bit for bit.

Each case trains 600 Pendulum-v1 steps with seed 0 on one CPU thread and hashes the latent policy's, the critic's
and the action generator's weights (SHA-256 of their state dicts). A refactor of ``LatentSAC.train`` must keep every
hash: the same losses, in the same order, with the same random draws.

Bitwise results depend on the torch version and on the CPU kernels torch picks, so the expected values are keyed on
both. Elsewhere the test skips, naming the key it would need. To pin a new key, run
``pytest tests/test_golden.py -rs`` on the commit being pinned and add the hashes the failure message prints.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import torch as th
from torch import nn

from sb3_latent import LatentSAC
from sb3_latent.common import ActionGenerator
from sb3_latent.common.action_generator import PREVIOUS_DEFAULTS

TINY = dict(net_arch=[64, 64], generator_net_arch=[32, 32])
BASE: dict[str, Any] = dict(learning_starts=100, batch_size=64, generator_warmup_steps=50, seed=0, device="cpu")
STEPS = 600
# The defaults before the latent ablation (residual decoder on [-2, 2]^d): the options' cases keep them, and with
# them the hashes they were pinned with.
PREVIOUS = dict(TINY, **PREVIOUS_DEFAULTS)

# case -> LatentSAC arguments on top of BASE ("transfer" cases get a saved generator as action_generator=).
CASES: dict[str, dict[str, Any]] = {
    "default": {},  # sac-residual on [-1, 1]^d
    "previous_default": dict(policy_kwargs=PREVIOUS),
    "learned_prior_prior_kl": dict(policy_kwargs=dict(PREVIOUS, prior="learned"), policy_regularizer="prior_kl"),
    "generator_train_freq_2": dict(policy_kwargs=PREVIOUS, generator_train_freq=2),
    "finetune": dict(generator_mode="finetune"),
    "frozen": dict(generator_mode="frozen"),
    "residual": dict(generator_mode="residual"),
    "actor_trains_generator": dict(policy_kwargs=PREVIOUS, actor_trains_generator=True),
    "flow": dict(policy_kwargs=dict(TINY, decoder="flow", latent_bound=PREVIOUS_DEFAULTS["latent_bound"])),
}
TRANSFER_CASES = ("finetune", "frozen", "residual")

# (torch.__version__, torch.backends.cpu.get_cpu_capability()) -> case -> (latent policy, critic, generator) hashes
GOLDEN: dict[tuple[str, str], dict[str, tuple[str, str, str]]] = {
    # pinned at d5ec7b5 (before the train() restructure), AMD EPYC
    ("2.13.0+cpu", "AVX512"): {
        # the default since the latent ablation: pinned as the "sac_residual" case when that decoder was added
        "default": ("9f870abd81542d8c", "639b230207830748", "eba0daf51c58ede6"),
        # the default until then: the hashes pinned as "default" at d5ec7b5
        "previous_default": ("a894317cd4a9c79d", "c54c07ee224b5fc0", "9d755bb00958463b"),
        "learned_prior_prior_kl": ("0b82b6d19e0dde53", "ad42e14380870465", "6e425616bd7eef59"),
        "generator_train_freq_2": ("79d92ffcba8f7a02", "acac3502380cc4f2", "cecc000663e29529"),
        "finetune": ("0723c4c2e61c848e", "02d9e731be4c9ce5", "9015c2b95bf5fd60"),
        "frozen": ("45bd9c898b9e0bb6", "6a10b8312bf145b8", "7cd79b07f838f9de"),
        "residual": ("98720988de1f6ef5", "ef2236702a22e11c", "7cd79b07f838f9de"),
        "actor_trains_generator": ("3e86ad66497cca26", "92d8e93d1445c46b", "e14eddadce165e77"),
        # pinned when added (the flow generator)
        "flow": ("8956b704bc198656", "a7bdf4660419062e", "9dd61c196741c21f"),
    },
}


def state_hash(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def saved_generator(path: str) -> str:
    """A generator file with seeded, non-trivial weights (its residual warp is not the zero it starts from)."""
    with th.random.fork_rng():
        th.manual_seed(1)
        generator = ActionGenerator((3,), 1, net_arch=[32, 32], **PREVIOUS_DEFAULTS)
        for parameter in generator.parameters():
            nn.init.normal_(parameter, std=0.3)
    generator.save(path)
    return path


def golden_key() -> tuple[str, str]:
    return th.__version__, th.backends.cpu.get_cpu_capability()


@pytest.mark.parametrize("case", list(CASES))
def test_golden_weights(case: str, tmp_path) -> None:
    key = golden_key()
    kwargs: dict[str, Any] = {**BASE, "policy_kwargs": TINY, **CASES[case]}
    if case in TRANSFER_CASES:
        kwargs["action_generator"] = saved_generator(str(tmp_path / "generator.pt"))
        kwargs["policy_kwargs"] = dict(net_arch=TINY["net_arch"])  # the generator's architecture comes from its file
    threads = th.get_num_threads()
    th.set_num_threads(1)
    try:
        model = LatentSAC("MlpPolicy", "Pendulum-v1", **kwargs)
        model.learn(STEPS)
    finally:
        th.set_num_threads(threads)
    hashes = (state_hash(model.actor), state_hash(model.critic), state_hash(model.action_generator))
    expected = GOLDEN.get(key)
    if expected is None:
        pytest.skip(f"no golden weights for torch {key[0]} with CPU capability {key[1]} (this run: {case}={hashes})")
    assert hashes == expected[case], f"{case}: {hashes} != pinned {expected[case]} for {key}"
