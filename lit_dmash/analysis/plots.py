"""A grid's figures: AER curves, rliable interval and probability-of-improvement plots, as PNGs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lit_dmash.analysis.grid_results import Runs, curves
from lit_dmash.analysis.results import mean_with_ci
from lit_dmash.io import atomic_open


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend: figures are written to files, never shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> None:
    """Write `fig` as a PNG atomically (no half-written file if interrupted) and close it."""
    plt = pyplot()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


Colours = dict[str, Any]  # method -> matplotlib colour


ARM_COLOURS = {"dmash": 3, "dma_star": 0, "concat": 2, "dr": 7, "da": 1, "dma": 4, "dma_pearl": 5}
"""The paper's arms' fixed places in seaborn's colour-blind palette: DMA*-SH vermillion, DR grey."""

_SPARE_COLOURS = (9, 8, 6)  # light blue, yellow, light pink: for other methods first (ablations, your own)


def method_colours(methods: Sequence[str]) -> Colours:
    """One colour per method (seaborn's colour-blind palette), the same in every plot of every grid.

    The paper's arms keep their colours whichever others a figure holds (DMA*-SH is vermillion in a
    two-arm ablation plot as in the seven-arm one); any other method takes a spare colour, then the
    colour of a paper arm the figure lacks, so up to ten methods get ten colours.
    """
    import seaborn as sns

    palette = sns.color_palette("colorblind", n_colors=10)
    fixed = {method: ARM_COLOURS[method] for method in methods if method in ARM_COLOURS}
    spare = [*_SPARE_COLOURS, *(index for index in ARM_COLOURS.values() if index not in fixed.values())]
    others = [method for method in dict.fromkeys(methods) if method not in fixed]
    index = fixed | {method: spare[i % len(spare)] for i, method in enumerate(others)}
    return {method: palette[index[method]] for method in methods}


def plot_curves(
    task: str, methods: Mapping[str, Mapping[int, dict]], splits: Sequence[str], reps: int, colours: Colours
) -> Any:
    """AER vs updates, one panel per split, mean over seeds with a 95% bootstrap band per method."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(splits), figsize=(4 * len(splits), 3.2), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        for method, by_seed in methods.items():
            updates, aer = curves(by_seed, split)
            if not len(updates):
                continue
            mean, low, high = mean_with_ci(aer, reps=reps)
            ax.plot(updates, mean, marker="o", markersize=3, label=method, color=colours[method])
            ax.fill_between(updates, low, high, alpha=0.2, color=colours[method])
        ax.set_title(f"{task}: {split}")
        ax.set_xlabel("updates")
    axes[0, 0].set_ylabel("AER (mean over seeds, 95% CI)")
    axes[0, -1].legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_intervals(
    intervals: Mapping[str, Mapping[str, Mapping[str, Any]]], title: str, xlabel: str, colours: Colours
) -> Any:
    """rliable's interval plot: `intervals[method][split] = {value|iqm, ci}`, one panel per split."""
    pyplot()
    from rliable import plot_utils

    methods = list(intervals)
    splits = [s for s in next(iter(intervals.values())) if all(s in intervals[m] for m in methods)]
    point = {m: np.array([intervals[m][s].get("value", intervals[m][s].get("iqm")) for s in splits]) for m in methods}
    interval = {m: np.array([intervals[m][s]["ci"] for s in splits]).T for m in methods}
    height = max(0.5 * len(methods), 1.5)  # inches; rliable places the labels relative to the figure
    fig, _ = plot_utils.plot_interval_estimates(
        point,
        interval,
        metric_names=splits,
        algorithms=methods[::-1],  # rliable draws the first one at the bottom
        xlabel=xlabel,
        colors=colours,
        row_height=height / len(methods),
        xlabel_y_coordinate=-0.5 / height,
    )
    fig.suptitle(title, y=1 + 0.45 / height)
    return fig


def plot_improvement(
    improvement: Mapping[str, Mapping[str, Mapping[str, Any]]], challenger: str, colours: Colours
) -> Any:
    """rliable's probability-of-improvement plot of `challenger` over each arm, one panel per split."""
    plt = pyplot()
    from rliable import plot_utils

    splits = [s for s in improvement if improvement[s]]
    rows = max(len(improvement[s]) for s in splits)
    fig, axes = plt.subplots(1, len(splits), figsize=(4.5 * len(splits), 0.6 * rows + 1.2), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        pairs = {f"{challenger},{other}": stats for other, stats in improvement[split].items()}
        plot_utils.plot_probability_of_improvement(
            {pair: stats["value"] for pair, stats in pairs.items()},
            {pair: np.array(stats["ci"]) for pair, stats in pairs.items()},
            ax=ax,
            colors=[colours[other] for other in improvement[split]],
            xlabel=f"P({challenger} > Y), {split}",
            ticklabelsize="medium",
            labelsize="medium",
        )
    fig.tight_layout()
    return fig


def write_plots(grid_dir: Path, runs: Runs, summary: Mapping[str, Any], reps: int) -> None:
    """Every PNG `python -m lit_dmash aggregate` writes (listed in `lit_dmash.analysis.aggregate`)."""
    splits, colours = summary["meta"]["splits"], method_colours(summary["meta"]["methods"])
    for task, info in summary["tasks"].items():
        methods = {m: runs[task][m] for m in info["methods"]}
        save_figure(plot_curves(task, methods, splits, reps, colours), grid_dir / f"curves_{task}.png")
        title = f"{task}: IQM of the AER, 95% stratified-bootstrap CI"
        save_figure(plot_intervals(info["methods"], title, "AER", colours), grid_dir / f"intervals_{task}.png")
    for scope, by_split in summary["aggregates"].items():
        by_method = {m: {s: by_split[s][m] for s in by_split if m in by_split[s]} for m in summary["meta"]["methods"]}
        by_method = {m: v for m, v in by_method.items() if v}
        if by_method:
            name = scope.replace(" ", "_")
            fig = plot_intervals(by_method, f"{scope}: normalised IQM, 95% CI", "normalised score", colours)
            save_figure(fig, grid_dir / f"intervals_normalised_{name}.png")
    if any(summary["improvement"].values()):
        fig = plot_improvement(summary["improvement"], summary["meta"]["challenger"], colours)
        save_figure(fig, grid_dir / "improvement.png")
