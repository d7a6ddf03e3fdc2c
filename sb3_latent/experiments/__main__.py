"""``python -m sb3_latent.experiments <name>``: regenerate one of the poster's figures. See docs/experiments.md."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sb3_latent.experiments.specs import BUDGETS, EXPERIMENTS


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def make_parser() -> argparse.ArgumentParser:
    experiments = "\n".join(f"  {name:<16} {e.figure}: {e.title}" for name, e in EXPERIMENTS.items())
    budgets = "\n".join(f"  {name:<8} {b.description}" for name, b in BUDGETS.items())
    parser = argparse.ArgumentParser(
        prog="python -m sb3_latent.experiments",
        description="Train the runs of one of the poster's experiments (resumable), then draw its figure and tables.",
        epilog=f"experiments:\n{experiments}\n\nbudgets:\n{budgets}\n\nSee docs/experiments.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=list(EXPERIMENTS), metavar="name", help=f"experiment: {', '.join(EXPERIMENTS)}")
    parser.add_argument("--budget", choices=list(BUDGETS), default="quick", help="training budget (default: quick)")
    parser.add_argument("--seeds", type=_positive_int, default=None, help="number of seeds (default: the budget's)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local", help="local process pool or Ray tasks")
    parser.add_argument("--address", default=None, help="Ray cluster address (auto, ray://host:10001; 'local' starts one)")
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="runs in parallel (local default: 2; ray default: as the cluster allows)",
    )
    parser.add_argument("-f", "--folder", default="results", help="results root: <folder>/<name>/ (default: results)")
    parser.add_argument("--conditions", nargs="+", default=None, help="only these conditions (and the ones they start from)")
    parser.add_argument(
        "--timesteps", type=_positive_int, default=None, help="steps per run instead of the budget's (extends finished runs)"
    )
    parser.add_argument(
        "--threshold", type=float, default=None, help="return for 'steps to threshold' (default: the budget's)"
    )
    parser.add_argument("--plot-only", action="store_true", help="do not train: redraw figure and tables from what exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (one line per run instead)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    experiment = EXPERIMENTS[args.name]
    budget = BUDGETS[args.budget]
    known = [condition.name for condition in experiment.conditions]
    unknown = [name for name in args.conditions or [] if name not in known]
    if unknown:
        parser.error(f"{args.name} has no condition {', '.join(map(repr, unknown))}; choose from {', '.join(known)}")
    if args.address is not None and args.backend != "ray":
        parser.error("--address is for --backend ray")
    if os.path.exists(args.folder) and not os.path.isdir(args.folder):
        parser.error(f"-f {args.folder} is a file; name a folder for the results (it is created if missing)")
    try:
        os.makedirs(args.folder, exist_ok=True)
    except OSError as error:
        parser.error(f"-f {args.folder}: cannot make this folder ({error.strerror}); name a folder you can write to")

    # Heavy imports (torch, rl-zoo3) only once the command line is valid.
    from sb3_latent.errors import UserInputError
    from sb3_latent.experiments.backends import execute, make_backend
    from sb3_latent.experiments.plan import plan_runs
    from sb3_latent.experiments.report import write_report
    from sb3_latent.experiments.runs import experiment_dir, report_folder

    seeds = args.seeds or budget.seeds
    n_timesteps = args.timesteps or budget.n_timesteps
    threshold = budget.threshold if args.threshold is None else args.threshold
    conditions = experiment.with_sources(args.conditions) if args.conditions else list(experiment.conditions)
    out = experiment_dir(args.folder, experiment)
    results = {}
    try:
        # Every condition is planned, for the report's map from conditions to the runs of these settings.
        planned = plan_runs(experiment, budget, seeds, args.folder, list(experiment.conditions), args.timesteps)
        selected = {condition.name for condition in conditions}
        specs = [spec for spec in planned if spec.condition.name in selected]
        print(
            f"{experiment.name} ({experiment.figure}), budget {budget.name}: {len(conditions)} conditions x {seeds} seeds "
            f"= {len(specs)} runs of {n_timesteps:,} steps -> {out}"
        )
        if not args.plot_only:
            results = execute(
                specs, lambda: make_backend(args.backend, args.workers, args.address), show_progress=not args.no_progress
            )
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume each run from its last checkpoint.", file=sys.stderr)
        return 130

    counts = {status: sum(r.status == status for r in results.values()) for status in ("done", "skipped", "failed", "refused")}
    path_of = {spec.key: spec.path for spec in specs}
    refused = {key: result for key, result in results.items() if result.status == "refused"}
    for key, result in refused.items():
        print(f"refused   {key}: {result.message}", file=sys.stderr)
    if refused:
        # Another command is training these runs, or their folders hold other settings: its report stays as it is.
        print(f"runs: {counts['refused']} refused; the summary and figure in {out} are left as they are", file=sys.stderr)
        return 1
    folders: dict[str, dict[int, Path]] = {}
    for spec in planned:
        folders.setdefault(spec.condition.name, {})[spec.seed] = report_folder(spec)
    paths = write_report(
        args.folder, experiment, list(experiment.conditions), folders, seeds, n_timesteps, threshold, budget.name
    )
    print(paths["summary_md"].read_text())
    for label, path in paths.items():
        print(f"{label:<12} {path}")
    failed = {key: result for key, result in results.items() if result.status == "failed"}
    for key, result in failed.items():
        print(f"failed    {key}: {result.message} (see {path_of[key] / 'error.txt'})", file=sys.stderr)
    print(f"runs: {counts['done']} trained, {counts['skipped']} already finished, {counts['failed']} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
