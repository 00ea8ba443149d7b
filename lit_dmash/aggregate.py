"""Turn a grid folder into the paper-style table, JSON and plots.

    python -m lit_dmash aggregate runs/grids/di_friction [--baselines dr dma]

Reads every run's `eval.json` (`<grid>/<env>/<method>/seed<k>/lightning_logs/version_*/`),
takes the final evaluation's mean return per split as that seed's score, and writes to the
grid folder:
- `results.json`: `{env: {method: {split: {mean, iqm, ci, returns, seeds}}}}`;
- `results.md`: per env, mean AER, IQM [95% stratified-bootstrap CI] (rliable) and the relative
  gain `(R - R_baseline) / |R_baseline|` over each baseline;
- `curves_<env>.png`: eval return vs env frames per split, mean over seeds with a 95% bootstrap band;
- `intervals_<env>.png`: IQM and its 95% CI per method, one panel per split.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lit_dmash.io import atomic_open, atomic_write_json
from lit_dmash.results import aggregate, markdown_table


def _latest_evaluations(seed_dir: Path) -> list[dict]:
    """The evaluations of the run's eval.json with the most env frames (a resumed run may have several versions)."""
    best: list[dict] = []
    for path in seed_dir.glob("lightning_logs/*/eval.json"):
        evaluations = json.loads(path.read_text())["evaluations"]
        if evaluations and (not best or evaluations[-1]["env_frames"] > best[-1]["env_frames"]):
            best = evaluations
    return best


def collect(grid_dir: str | Path) -> dict[str, dict[str, dict[int, list[dict]]]]:
    """`{env: {method: {seed: evaluations}}}` for every run with at least one evaluation."""
    grid_dir = Path(grid_dir)
    runs: dict[str, dict[str, dict[int, list[dict]]]] = {}
    for seed_dir in sorted(grid_dir.glob("*/*/seed*")):
        evaluations = _latest_evaluations(seed_dir)
        if not evaluations:
            continue
        env, method = seed_dir.parent.parent.name, seed_dir.parent.name
        seed = int(seed_dir.name.removeprefix("seed"))
        runs.setdefault(env, {}).setdefault(method, {})[seed] = evaluations
    return runs


def final_scores(by_seed: dict[int, list[dict]]) -> dict[str, list[float]]:
    """`{split: [final mean return of each seed, in seed order]}`."""
    scores: dict[str, list[float]] = {}
    for seed in sorted(by_seed):
        for split, stats in by_seed[seed][-1]["splits"].items():
            scores.setdefault(split, []).append(float(stats["mean"]))
    return scores


