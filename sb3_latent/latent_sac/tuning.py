"""Optuna sampler of LatentSAC hyperparameters for rl-zoo3's ``--optimize`` (modelled on ``sample_sac_params``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sb3_latent.common.action_generator import DEFAULT_DECODER

if TYPE_CHECKING:  # optuna and rl-zoo3 are only needed when tuning
    import optuna


def sample_latent_sac_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """
    Sampler for LatentSAC hyperparams: SAC's search space plus the latent policy and the action generator.

    :param trial: the Optuna trial
    :param n_actions: action dimension (the default latent size)
    :param n_envs: number of environments (unused, as in ``sample_sac_params``)
    :param additional_args: rl-zoo3's extra arguments (``using_her_replay_buffer``, ``her_kwargs``)
    :return: keyword arguments of ``LatentSAC``
    """
    from rl_zoo3.hyperparams_opt import sample_her_params

    # ---- SAC's part (same names and ranges as rl-zoo3's sample_sac_params)
    one_minus_gamma = trial.suggest_float("one_minus_gamma", 0.0001, 0.03, log=True)
    # From 2**5=32 to 2**11=2048
    batch_size_pow = trial.suggest_int("batch_size_pow", 2, 11)
    trial.suggest_float("learning_rate", 1e-5, 0.002, log=True)
    trial.suggest_int("train_freq", 1, 10)
    # Polyak coeff
    trial.suggest_float("tau", 0.001, 0.08, log=True)
    trial.suggest_categorical("net_arch", ["small", "medium", "big"])

    # ---- Latent policy and action generator
    # The residual (support-preserving) decoders and the flow need latent_dim == n_actions (its default); the plain
    # CVAE decoder takes any size. The latent box keeps its default (1).
    decoder = trial.suggest_categorical("decoder", ["sac-residual", "residual", "mlp", "flow"])
    if decoder == "mlp":
        trial.suggest_categorical("latent_dim", [2, 4, 6, 8, 12])
    trial.suggest_float("kl_weight", 1e-3, 1.0, log=True)
    trial.suggest_float("generator_learning_rate", 1e-5, 3e-3, log=True)
    trial.suggest_categorical("generator_net_arch", ["tiny", "small", "medium"])
    if decoder != "flow":  # a state-conditioned flow absorbs a learned prior: it takes the standard one only
        trial.suggest_categorical("prior", ["standard", "learned"])
    # Target entropy of pi(z|s) per latent dimension (the default is -1 per dimension)
    trial.suggest_float("target_entropy_per_dim", -3.0, 0.5)

    trial.set_user_attr("gamma", 1 - one_minus_gamma)
    trial.set_user_attr("batch_size", 2**batch_size_pow)

    sampled = dict(trial.params)
    if additional_args.get("using_her_replay_buffer", False):
        sampled = sample_her_params(trial, sampled, additional_args["her_kwargs"])
    return convert_latent_sac_params(sampled | {"n_actions": n_actions})


def convert_latent_sac_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """
    Turn sampled (or stored Optuna trial) parameters into LatentSAC's hyperparameters.

    rl-zoo3 calls it on a stored trial's parameters (``--storage ... --study-name ... --trial-id``).

    :param sampled_params: the trial's parameters; ``n_actions`` (optional) sizes the default latent code
    :return: keyword arguments of ``LatentSAC``
    """
    from rl_zoo3.hyperparams_opt import convert_offpolicy_params

    params = dict(sampled_params)
    n_actions = params.pop("n_actions", None)
    decoder = params.pop("decoder", DEFAULT_DECODER)
    latent_dim = params.pop("latent_dim", None)
    generator_net_arch = params.pop("generator_net_arch", "small")
    prior = params.pop("prior", "standard")
    target_entropy_per_dim = params.pop("target_entropy_per_dim", None)
    hyperparams = convert_offpolicy_params(params)  # SAC's part: gamma, batch size, net_arch, train_freq
    if latent_dim is None:
        latent_dim = n_actions  # the residual decoder's (and LatentSAC's default) latent size
    if target_entropy_per_dim is not None and latent_dim is not None:
        hyperparams["target_entropy"] = target_entropy_per_dim * latent_dim
    hyperparams["policy_kwargs"].update(
        decoder=decoder,
        prior=prior,
        generator_net_arch={"tiny": [32, 32], "small": [64, 64], "medium": [256, 256]}[generator_net_arch],
    )
    if latent_dim is not None:
        hyperparams["policy_kwargs"]["latent_dim"] = latent_dim
    return hyperparams
