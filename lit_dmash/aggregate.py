"""Turn a grid folder into the paper's tables, JSON and plots.

    python -m lit_dmash aggregate GRID_DIR [--bounds FILE] [--reps N] [--seed S] [--baselines dr concat]
                                           [--poi-splits eval_out] [--no-plots]

Reads every run's `GRID_DIR/<task>/<method>/seed<k>/eval.json` (or `.../seed<k>/seed<k>/eval.json`,
where a single-seed job writes it), takes the AER of each split at the run's last evaluation as its
score, and writes to GRID_DIR:
- `results.json`: `lit_dmash.results.summarise` (bounds, per-task tables, normalised aggregates per
  group and over all tasks, probability of improvement of dmash, gains vs the baselines);
- `results.md`: the same as tables, baselines first;
- `curves_<task>.png`: AER vs updates per split, mean over seeds with a 95% bootstrap band;
- `intervals_<task>.png`: IQM [95% CI] of the raw AER per method and split;
- `intervals_normalised_<scope>.png`: normalised IQM [95% CI] over all tasks and per group;
- `improvement.png`: probability of improvement of dmash over each arm (on eval_out unless `--poi-splits`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lit_dmash.io import atomic_open, atomic_write_json
from lit_dmash.results import BASELINES, CHALLENGER, Scores, load_bounds, mean_with_ci, summarise

Runs = dict[str, dict[str, dict[int, dict]]]  # task -> method -> seed -> eval.json content
LAYOUT = "<grid>/<task>/<method>/seed<k>/eval.json"


# --- reading -----------------------------------------------------------------------------------


def _eval_files(grid_dir: Path) -> dict[Path, Path]:
    """`{seed folder: its eval.json}`; a single-seed job keeps it one level deeper, in `seed<k>/seed<k>/`."""
    files = {path.parent: path for path in grid_dir.glob("*/*/seed*/eval.json")}
    for path in grid_dir.glob("*/*/seed*/seed*/eval.json"):
        if path.parent.name == path.parent.parent.name:
            files[path.parent.parent] = path
    return dict(sorted(files.items()))


def collect(grid_dir: str | Path) -> Runs:
    """`{task: {method: {seed: eval.json}}}` for every run with at least one evaluation.

    Task, method and seed come from the folder names (a method variant such as `dmash_lowrank` is
    its own method); the file's `group` names the task's overlap group.
    """
    runs: Runs = {}
    for seed_dir, path in _eval_files(Path(grid_dir)).items():
        record = json.loads(path.read_text())
        if not record.get("evaluations"):
            continue
        seed = int(seed_dir.name.removeprefix("seed"))
        runs.setdefault(seed_dir.parent.parent.name, {}).setdefault(seed_dir.parent.name, {})[seed] = record
    return runs


def final_scores(runs: Runs) -> Scores:
    """`{task: {method: {split: {seed: AER of the last evaluation}}}}`."""
    scores: Scores = {}
    for task, methods in runs.items():
        for method, by_seed in methods.items():
            for seed, record in by_seed.items():
                for split, stats in record["evaluations"][-1]["splits"].items():
                    scores.setdefault(task, {}).setdefault(method, {}).setdefault(split, {})[seed] = float(stats["aer"])
    return scores


def declared_groups(runs: Runs) -> dict[str, str]:
    """`{task: group}` as the run files declare it (the first run that names one)."""
    groups = {}
    for task, methods in runs.items():
        named = [r.get("group") for by_seed in methods.values() for r in by_seed.values() if r.get("group")]
        if named:
            groups[task] = named[0]
    return groups


def curves(by_seed: Mapping[int, dict], split: str) -> tuple[np.ndarray, np.ndarray]:
    """`(updates [T], AER [seeds, T])` on the evaluation points every seed reached."""
    evaluations = {seed: record["evaluations"] for seed, record in by_seed.items()}
    reached = [{e["updates"] for e in evals if split in e["splits"]} for evals in evaluations.values()]
    updates = sorted(set.intersection(*reached))
    rows = []
    for seed in sorted(evaluations):
        by_update = {e["updates"]: e["splits"][split]["aer"] for e in evaluations[seed] if split in e["splits"]}
        rows.append([by_update[u] for u in updates])
    return np.asarray(updates), np.asarray(rows, dtype=np.float64).reshape(len(rows), len(updates))


# --- markdown ----------------------------------------------------------------------------------


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _interval(stats: Mapping[str, Any] | None, digits: int) -> str:
    if stats is None:
        return "–"
    value = stats.get("value", stats.get("iqm"))
    low, high = stats["ci"]
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _gain(gain: float | None) -> str:
    return "–" if gain is None else f"{100 * gain:+.1f}%"


def _scope_tasks(summary: Mapping[str, Any], scope: str) -> set[str]:
    """The tasks a scope holds: every task, or those of one group."""
    return {t for t, info in summary["tasks"].items() if scope == "all" or info["group"] == scope}


def overview_markdown(summary: Mapping[str, Any]) -> str:
    """Header: how scores are made, then the bounds used for normalisation."""
    meta = summary["meta"]
    rows = [[t, info["group"], info["bounds"]["note"]] for t, info in summary["tasks"].items()]
    return (
        f"Score of a run on a split: {meta['score']}. IQM and 95% CIs from rliable: stratified bootstrap over "
        f"runs ({meta['reps']} reps, seed {meta['seed']}). std: over seeds, ddof 0. Gains: "
        "(R_m - R_b) / |R_b|.\n\n## Normalisation bounds (min-max)\n\n" + _table(["task", "group", "bounds"], rows)
    )


def aggregates_markdown(summary: Mapping[str, Any]) -> str:
    """Normalised IQM [CI] per split: rows = method, columns = all tasks and each group."""
    aggregates, methods = summary["aggregates"], summary["meta"]["methods"]
    scopes = list(aggregates)
    sections = ["## Normalised IQM [95% CI] over runs and tasks\n"]
    partial = truncated = False
    for split in summary["meta"]["splits"]:
        rows = []
        for method in methods:
            row = [method]
            for scope in scopes:
                stats = aggregates[scope][split].get(method)
                missing = stats is not None and set(stats["tasks"]) != _scope_tasks(summary, scope)
                cut = stats is not None and stats["runs"] < stats["most_runs"]
                partial, truncated = partial or missing, truncated or cut
                row.append(_interval(stats, 3) + (" †" if missing else "") + (" ‡" if cut else ""))
            rows.append(row)
        sections.append(f"### {split}\n\n" + _table(["method", *scopes], rows))
    if partial:
        sections.append("† over only the tasks this method has runs of (see `tasks` in results.json).\n")
    if truncated:
        sections.append(
            "‡ the tasks have unequal numbers of runs: each task keeps the fewest any has (its lowest seeds),"
            " as the stratified bootstrap needs (`runs` in results.json).\n"
        )
    return "\n".join(sections)


def improvement_markdown(summary: Mapping[str, Any]) -> str:
    """P(challenger > other) [CI] per split."""
    improvement, challenger = summary["improvement"], summary["meta"]["challenger"]
    if not improvement:
        return ""
    splits = list(improvement)
    others = [m for m in summary["meta"]["methods"] if m != challenger]
    rows = [[other, *(_interval(improvement[s].get(other), 2) for s in splits)] for other in others]
    head = f"## Probability of improvement of {challenger} (normalised scores, 95% CI)\n\n"
    return head + _table([f"{challenger} vs", *splits], rows)


def gains_markdown(summary: Mapping[str, Any]) -> str:
    """Gains of each method's normalised IQM over each baseline's: one table per baseline and split."""
    sections = []
    for baseline, gains in summary["gains"].items():
        for split in summary["meta"]["splits"]:
            scopes = [s for s in gains["normalised"] if split in gains["normalised"][s]]
            rows = [
                [method, *(_gain(gains["normalised"][s][split].get(method)) for s in scopes)]
                for method in summary["meta"]["methods"]
            ]
            sections.append(f"### vs {baseline}, {split}\n\n" + _table(["method", *scopes], rows))
    if not sections:
        return ""
    return "## Relative gain on the normalised IQM, (R_m - R_b) / |R_b|\n\n" + "\n".join(sections)


def task_markdown(summary: Mapping[str, Any], task: str) -> str:
    """One task: mean AER +- std, IQM [CI], normalised IQM [CI] and mean-AER gains; rows = method."""
    info = summary["tasks"][task]
    table = info["methods"]
    splits = [s for s in summary["meta"]["splits"] if any(s in by_split for by_split in table.values())]

    def cells(method: str, fmt: Any) -> list[str]:
        return [fmt(table[method][s]) if s in table[method] else "–" for s in splits]

    mean_rows = [
        [m, str(len(next(iter(table[m].values()))["seeds"])), *cells(m, lambda x: f"{x['mean']:.1f} ± {x['std']:.1f}")]
        for m in table
    ]
    iqm_rows = [[m, *cells(m, lambda x: _interval(x, 1))] for m in table]
    norm_rows = [[m, *cells(m, lambda x: _interval(x["normalised"], 3))] for m in table]
    parts = [
        f"### {task} ({info['group']})\n\nBounds {info['bounds']['note']}.\n",
        "Mean AER ± std over seeds\n\n" + _table(["method", "seeds", *splits], mean_rows),
        "IQM [95% CI] of the AER\n\n" + _table(["method", *splits], iqm_rows),
        "Normalised IQM [95% CI]\n\n" + _table(["method", *splits], norm_rows),
    ]
    return "\n".join([*parts, raw_gains_markdown(summary, task, splits)])


def raw_gains_markdown(summary: Mapping[str, Any], task: str, splits: Sequence[str]) -> str:
    """One task's gains in mean AER over each baseline: rows = method, columns = split x baseline."""
    methods = list(summary["tasks"][task]["methods"])
    head, rows = [], {m: [m] for m in methods}
    for baseline, gains in summary["gains"].items():
        for split in splits:
            by_method = gains["raw"].get(task, {}).get(split)
            if by_method is not None:
                head.append(f"{split} vs {baseline}")
                for m in methods:
                    rows[m].append(_gain(by_method.get(m)))
    return "Gain in mean AER\n\n" + _table(["method", *head], list(rows.values())) if head else ""


