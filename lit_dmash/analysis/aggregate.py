"""Turn a grid folder into the paper's tables, JSON and plots.

    python -m lit_dmash aggregate GRID_DIR [--bounds FILE] [--reps N] [--seed S] [--baselines dr concat]
                                           [--poi-splits eval_out] [--no-plots]

Reads every run's `GRID_DIR/<task>/<method>/seed<k>/eval.json` (or `.../seed<k>/seed<k>/eval.json`,
where a single-seed job writes it), takes the AER of each split at the run's last evaluation as its
score, and writes to GRID_DIR:
- `results.json`: `lit_dmash.analysis.results.summarise` (bounds, per-task tables, normalised aggregates per
  group and over all tasks, probability of improvement of dmash, gains vs the baselines);
- `results.md`: the same as tables, baselines first;
- `curves_<task>.png`: AER vs updates per split, mean over seeds with a 95% bootstrap band;
- `intervals_<task>.png`: IQM [95% CI] of the raw AER per method and split;
- `intervals_normalised_<scope>.png`: normalised IQM [95% CI] over all tasks and per group;
- `improvement.png`: probability of improvement of dmash over each arm (on eval_out unless `--poi-splits`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lit_dmash.analysis.grid_results import LAYOUT, collect, curves, declared_groups, final_scores
from lit_dmash.analysis.plots import method_colours, plot_curves, pyplot, save_figure, write_plots
from lit_dmash.analysis.report_markdown import markdown, task_markdown
from lit_dmash.analysis.results import BASELINES, CHALLENGER, load_bounds, summarise
from lit_dmash.io import atomic_open, atomic_write_json

# Reading, tables and plots are their own modules (grid_results, report_markdown, plots); the names
# scripts, notebooks and tests import from here stay importable here, the private `_pyplot` /
# `_save_figure` too (now `plots.pyplot` / `plots.save_figure`) for code written before the split.
_pyplot, _save_figure = pyplot, save_figure

__all__ = [
    "_pyplot",
    "_save_figure",
    "aggregate_grid",
    "collect",
    "curves",
    "final_scores",
    "main",
    "method_colours",
    "plot_curves",
    "task_markdown",
]


def aggregate_grid(
    grid_dir: str | Path,
    baselines: Sequence[str] = BASELINES,
    plots: bool = True,
    reps: int = 2000,
    bounds: Mapping[str, tuple[float, float] | None] | str | Path | None = None,
    seed: int = 0,
    challenger: str = CHALLENGER,
    improvement_splits: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Aggregate every task of a grid folder; writes results.json / results.md / PNGs there and returns the summary.

    `bounds` overrides the per-task min-max bounds: a dict `{task: (low, high) | None}` or a YAML / JSON file;
    `improvement_splits`: where to compute the probability of improvement (default eval_out, see `summarise`).
    """
    grid_dir = Path(grid_dir)
    runs = collect(grid_dir)
    if not runs:
        raise FileNotFoundError(f"no run with evaluations under {grid_dir} (expected {LAYOUT})")
    if isinstance(bounds, str | Path):
        bounds = load_bounds(bounds)
    summary = summarise(
        final_scores(runs), declared_groups(runs), bounds, baselines, challenger, reps, seed, improvement_splits
    )
    atomic_write_json(grid_dir / "results.json", summary)
    with atomic_open(grid_dir / "results.md", "w") as f:
        f.write(markdown(summary, grid_dir.name))
    if plots:
        write_plots(grid_dir, runs, summary, reps)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lit_dmash aggregate", description=__doc__.split("\n\n")[0])
    parser.add_argument("grid_dir", type=Path)
    parser.add_argument("--bounds", type=Path, help="YAML/JSON {task: [low, high] or null} overriding the bounds")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap replications (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every bootstrap (default 0)")
    parser.add_argument("--baselines", nargs="+", default=list(BASELINES))
    parser.add_argument("--poi-splits", nargs="+", help="splits for the probability of improvement (eval_out)")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    try:
        aggregate_grid(
            args.grid_dir,
            args.baselines,
            plots=not args.no_plots,
            reps=args.reps,
            bounds=args.bounds,
            seed=args.seed,
            improvement_splits=args.poi_splits,
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print((args.grid_dir / "results.md").read_text())
    return 0