def bootstrap_mean_ci(values: np.ndarray, reps: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile bootstrap CI of the mean over axis 0 (seeds): `(low, high)` per column."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.shape[0], size=(reps, values.shape[0]))
    means = values[idx].mean(axis=1)
    return np.percentile(means, 2.5, axis=0), np.percentile(means, 97.5, axis=0)


def curves(by_seed: dict[int, list[dict]], split: str) -> tuple[np.ndarray, np.ndarray]:
    """`(env_frames [T], returns [seeds, T])` on the evaluation points every seed reached."""
    frames = sorted(set.intersection(*({e["env_frames"] for e in evals} for evals in by_seed.values())))
    rows = []
    for seed in sorted(by_seed):
        by_frame = {e["env_frames"]: e["splits"][split]["mean"] for e in by_seed[seed]}
        rows.append([by_frame[f] for f in frames])
    return np.asarray(frames), np.asarray(rows, dtype=np.float64)


def plot_curves(env: str, methods: dict[str, dict[int, list[dict]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(next(iter(next(iter(methods.values())).values()))[-1]["splits"])
    fig, axes = plt.subplots(1, len(splits), figsize=(4 * len(splits), 3.2), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        for method, by_seed in methods.items():
            frames, returns = curves(by_seed, split)
            low, high = bootstrap_mean_ci(returns)
            ax.plot(frames, returns.mean(0), marker="o", markersize=3, label=method)  # markers: 1-point runs show
            ax.fill_between(frames, low, high, alpha=0.2)
        ax.set_title(f"{env}: {split}")
        ax.set_xlabel("env frames")
    axes[0, 0].set_ylabel("eval return (mean, 95% CI)")
    axes[0, -1].legend(fontsize="small")
    fig.tight_layout()
    _save_figure(fig, path)


def plot_intervals(env: str, results: dict[str, dict[str, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(results)
    splits = list(results[methods[0]])
    fig, axes = plt.subplots(1, len(splits), figsize=(3.2 * len(splits), 0.5 * len(methods) + 1.5), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        iqm = np.array([results[m][split]["iqm"] for m in methods])
        ci = np.array([results[m][split]["ci"] for m in methods])
        y = np.arange(len(methods))
        ax.errorbar(iqm, y, xerr=[iqm - ci[:, 0], ci[:, 1] - iqm], fmt="o", capsize=3)
        ax.set_yticks(y, methods if ax is axes[0, 0] else [""] * len(methods))
        ax.set_ylim(len(methods) - 0.5, -0.5)  # first method on top, as in the table
        ax.set_title(split)
        ax.set_xlabel("IQM return")
    fig.suptitle(f"{env}: IQM with 95% stratified-bootstrap CI")
    fig.tight_layout()
    _save_figure(fig, path)


def _save_figure(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def _baselines_first(methods: dict[str, Any], baselines: Sequence[str]) -> dict[str, Any]:
    """Baselines in the given order, then the other methods alphabetically (table and plot order)."""
    order = [b for b in baselines if b in methods] + sorted(m for m in methods if m not in baselines)
    return {method: methods[method] for method in order}


def aggregate_grid(
    grid_dir: str | Path, baselines: Sequence[str] = ("dr", "dma"), plots: bool = True, reps: int = 2000
) -> dict[str, dict[str, dict[str, dict]]]:
    """Aggregate every env of a grid folder; writes results.json / results.md / PNGs there."""
    grid_dir = Path(grid_dir)
    runs = collect(grid_dir)
    if not runs:
        raise FileNotFoundError(f"no eval.json under {grid_dir}/<env>/<method>/seed*/lightning_logs/")
    all_results: dict[str, dict[str, dict[str, dict]]] = {}
    sections = []
    for env, methods in sorted(runs.items()):
        methods = _baselines_first(methods, baselines)
        per_seed = {method: final_scores(by_seed) for method, by_seed in methods.items()}
        results = aggregate(per_seed, reps=reps)
        for method, by_seed in methods.items():
            for stats in results[method].values():
                stats["seeds"] = sorted(by_seed)
        all_results[env] = results
        frames = sorted({evals[-1]["env_frames"] for by_seed in methods.values() for evals in by_seed.values()})
        seeds = sorted({len(by_seed) for by_seed in methods.values()})
        header = f"## {env}\n\nFinal evaluation at {frames} env frames; seeds per method: {seeds}.\n\n"
        sections.append(header + markdown_table(results, baselines))
        if plots:
            plot_curves(env, methods, grid_dir / f"curves_{env}.png")
            plot_intervals(env, results, grid_dir / f"intervals_{env}.png")
    atomic_write_json(grid_dir / "results.json", all_results)
    with atomic_open(grid_dir / "results.md", "w") as f:
        f.write("# Results\n\n" + "\n".join(sections))
    return all_results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lit_dmash aggregate", description=__doc__.split("\n\n")[0])
    parser.add_argument("grid_dir", type=Path)
    parser.add_argument("--baselines", nargs="+", default=["dr", "dma"])
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    try:
        aggregate_grid(args.grid_dir, args.baselines, plots=not args.no_plots)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print((args.grid_dir / "results.md").read_text())
    return 0
