"""The poster's experiments as configuration (SBX style): an experiment is a list of conditions.

A :class:`Condition` is an algorithm, an env id and hyperparameter overrides on top of the zoo YAML
(``hyperparams/<algo>.yml``, or rl-zoo3's own), with optional env kwargs and an optional
:class:`Source`: the run of another condition (same seed) whose saved model initialises this one
through a named transfer hook (:mod:`sb3_latent.experiments.transfers`). Nothing here imports an
algorithm: algorithms are zoo names and transfers are hook names, checked when the runs are planned
(:func:`sb3_latent.experiments.plan.plan_runs`), so importing the configuration stays light.

A :class:`Budget` says how long each run trains and how it is evaluated; it may lower some
hyperparameters so that short runs still learn (``smoke``, ``quick``). The order of precedence is
YAML < budget < condition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sb3_latent.common.action_generator import PREVIOUS_DEFAULTS

# Algorithms that learn from a replay buffer (budget overrides such as learning_starts apply to them).
OFF_POLICY_ALGOS = frozenset({"sac", "td3", "ddpg", "tqc", "crossq", "latent_sac"})


@dataclass(frozen=True)
class MergeDict:
    """A hyperparameter override merged into the YAML's dict instead of replacing it.

    rl-zoo3's ``-params policy_kwargs:...`` replaces the whole entry; ``MergeDict(net_arch=[16])`` keeps the
    YAML's other policy kwargs (``log_std_init``, ``latent_dim``, ...) and only sets ``net_arch``.
    """

    items: tuple[tuple[str, Any], ...]

    def __init__(self, **items: Any) -> None:
        object.__setattr__(self, "items", tuple(sorted(items.items())))

    def as_dict(self) -> dict[str, Any]:
        return dict(self.items)

    def __repr__(self) -> str:
        return "MergeDict(" + ", ".join(f"{key}={value!r}" for key, value in self.items) + ")"


@dataclass(frozen=True)
class TargetEntropyScale:
    """``target_entropy`` as a multiple of the algorithm's default, resolved when the run starts.

    The default is ``-dim``: the action dimension for SAC (6 on HalfCheetah), the latent dimension for
    LatentSAC (``policy_kwargs["latent_dim"]``, itself the action dimension unless the YAML says otherwise).
    So ``TargetEntropyScale(2.0)`` is -12 for SAC on HalfCheetah.
    """

    factor: float


@dataclass(frozen=True)
class Source:
    """This condition starts from the run of ``condition`` with the same seed, through the transfer hook ``transfer``.

    :param condition: name of the source condition, in the same experiment
    :param transfer: name of a hook in :data:`sb3_latent.experiments.transfers.TRANSFERS`
    :param kwargs: keyword arguments for the hook (e.g. the options of ``sb3_latent.transfer.finetune``)
    """

    condition: str
    transfer: str
    kwargs: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Condition:
    """One line of a figure: an algorithm on a task with hyperparameter overrides, trained over several seeds.

    :param name: short name, used as folder name (``runs/<name>/<fingerprint>/seed<k>``) and in ``--conditions``
    :param algo: rl-zoo3 algorithm name (``sac``, ``td3``, ``latent_sac``, ...)
    :param env_id: gymnasium id
    :param hyperparams: overrides of the YAML entry (values as in the YAML, or :class:`MergeDict`,
        :class:`TargetEntropyScale`)
    :param env_kwargs: keyword arguments of the env (train and eval)
    :param source: the run this one starts from, if any
    :param label: legend label (default: ``name``)
    :param multitask: other tasks, as ``(env id, env kwargs)``, each trained by its own LatentSAC alongside this
        condition's, all sharing one action generator (poster, Figure 1; see :mod:`sb3_latent.experiments.multitask`).
        This condition's own task is the one evaluated, drawn and transferred from
    """

    name: str
    algo: str
    env_id: str
    hyperparams: dict[str, Any] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    source: Source | None = None
    label: str | None = None
    multitask: tuple[tuple[str, dict[str, Any]], ...] = ()

    @property
    def display_name(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class Panel:
    """One subplot of a figure: the conditions drawn together, on the same task."""

    title: str
    conditions: tuple[str, ...]


@dataclass(frozen=True)
class Experiment:
    """A figure of the poster: its conditions and how they are drawn."""

    name: str
    title: str
    figure: str
    conditions: tuple[Condition, ...]
    panels: tuple[Panel, ...]

    def condition(self, name: str) -> Condition:
        for condition in self.conditions:
            if condition.name == name:
                return condition
        raise KeyError(f"{self.name} has no condition {name!r}; it has {', '.join(c.name for c in self.conditions)}.")

    def with_sources(self, names: list[str]) -> list[Condition]:
        """The named conditions and, before them, every condition they start from (in declaration order)."""
        wanted: set[str] = set()
        todo = list(names)
        while todo:
            condition = self.condition(todo.pop())
            if condition.name not in wanted:
                wanted.add(condition.name)
                if condition.source is not None:
                    todo.append(condition.source.condition)
        return [condition for condition in self.conditions if condition.name in wanted]


@dataclass(frozen=True)
class Budget:
    """How long each run trains and how it is evaluated.

    :param name: ``smoke``, ``quick`` or ``paper``
    :param n_timesteps: env steps per run (for a transfer run: on the target task, after the source's)
    :param eval_freq: evaluate every this many env steps (and at step 0)
    :param n_eval_episodes: episodes per evaluation, deterministic policy, separate env
    :param checkpoint_freq: save model, replay buffer and VecNormalize statistics every this many steps
    :param seeds: default number of seeds (``--seeds`` overrides)
    :param threshold: return for the "steps to threshold" column of the summary table
    :param off_policy: overrides for replay-buffer algorithms
    :param on_policy: overrides for the others (PPO)
    :param per_algo: extra overrides for one algorithm
    :param env_kwargs: env kwargs for every run (``smoke`` shortens episodes)
    :param description: one line for the docs and ``--help``
    """

    name: str
    n_timesteps: int
    eval_freq: int
    n_eval_episodes: int
    checkpoint_freq: int
    seeds: int
    threshold: float
    off_policy: dict[str, Any] = field(default_factory=dict)
    on_policy: dict[str, Any] = field(default_factory=dict)
    per_algo: dict[str, dict[str, Any]] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def hyperparams(self, algo: str) -> dict[str, Any]:
        base = self.off_policy if algo in OFF_POLICY_ALGOS else self.on_policy
        return {**base, **self.per_algo.get(algo, {})}


BUDGETS: dict[str, Budget] = {
    "smoke": Budget(
        name="smoke",
        n_timesteps=400,
        eval_freq=200,
        n_eval_episodes=2,
        checkpoint_freq=200,
        seeds=2,
        threshold=0.0,
        # Tiny networks, learning from step 100, 100-step episodes: seconds per run, every code path runs.
        off_policy={"learning_starts": 100, "batch_size": 32, "policy_kwargs": MergeDict(net_arch=[16])},
        on_policy={"n_steps": 64, "batch_size": 32, "n_epochs": 2, "policy_kwargs": MergeDict(net_arch=[16])},
        per_algo={
            "latent_sac": {
                "generator_warmup_steps": 10,
                "policy_kwargs": MergeDict(net_arch=[16], generator_net_arch=[16]),
            }
        },
        env_kwargs={"max_episode_steps": 100},
        description="seconds per run: 400 steps, tiny networks, 100-step episodes (tests)",
    ),
    "quick": Budget(
        name="quick",
        n_timesteps=30_000,
        eval_freq=2_500,
        n_eval_episodes=5,
        checkpoint_freq=5_000,
        seeds=3,
        threshold=1_000.0,
        # The YAMLs' 10k random warm-up steps would be a third of the run: start learning at 5k.
        off_policy={"learning_starts": 5_000},
        description="hours on a 2-core CPU: 30k steps, learning from 5k, 5-episode evaluation every 2.5k, 3 seeds",
    ),
    "paper": Budget(
        name="paper",
        n_timesteps=1_000_000,
        eval_freq=10_000,
        n_eval_episodes=5,
        checkpoint_freq=50_000,
        seeds=5,
        threshold=5_000.0,
        description="the poster's protocol: 1M steps with the zoo's tuned hyperparameters unchanged, 5 seeds",
    ),
}

FORWARD = "HalfCheetah-v4"
BACKWARD = "HalfCheetahBackward-v4"
TASK = "HalfCheetahTask-v4"  # direction and target_speed as env kwargs
# Conditions that need LatentSAC, registered with rl-zoo3 as latent_sac with hyperparams/latent_sac.yml.
LATENT_SAC = "latent_sac"


def _baselines() -> Experiment:
    algos = (("sac", "SAC"), ("td3", "TD3"), ("ddpg", "DDPG"), ("ppo", "PPO"), ("tqc", "TQC"), (LATENT_SAC, "LatentSAC"))
    conditions = tuple(Condition(name, name, FORWARD, label=label) for name, label in algos)
    return Experiment(
        name="baselines",
        title="Deep RL algorithms on HalfCheetah-v4",
        figure="Figure 7",
        conditions=conditions,
        panels=(Panel(f"{FORWARD} (base task)", tuple(c.name for c in conditions)),),
    )


def _naive_transfer() -> Experiment:
    conditions = (
        Condition("scratch", "sac", BACKWARD, label="SAC from scratch"),
        Condition("pretrain-forward", "sac", FORWARD, label="SAC on the base task (source)"),
        Condition(
            "finetuned",
            "sac",
            BACKWARD,
            source=Source("pretrain-forward", "finetune"),
            label="SAC pretrained forward, fine-tuned",
        ),
    )
    return Experiment(
        name="naive-transfer",
        title="Naive transfer: fine-tuning a forward-running SAC policy on the backward task",
        figure="Figure 4",
        conditions=conditions,
        panels=(
            Panel(f"{BACKWARD} (target task)", ("scratch", "finetuned")),
            Panel(f"{FORWARD} (source runs)", ("pretrain-forward",)),
        ),
    )


def _latent_transfer() -> Experiment:
    conditions = (
        Condition("scratch", LATENT_SAC, BACKWARD, label="LatentSAC from scratch"),
        Condition("pretrain-forward", LATENT_SAC, FORWARD, label="LatentSAC on the base task (source)"),
        Condition(
            "frozen",
            LATENT_SAC,
            BACKWARD,
            source=Source("pretrain-forward", "generator-frozen"),
            label="transferred generator, frozen",
        ),
        Condition(
            "finetuned",
            LATENT_SAC,
            BACKWARD,
            source=Source("pretrain-forward", "generator-finetuned"),
            label="transferred generator, fine-tuned",
        ),
        Condition(
            "residual",
            LATENT_SAC,
            BACKWARD,
            source=Source("pretrain-forward", "generator-residual"),
            label="transferred generator, residual",
        ),
        Condition(
            "pretrain-multitask",
            LATENT_SAC,
            FORWARD,
            label="multi-task generator (source, forward task shown)",
            # Two forward skills, running flat out and trotting at 1.5 m/s, share one generator; the backward
            # target task stays unseen.
            multitask=((TASK, {"target_speed": 1.5}),),
        ),
        Condition(
            "multitask",
            LATENT_SAC,
            BACKWARD,
            source=Source("pretrain-multitask", "generator-finetuned"),
            label="multi-task generator, fine-tuned",
        ),
    )
    return Experiment(
        name="latent-transfer",
        title="Latent transfer: reusing the action generator of the forward task on the backward task",
        figure="Figure 5",
        conditions=conditions,
        panels=(
            Panel(f"{BACKWARD} (target task)", ("scratch", "frozen", "finetuned", "residual", "multitask")),
            Panel("Source runs", ("pretrain-forward", "pretrain-multitask")),
        ),
    )


# Target entropies as multiples of the default (-action_dim for SAC, -latent_dim for LatentSAC).
TARGET_ENTROPY_FACTORS = (2.0, 1.0, 0.5)


def _target_entropy() -> Experiment:
    conditions: list[Condition] = []
    panels: list[Panel] = []
    for algo, label in (("sac", "SAC"), (LATENT_SAC, "LatentSAC")):
        names = []
        for factor in TARGET_ENTROPY_FACTORS:
            name = f"{algo}-default" if factor == 1.0 else f"{algo}-x{factor:g}"
            # The default is left to the YAML ("auto"), so that condition is exactly the baseline run.
            hyperparams = {} if factor == 1.0 else {"target_entropy": TargetEntropyScale(factor)}
            suffix = "default" if factor == 1.0 else f"{factor:g} x default"
            conditions.append(
                Condition(name, algo, FORWARD, hyperparams=hyperparams, label=f"{label}, target entropy {suffix}")
            )
            names.append(name)
        default = "-action_dim = -6" if algo == "sac" else "-latent_dim"
        panels.append(Panel(f"{label} on {FORWARD} (default {default})", tuple(names)))
    return Experiment(
        name="target-entropy",
        title="Target entropy ablation",
        figure="Figure 6",
        conditions=tuple(conditions),
        panels=tuple(panels),
    )


def _prior() -> Experiment:
    conditions = (
        Condition("standard-prior", LATENT_SAC, FORWARD, label="p(z) = N(0, I) (default)"),
        Condition(
            "learned-prior",
            LATENT_SAC,
            FORWARD,
            hyperparams={"policy_kwargs": MergeDict(prior="learned")},
            label="learned prior p(z|s)",
        ),
        Condition("kl-0", LATENT_SAC, FORWARD, hyperparams={"kl_weight": 0.0}, label="no KL to the prior"),
        Condition("kl-0.1", LATENT_SAC, FORWARD, hyperparams={"kl_weight": 0.1}, label="KL weight 0.1"),
        Condition("kl-2", LATENT_SAC, FORWARD, hyperparams={"kl_weight": 2.0}, label="KL weight 2"),
    )
    return Experiment(
        name="prior",
        title="Variational prior and KL-to-prior ablation (LatentSAC)",
        figure="poster: future work",
        conditions=conditions,
        panels=(
            Panel("Prior", ("standard-prior", "learned-prior")),
            Panel("KL weight (default: LatentSAC's kl_weight)", ("kl-0", "kl-0.1", "standard-prior", "kl-2")),
        ),
    )


# The latent ablation's four differences between SAC and LatentSAC's defaults (issue "LatentSAC learns as fast as
# SAC"), each a set of LatentSAC overrides. HalfCheetah has 6 action (= latent) dimensions.
HALFCHEETAH_DIM = 6
# SAC's target entropy -d on the unit code u = z / latent_bound, written on z in [-2, 2]^d: -d + d ln 2.
UNIT_CODE_TARGET_ENTROPY = -HALFCHEETAH_DIM * (1.0 - math.log(2.0))
# (name, what it adds), in the order the ladder adds them.
ABLATION_DIFFERENCES = (
    ("parametrisation", "latent_bound 2, decoder tanh(1.5 z)"),
    ("entropy", "target entropy -d on z"),
    ("noise", "decoder noise when acting"),
    ("elbo", "generator trained by the ELBO"),
)


def _rung_hyperparams(included: set[str]) -> dict[str, Any]:
    """LatentSAC overrides with exactly the ``included`` differences from SAC (all four: the previous defaults)."""
    policy_kwargs: dict[str, Any] = {}
    hyperparams: dict[str, Any] = {}
    if "parametrisation" not in included:
        policy_kwargs.update(decoder="identity", latent_bound=1.0)
    else:
        policy_kwargs.update(PREVIOUS_DEFAULTS)  # the ablation's subject: the defaults it was run against
        if "entropy" not in included:  # with latent_bound 1 the unit code is z: the two targets coincide
            hyperparams["target_entropy"] = UNIT_CODE_TARGET_ENTROPY
    if "noise" not in included:
        policy_kwargs["decoder_noise"] = False
    if "elbo" not in included:
        hyperparams["generator_mode"] = "fixed"
    if policy_kwargs:
        hyperparams["policy_kwargs"] = MergeDict(**policy_kwargs)
    return hyperparams


# Candidate fixes, from the previous default: SAC's own squashing under the generator's learned, bounded warp
# (decoder="sac-residual", a = tanh(atanh(z / b) + 0.5 tanh f(s, z))), on the unit box (latent_bound 1), where
# the target entropy -d on z is SAC's own at the start (z = tanh(u) is then SAC's action). With and without the
# decoder's noise when acting. The generator is still trained by the ELBO and acting still decodes through it.
# "candidate" became the default (its settings, spelt out here, are the defaults' own: the same runs).
CANDIDATES = {
    "candidate": ({"decoder": "sac-residual", "latent_bound": 1.0}, "SAC's squashing + learned warp (the default)"),
    "candidate-without-noise": (
        {"decoder": "sac-residual", "latent_bound": 1.0, "decoder_noise": False},
        "candidate without decoder noise when acting",
    ),
}


def _latent_ablation() -> Experiment:
    names = [name for name, _ in ABLATION_DIFFERENCES]
    conditions = [Condition("sac", "sac", BACKWARD, label="SAC")]
    ladder = []
    for index in range(len(names) + 1):
        included = set(names[:index])
        name = "rung0-sac-equivalent" if index == 0 else f"rung{index}-{names[index - 1]}"
        label = "LatentSAC as SAC" if index == 0 else f"+ {ABLATION_DIFFERENCES[index - 1][1]}"
        if index == len(names):
            label += " (the previous default)"
        conditions.append(Condition(name, LATENT_SAC, BACKWARD, hyperparams=_rung_hyperparams(included), label=label))
        ladder.append(name)
    leave_one_out = []
    for name, adds in ABLATION_DIFFERENCES[:-1]:  # default minus the ELBO is the last rung but one
        condition = Condition(
            f"without-{name}",
            LATENT_SAC,
            BACKWARD,
            hyperparams=_rung_hyperparams(set(names) - {name}),
            label=f"previous default without {adds}",
        )
        conditions.append(condition)
        leave_one_out.append(condition.name)
    for name, (policy_kwargs, label) in CANDIDATES.items():
        hyperparams = {"policy_kwargs": MergeDict(**policy_kwargs)}
        conditions.append(Condition(name, LATENT_SAC, BACKWARD, hyperparams=hyperparams, label=label))
    # The final check (10 seeds) also runs on the base task; on the target task it is the rows above.
    candidate_kwargs, candidate_label = CANDIDATES["candidate"]
    conditions += [
        Condition("sac-forward", "sac", FORWARD, label="SAC"),
        Condition(
            "candidate-forward",
            LATENT_SAC,
            FORWARD,
            hyperparams={"policy_kwargs": MergeDict(**candidate_kwargs)},
            label=candidate_label,
        ),
    ]
    return Experiment(
        name="latent-ablation",
        title="From SAC to LatentSAC, one difference at a time (HalfCheetahBackward-v4; the final check also forward)",
        figure="LatentSAC parity",
        conditions=tuple(conditions),
        panels=(
            Panel("Ladder: each rung adds one difference", ("sac", *ladder)),
            Panel("Leave one out: the previous default without one difference", ("sac", ladder[-1], *leave_one_out)),
            Panel("Candidate fixes", ("sac", ladder[-1], *CANDIDATES)),
            Panel(f"Final check on {FORWARD}", ("sac-forward", "candidate-forward")),
        ),
    )


def _flow_generator() -> Experiment:
    # Both on the latent box [-2, 2]^d of the previous defaults, the ones this comparison was run under.
    conditions = (
        Condition(
            "residual",
            LATENT_SAC,
            FORWARD,
            hyperparams={"policy_kwargs": MergeDict(**PREVIOUS_DEFAULTS)},
            label="residual decoder, CVAE (the previous default)",
        ),
        Condition(
            "flow",
            LATENT_SAC,
            FORWARD,
            hyperparams={"policy_kwargs": MergeDict(decoder="flow", latent_bound=PREVIOUS_DEFAULTS["latent_bound"])},
            label="flow generator, exact likelihood",
        ),
    )
    return Experiment(
        name="flow-generator",
        title="A normalizing-flow action generator against the residual decoder (LatentSAC)",
        figure="poster: future work",
        conditions=conditions,
        panels=(Panel(FORWARD, ("residual", "flow")),),
    )


EXPERIMENTS: dict[str, Experiment] = {
    experiment.name: experiment
    for experiment in (
        _baselines(),
        _naive_transfer(),
        _latent_transfer(),
        _target_entropy(),
        _prior(),
        _latent_ablation(),
        _flow_generator(),
    )
}
