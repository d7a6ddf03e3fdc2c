"""Figures and tables from the runs' evaluation CSVs.

For each condition, the seeds' evaluation curves are aligned on their common evaluation steps. The
figure draws, per panel, the mean over seeds and a 95% percentile-bootstrap confidence band of that
mean (``scipy.stats.bootstrap``, resampling seeds). The table gives per condition:

- final return: the mean over seeds of the last evaluation's return, with its 95% bootstrap CI;
- IQM: the interquartile mean of the final returns over seeds (rliable's ``aggregate_iqm``, i.e.
  ``scipy.stats.trim_mean(x, 0.25)``), with its 95% bootstrap CI;
- mean over training: the mean return over all evaluations (area under the curve, per step), with its 95%
  bootstrap CI over seeds;
- per seed: each seed's final return and mean over training (seed order as in ``seeds``);
- steps to threshold: the median, over the seeds that reach it, of the first evaluation step whose
  return is at least the budget's threshold, and how many seeds reach it.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sb3_latent.experiments.runs import EVALUATION_COLUMNS, EVALUATIONS_FILE, experiment_dir, read_evaluations
from sb3_latent.experiments.specs import Condition, Experiment

CONFIDENCE = 0.95
N_RESAMPLES = 2000
# condition -> seed -> the run folder to read (the planned runs, see runs.report_folder).
Folders = dict[str, dict[int, Path]]


@dataclass
class Curves:
    """The evaluation curves of one condition: ``scores[seed, i]`` is the return at ``steps[i]``."""

    condition: Condition
    seeds: list[int]
    steps: np.ndarray
    scores: np.ndarray


def load_curves(conditions: list[Condition], folders: Folders, n_timesteps: int) -> dict[str, Curves]:
    """Curves of each condition that has data, cut at ``n_timesteps``, on the steps every seed evaluated."""
    curves: dict[str, Curves] = {}
    for condition in conditions:
        per_seed: dict[int, dict[int, float]] = {}
        for seed, folder in sorted(folders.get(condition.name, {}).items()):
            rows = read_evaluations(folder / EVALUATIONS_FILE)
            points = {int(row["steps"]): row["eval_return_mean"] for row in rows if row["steps"] <= n_timesteps}
            if points:
                per_seed[seed] = points
        if not per_seed:
            continue
        common = sorted(set.intersection(*(set(points) for points in per_seed.values())))
        if not common:
            continue
        scores = np.array([[points[step] for step in common] for points in per_seed.values()], dtype=float)
        curves[condition.name] = Curves(condition, list(per_seed), np.array(common), scores)
    return curves


def bootstrap_ci(samples: np.ndarray, statistic: Any = np.mean) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile-bootstrap CI of ``statistic`` over axis 0 (the seeds); the point itself with one seed."""
    from scipy import stats

    samples = np.asarray(samples, dtype=float)
    if samples.shape[0] < 2:
        value = statistic(samples, axis=0)
        return value, value
    kwargs: dict[str, Any] = dict(
        axis=0, vectorized=True, confidence_level=CONFIDENCE, n_resamples=N_RESAMPLES, method="percentile"
    )
    try:
        result = stats.bootstrap((samples,), statistic, rng=np.random.default_rng(0), **kwargs)
    except TypeError:  # scipy < 1.15
        result = stats.bootstrap((samples,), statistic, random_state=np.random.default_rng(0), **kwargs)
    return np.asarray(result.confidence_interval.low), np.asarray(result.confidence_interval.high)


def iqm(samples: np.ndarray, axis: int | None = 0) -> Any:
    """Interquartile mean (rliable's aggregate_iqm)."""
    from scipy import stats

    return stats.trim_mean(samples, proportiontocut=0.25, axis=axis)