def markdown(summary: Mapping[str, Any], title: str) -> str:
    """The whole `results.md`."""
    sections = [
        f"# Results: {title}\n",
        overview_markdown(summary),
        aggregates_markdown(summary),
        improvement_markdown(summary),
        gains_markdown(summary),
        "## Per task\n",
        *(task_markdown(summary, task) for task in summary["tasks"]),
    ]
    return "\n".join(s for s in sections if s)


# --- plots -------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig: Any, path: Path) -> None:
    plt = _pyplot()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


Colours = dict[str, Any]  # method -> matplotlib colour


def method_colours(methods: Sequence[str]) -> Colours:
    """One colour per method (seaborn's colour-blind palette), the same in every plot of a grid."""
    import seaborn as sns

    return dict(zip(methods, sns.color_palette("colorblind", n_colors=len(methods)), strict=True))


def plot_curves(
    task: str, methods: Mapping[str, Mapping[int, dict]], splits: Sequence[str], reps: int, colours: Colours
) -> Any:
    """AER vs updates, one panel per split, mean over seeds with a 95% bootstrap band per method."""
    plt = _pyplot()
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
    _pyplot()
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
    plt = _pyplot()
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
    """Every PNG of the module docstring."""
    splits, colours = summary["meta"]["splits"], method_colours(summary["meta"]["methods"])
    for task, info in summary["tasks"].items():
        methods = {m: runs[task][m] for m in info["methods"]}
        _save_figure(plot_curves(task, methods, splits, reps, colours), grid_dir / f"curves_{task}.png")
        title = f"{task}: IQM of the AER, 95% stratified-bootstrap CI"
        _save_figure(plot_intervals(info["methods"], title, "AER", colours), grid_dir / f"intervals_{task}.png")
    for scope, by_split in summary["aggregates"].items():
        by_method = {m: {s: by_split[s][m] for s in by_split if m in by_split[s]} for m in summary["meta"]["methods"]}
        by_method = {m: v for m, v in by_method.items() if v}
        if by_method:
            name = scope.replace(" ", "_")
            fig = plot_intervals(by_method, f"{scope}: normalised IQM, 95% CI", "normalised score", colours)
            _save_figure(fig, grid_dir / f"intervals_normalised_{name}.png")
    if any(summary["improvement"].values()):
        fig = plot_improvement(summary["improvement"], summary["meta"]["challenger"], colours)
        _save_figure(fig, grid_dir / "improvement.png")


# --- the whole grid ------------------------------------------------------------------------------


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
