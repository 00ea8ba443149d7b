"""Zero-shot benchmark: train each arm on a task's `train` contexts, evaluate on every split.

    python bench/zero_shot.py --env di ode --seeds 5 --updates 1000 --out results/zero_shot
    python bench/zero_shot.py --quick            # di, 3 arms x 2 seeds, 200 updates: a few minutes on 2 cores

A fixed-format front end to the experiment grid (`lit_dmash.experiments.grid`, the same as
`python -m lit_dmash grid`): each (task, arm) is one `python -m lit_dmash fit -c
conf/<task>/<arm>.yaml` process training all seeds as a batch, `--workers` at a time with one
torch thread each, at the authors' settings except the budget (`--updates` after `--random-steps`
random vector steps). Finished jobs are skipped (delete `--runs` to start over). Writes, per task,
`<out>/<task>.json` as `{method: {split: {mean, iqm, ci, returns}}}` and `<out>/<task>.md`; the
whole grid's paper-style summary (normalised IQM per task / group / all, probability of
improvement, gains vs dr and concat) to `<out>/results.md` and `.json`; the command (with
`--runs`), the commit and whether the tree was dirty at the start, date, budget and wall time to
`<out>/meta.json`. Plots land in `--runs`. One `--runs` folder per variant: finished runs of
other fit arguments there are refused (see `lit_dmash.experiments.grid`).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from lit_dmash.analysis.aggregate import aggregate_grid
from lit_dmash.analysis.report_markdown import task_markdown
from lit_dmash.experiments.grid import GridSpec
from lit_dmash.experiments.launchers import launch
from lit_dmash.io import BenchRecord, atomic_write_json
from lit_dmash.methods import PAPER_ARMS


def fixed_format(summary: dict, task: str, methods: list[str]) -> dict:
    """`{method: {split: {mean, iqm, ci, returns}}}` of one task, the format this script has always written."""
    table = summary["tasks"][task]["methods"]
    return {
        method: {
            split: {"mean": s["mean"], "iqm": s["iqm"], "ci": s["ci"], "returns": s["aer"]}
            for split, s in table[method].items()
        }
        for method in methods
        if method in table
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", nargs="+", default=["di"], help="paper tasks (conf/<task>/ must exist)")
    parser.add_argument("--methods", nargs="+", default=list(PAPER_ARMS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--updates", type=int, default=1000, help="the authors' total_timesteps N (N + 1 updates)")
    parser.add_argument("--random-steps", type=int, default=5000, help="random vector steps before learning")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes per context")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="di, dr / dma_star / dmash, 2 seeds, 200 updates")
    parser.add_argument("--runs", type=Path, default=Path("bench/results/zero_shot_runs"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/zero_shot"))
    parser.add_argument(
        "--fit-arg",
        action="append",
        default=[],
        help="extra fit argument for every job, repeatable (e.g. --fit-arg=--model.context.leak_free=true)",
    )
    parser.add_argument("--baselines", nargs="*", default=["dr", "concat"], help="gains are reported against these")
    args = parser.parse_args(argv)
    if args.quick:
        args.env, args.methods, args.seeds, args.updates, args.random_steps = (
            ["di"],
            ["dr", "dma_star", "dmash"],
            2,
            200,
            1000,
        )
        args.episodes, args.runs = 3, args.runs.with_name(args.runs.name + "_quick")
    # The command with every value spelt out (--quick expanded), so that it reruns under new defaults.
    command = "python bench/zero_shot.py " + " ".join(
        f"--env {' '.join(args.env)} --methods {' '.join(args.methods)} --seeds {args.seeds} "
        f"--updates {args.updates} --random-steps {args.random_steps} --episodes {args.episodes} "
        f"--workers {args.workers} --runs {args.runs} --out {args.out}".split()
        + [f"--fit-arg={a}" for a in args.fit_arg]
        + ["--baselines", *args.baselines]
    )
    record = BenchRecord(command)  # the commit measured: read before anything runs

    spec = GridSpec(
        tasks=args.env,
        methods=args.methods,
        seeds=list(range(args.seeds)),
        args=[
            f"--model.protocol.total_steps={args.updates}",
            f"--model.protocol.random_steps={args.random_steps}",
            f"--trainer.callbacks.init_args.every_n_updates={max(args.updates, 1)}",  # at t = 0 and at the end
            f"--trainer.callbacks.init_args.episodes={args.episodes}",
            *args.fit_arg,
        ],
        workers=args.workers,
        out_dir=str(args.runs),
        baselines=args.baselines,
    )
    spec.validate()
    start = time.perf_counter()
    status = launch(spec, aggregate=False)
    if status == 2:  # --runs holds finished runs of other fit arguments: launch said which, in one line
        raise SystemExit(2)
    if status:
        raise SystemExit(f"some runs failed (exit {status}); see their fit.log under {args.runs}")
    summary = aggregate_grid(args.runs, baselines=args.baselines)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("results.md", "results.json"):
        shutil.copy(args.runs / name, args.out / name)
    for task in args.env:
        atomic_write_json(args.out / f"{task}.json", fixed_format(summary, task, args.methods))
        (args.out / f"{task}.md").write_text(task_markdown(summary, task))
    meta = {
        "benchmark": "zero_shot",
        "tasks": args.env,
        "methods": args.methods,
        "seeds": args.seeds,
        "updates": args.updates + 1,
        "random_steps": args.random_steps,
        "episodes_per_context": args.episodes,
        "fit_args": args.fit_arg,
        **record.finish(),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    atomic_write_json(args.out / "meta.json", meta)
    print((args.out / "results.md").read_text())
    print(f"wrote {args.out}/ ({meta['wall_s']} s)")


if __name__ == "__main__":
    main()