def summarize(curves: Curves, threshold: float) -> dict[str, Any]:
    final = curves.scores[:, -1]
    final_low, final_high = bootstrap_ci(final[:, None])
    over_training = curves.scores.mean(axis=1)
    over_training_low, over_training_high = bootstrap_ci(over_training[:, None])
    iqm_low, iqm_high = bootstrap_ci(final[:, None], iqm)
    reached = [
        int(curves.steps[np.argmax(seed_scores >= threshold)])
        for seed_scores in curves.scores
        if np.any(seed_scores >= threshold)
    ]
    return {
        "condition": curves.condition.name,
        "label": curves.condition.display_name,
        "algo": curves.condition.algo,
        "env_id": curves.condition.env_id,
        "seeds": len(curves.seeds),
        "steps": int(curves.steps[-1]),
        "final_return": float(final.mean()),
        "final_ci_low": float(final_low[0]),
        "final_ci_high": float(final_high[0]),
        "iqm_final": float(iqm(final)),
        "iqm_ci_low": float(iqm_low[0]),
        "iqm_ci_high": float(iqm_high[0]),
        "mean_over_training": float(curves.scores.mean()),
        "mean_over_training_ci_low": float(over_training_low[0]),
        "mean_over_training_ci_high": float(over_training_high[0]),
        "seed_list": " ".join(str(seed) for seed in curves.seeds),
        "final_per_seed": " ".join(f"{value:.1f}" for value in final),
        "mean_over_training_per_seed": " ".join(f"{value:.1f}" for value in over_training),
        "threshold": threshold,
        "steps_to_threshold": float(np.median(reached)) if reached else math.nan,
        "seeds_reaching_threshold": len(reached),
        "status": "",
    }


SUMMARY_COLUMNS = (
    "condition",
    "label",
    "algo",
    "env_id",
    "seeds",
    "steps",
    "final_return",
    "final_ci_low",
    "final_ci_high",
    "iqm_final",
    "iqm_ci_low",
    "iqm_ci_high",
    "mean_over_training",
    "mean_over_training_ci_low",
    "mean_over_training_ci_high",
    "seed_list",
    "final_per_seed",
    "mean_over_training_per_seed",
    "threshold",
    "steps_to_threshold",
    "seeds_reaching_threshold",
    "status",
)


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    # Whole numbers from 100 up (HalfCheetah returns, steps); 3 significant digits below, so that a smoke run's -0.3
    # reads -0.3, not -0. Adding 0.0 turns a negative zero into 0.
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value + 0.0:.3g}"


def _per_seed(values: str) -> str:
    return ", ".join(_fmt(float(value)) for value in values.split())


