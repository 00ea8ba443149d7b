"""Collect the paper-budget grid into results/paper_budget/: every seed's eval.json, the aggregate, the figures.

    python -m lit_dmash grid -c conf/grids/paper_budget.yaml                  # the runs (many core-hours)
    python bench/paper_budget.py --grid runs/grids/paper_budget --out results/paper_budget

Copies `<grid>/<task>/<method>/seed<k>/eval.json` (never checkpoints or event files) to `--out`,
keeping a committed run that got further than the grid's (a fresh machine's grid restarts at 0), and
writes there:
- `status.json`: per run the updates reached of the budget, and the commits that ran it (`commit`: the
  last; `commits`: each evaluation's, in order);
- the aggregate (`python -m lit_dmash aggregate` on the runs cut at the last evaluation that every
  run of a task has reached, so arms are compared at the same number of updates; with
  `--min-updates N` the arms with a run short of N updates are left out of it, so a grid in
  progress is compared where most arms have got to): `results.md`,
  `results.json`, `curves_<task>.png` (AER against updates per split, mean and 95 % CI over seeds,
  one line per arm; full curves, not cut), `intervals_*.png`, `improvement.png`;
- `per_context_<task>.png` for tasks with a binary (sign) context key: each arm's per-context
  return at its best and at its last evaluation, inverted and normal contexts apart, mean over seeds;
  the paper's story (a context-blind policy learns one sign family) is visible there or visibly absent.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from lit_dmash.analysis.aggregate import aggregate_grid
from lit_dmash.analysis.grid_results import collect
from lit_dmash.analysis.plots import method_colours, plot_curves, pyplot, save_figure
from lit_dmash.analysis.results import method_order
from lit_dmash.envs import task_spec
from lit_dmash.io import BenchRecord, atomic_write_json, bench_command
from lit_dmash.names import SEED_FOLDER_PATTERN, seed_folder

REPO = Path(__file__).resolve().parents[1]


def last_update(record: dict) -> int:
    evaluations = record["evaluations"]
    return evaluations[-1]["updates"] if evaluations else 0


def evaluation_commits(record: dict) -> list[str | None]:
    """The commits that ran a record's evaluations, in order (a run resumed at a later commit has
    several); None for evaluations written before they named their commit. Where no evaluation names
    one, the record's own commit (its last writer's)."""
    commits = list(dict.fromkeys(entry.get("commit") for entry in record["evaluations"]))
    return [record.get("commit")] if commits in ([], [None]) else commits


def copy_evaluations(grid: Path, out: Path) -> dict:
    """Copy every seed's eval.json; returns the status per run, the committed one's status kept where
    the grid has no run or a run that got less far.

    A grid folder is machine-local (checkpoints are never committed), so on a fresh machine a run
    restarts from update 0: its early eval.json must not replace a committed one that got further.
    """
    previous = out / "status.json"
    status: dict = json.loads(previous.read_text())["runs"] if previous.is_file() else {}
    for path in sorted(grid.glob(f"*/*/{SEED_FOLDER_PATTERN}/eval.json")):
        task, method, seed_dir = path.parts[-4], path.parts[-3], path.parts[-2]
        target = out / task / method / seed_dir / "eval.json"
        record = json.loads(path.read_text())
        committed = last_update(json.loads(target.read_text())) if target.is_file() else -1
        if committed > last_update(record):
            print(
                f"{task} {method} {seed_dir}: kept the committed run ({committed:,} updates) over the grid's "
                f"({last_update(record):,})"
            )
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        status.setdefault(task, {}).setdefault(method, {})[seed_dir] = {
            "updates": last_update(record),
            "budget": task_spec(task).updates + 1,
            "finished": (path.parent / "done.json").exists(),
            "commit": record.get("commit"),
            "commits": evaluation_commits(record),
        }
    return status


def cut_at_common_update(runs: dict, scratch: Path, min_updates: int = 0) -> tuple[dict[str, int], dict[str, list]]:
    """A copy of `runs` (as `collect` gives them) under `scratch` with each task's evaluations cut at
    the last update all its runs reached, and the arms left out because one of their runs has not
    reached `min_updates` yet (per task)."""
    common: dict[str, int] = {}
    left_out: dict[str, list] = {}
    for task, all_methods in runs.items():
        last = {m: min(r["evaluations"][-1]["updates"] for r in seeds.values()) for m, seeds in all_methods.items()}
        left_out[task] = sorted(m for m, reached in last.items() if reached < min_updates)
        methods = {m: seeds for m, seeds in all_methods.items() if m not in left_out[task]}
        if not methods:
            continue
        common[task] = min(last[m] for m in methods)
        for method, seeds in methods.items():
            for seed, record in seeds.items():
                kept = [e for e in record["evaluations"] if e["updates"] <= common[task]]
                target = scratch / task / method / seed_folder(seed) / "eval.json"
                atomic_write_json(target, record | {"evaluations": kept})
    return common, left_out


def broken_across(x: np.ndarray, y: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """`x`, `y` (x sorted) with a NaN between neighbours on either side of the open range (low, high),
    so that a line over eval_out contexts, which lie below and above the training range, does not draw
    a segment across that range, where no eval_out context was evaluated."""
    straddles = np.flatnonzero((x[:-1] <= low) & (x[1:] >= high)) + 1
    return np.insert(x.astype(float), straddles, np.nan), np.insert(y.astype(float), straddles, np.nan)


def plot_per_context(task: str, methods: dict[str, dict[int, dict]], colours: dict) -> object | None:
    """Per-context returns (mean over seeds) at the best and the last evaluation, inverted vs normal."""
    names = [key.name for key in task_spec(task).keys]
    binary = [i for i, key in enumerate(task_spec(task).keys) if key.binary]
    if not binary:
        return None
    sign, value = binary[0], next(i for i in range(len(names)) if i != binary[0])
    train_range = task_spec(task).keys[value].train
    plt = pyplot()
    splits = list(next(iter(next(iter(methods.values())).values()))["evaluations"][0]["splits"])
    fig, axes = plt.subplots(2, len(splits), figsize=(4.2 * len(splits), 6.4), squeeze=False, sharey=True)
    for column, split in enumerate(splits):
        for row, which in enumerate(("best", "last")):
            ax = axes[row, column]
            for method, seeds in methods.items():
                per_seed = []
                for record in seeds.values():
                    evaluations = record["evaluations"]
                    index = (
                        -1 if which == "last" else int(np.argmax([e["splits"]["train"]["aer"] for e in evaluations]))
                    )
                    per_seed.append(evaluations[index]["splits"][split]["per_context"])
                contexts = np.array(next(iter(seeds.values()))["evaluations"][-1]["splits"][split]["contexts"])
                mean = np.mean(per_seed, axis=0)
                for inverted, marker, style in ((True, "v", "--"), (False, "^", "-")):
                    keep = (contexts[:, sign] < 0) == inverted
                    order = np.argsort(contexts[keep, value])
                    label = f"{method} ({'inverted' if inverted else 'normal'})" if column == 0 and row == 0 else None
                    ax.plot(
                        *broken_across(contexts[keep, value][order], mean[keep][order], *train_range),
                        style,
                        marker=marker,
                        markersize=4,
                        color=colours[method],
                        label=label,
                    )
            ax.set_title(f"{task} {split}: {which} evaluation")
            ax.set_xlabel(names[value])
    axes[0, 0].set_ylabel("return per context (mean over seeds)")
    axes[1, 0].set_ylabel("return per context (mean over seeds)")
    fig.legend(loc="lower center", ncol=4, fontsize="small", bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", type=Path, default=Path("runs/grids/paper_budget"))
    parser.add_argument("--out", type=Path, default=REPO / "results" / "paper_budget")
    parser.add_argument("--baselines", nargs="+", default=["dr", "concat"])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument(
        "--min-updates",
        type=int,
        default=0,
        help="leave out of the aggregate (not the curves) the arms with a run short of this many updates, "
        "so that a grid in progress is compared where its arms have got to",
    )
    args = parser.parse_args(argv)
    record = BenchRecord(bench_command("bench/paper_budget.py", argv))  # before anything runs
    status = copy_evaluations(args.grid, args.out)
    runs = collect(args.out)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch) / args.out.name  # the aggregate titles its report with the folder's name
        tmp.mkdir()
        common, left_out = cut_at_common_update(runs, tmp, args.min_updates)
        compared = {m for task in common for m in runs[task] if m not in left_out[task]}
        baselines = [b for b in args.baselines if b in compared]
        summary = aggregate_grid(tmp, baselines=baselines, plots=True, reps=args.reps)
        for produced in Path(tmp).glob("*.*"):
            if produced.suffix in (".md", ".json", ".png") and produced.name != "eval.json":
                shutil.copyfile(produced, args.out / produced.name)
    methods = method_order(sorted({m for task in runs.values() for m in task}), args.baselines)
    colours = method_colours(methods)
    for task, by_method in runs.items():
        ordered = {m: by_method[m] for m in methods if m in by_method}
        splits = list(next(iter(next(iter(ordered.values())).values()))["evaluations"][0]["splits"])
        save_figure(plot_curves(task, ordered, splits, args.reps, colours), args.out / f"curves_{task}.png")
        figure = plot_per_context(task, ordered, colours)
        if figure is not None:
            save_figure(figure, args.out / f"per_context_{task}.png")
    report = {
        **record.finish(),
        "compared_at_updates": common,
        "left_out_of_the_aggregate": left_out,
        "runs": status,
    }
    atomic_write_json(args.out / "status.json", report)
    for task, methods_status in status.items():
        for method, seeds in methods_status.items():
            reached = ", ".join(f"{s} {v['updates']:,}" for s, v in seeds.items())
            print(f"{task} {method}: {reached} of {next(iter(seeds.values()))['budget']:,} updates")
    print(f"compared at updates {common}; left out of the aggregate: {left_out}; wrote {args.out}")
    return summary


if __name__ == "__main__":
    main()