def markdown_table(rows: list[dict[str, Any]], threshold: float) -> str:
    lines = [
        f"| condition | algo | task | seeds | steps | final return (95% CI) | final, per seed | IQM final (95% CI) "
        f"| mean over training (95% CI) | mean over training, per seed | steps to >= {threshold:g} |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["status"]:
            lines.append(f"| {row['label']} | {row['algo']} | {row['env_id']} | 0 | | {row['status']} | | | | | |")
            continue
        to_threshold = f"{_fmt(row['steps_to_threshold'])} ({row['seeds_reaching_threshold']}/{row['seeds']} seeds)"
        over_training_ci = f"[{_fmt(row['mean_over_training_ci_low'])}, {_fmt(row['mean_over_training_ci_high'])}]"
        lines.append(
            f"| {row['label']} | {row['algo']} | {row['env_id']} | {row['seeds']} | {row['steps']:,} "
            f"| {_fmt(row['final_return'])} [{_fmt(row['final_ci_low'])}, {_fmt(row['final_ci_high'])}] "
            f"| {_per_seed(row['final_per_seed'])} "
            f"| {_fmt(row['iqm_final'])} [{_fmt(row['iqm_ci_low'])}, {_fmt(row['iqm_ci_high'])}] "
            f"| {_fmt(row['mean_over_training'])} {over_training_ci} | {_per_seed(row['mean_over_training_per_seed'])} "
            f"| {to_threshold} |"
        )
    return "\n".join(lines)


def plot(experiment: Experiment, curves: dict[str, Curves], path: Path, subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    color_of = {condition.name: colors[i % len(colors)] for i, condition in enumerate(experiment.conditions)}
    n_panels = len(experiment.panels)
    fig, axes = plt.subplots(1, n_panels, figsize=(6.0 * n_panels, 4.5), squeeze=False)
    for ax, panel in zip(axes[0], experiment.panels, strict=True):
        for name in panel.conditions:
            if name not in curves:
                continue
            c = curves[name]
            mean = c.scores.mean(axis=0)
            low, high = bootstrap_ci(c.scores)
            ax.plot(c.steps, mean, color=color_of[name], label=f"{c.condition.display_name} ({_seeds(len(c.seeds))})")
            if len(c.seeds) > 1:
                ax.fill_between(c.steps, low, high, color=color_of[name], alpha=0.2, linewidth=0)
        missing = [f"{name}: no runs" for name in panel.conditions if name not in curves]
        if missing:
            box = {"facecolor": "white", "alpha": 0.8, "edgecolor": "none"}
            ax.text(
                0.99,
                0.01,
                "not shown:\n" + "\n".join(missing),
                transform=ax.transAxes,
                fontsize=6,
                ha="right",
                va="bottom",
                bbox=box,
            )
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("evaluation return")
        ax.grid(alpha=0.3)
        if ax.has_data():
            # Below the panel, where no curve can be: a corner of the axes covers some runs' curves (smoke runs').
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    fig.suptitle(f"{experiment.figure}: {experiment.title}\n{subtitle}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def write_report(
    root: str | Path,
    experiment: Experiment,
    conditions: list[Condition],
    folders: Folders,
    seeds: int,
    n_timesteps: int,
    threshold: float,
    budget: str,
) -> dict[str, Path]:
    """Write ``<experiment>.png``, ``summary.md``, ``summary.csv`` and ``evaluations.csv`` (all runs, long format)
    from the runs in ``folders``."""
    out = experiment_dir(root, experiment)
    out.mkdir(parents=True, exist_ok=True)
    curves = load_curves(conditions, folders, n_timesteps)
    rows: list[dict[str, Any]] = []
    for condition in conditions:
        if condition.name in curves:
            rows.append(summarize(curves[condition.name], threshold))
        else:
            rows.append(
                {key: "" for key in SUMMARY_COLUMNS}
                | {"condition": condition.name, "label": condition.display_name, "algo": condition.algo}
                | {"env_id": condition.env_id, "status": "no evaluations yet"}
            )
    subtitle = f"budget {budget}, {n_timesteps:,} steps, mean and {CONFIDENCE:.0%} bootstrap CI over seeds"
    paths = {
        "figure": out / f"{experiment.name}.png",
        "summary_md": out / "summary.md",
        "summary_csv": out / "summary.csv",
        "evaluations": out / "evaluations.csv",
    }
    plot(experiment, curves, paths["figure"], subtitle)
    with open(paths["summary_csv"], "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    header = (
        f"# {experiment.figure}: {experiment.title}\n\n"
        f"Budget `{budget}`: {n_timesteps:,} env steps per run, up to {_seeds(seeds)}. "
        f"Figure: [{paths['figure'].name}]({paths['figure'].name}).\n\n"
    )
    paths["summary_md"].write_text(header + markdown_table(rows, threshold) + "\n")
    with open(paths["evaluations"], "w", newline="") as file:
        long_writer = csv.writer(file)
        columns = [column for column in EVALUATION_COLUMNS if column != "time"]
        long_writer.writerow(["condition", "seed", *columns])
        for condition in conditions:
            for seed, folder in sorted(folders.get(condition.name, {}).items()):
                for row in read_evaluations(folder / EVALUATIONS_FILE):
                    long_writer.writerow(
                        [condition.name, seed, int(row["steps"]), *(row.get(column, "") for column in columns[1:])]
                    )
    return paths
