"""Zero-shot benchmark on DI-Friction: train each method on `train`, evaluate on every split.

    python bench/zero_shot.py --methods dr dma dma_star dmash oracle --seeds 5 --out results.json
    python bench/zero_shot.py --quick            # 2 seeds, 10k frames: under 5 minutes on 2 cores

A fixed-format front end to the experiment grid (`lit_dmash.grid`, the same as
`python -m lit_dmash grid`): each (method, seed) is one `python -m lit_dmash fit -c
conf/di_friction/<method>.yaml` run, `--workers` at a time with one torch thread each; finished
runs are skipped (delete `--runs` to start over). A method may carry an adapter kind:
`dmash:lowrank`, `dmash:full`. Writes JSON `{method: {split: {mean, iqm, ci, returns}}}` and a
markdown table (mean AER, IQM with 95% stratified-bootstrap CI via rliable, relative gains);
seeds, frames, date and wall time go to `<out>.meta.json`; plots land in `--runs`.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from lit_dmash.aggregate import aggregate_grid
from lit_dmash.grid import GridSpec, run_grid
from lit_dmash.results import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["dr", "dma", "dma_star", "dmash", "oracle"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=30_000, help="env frames per run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 10k frames")
    parser.add_argument("--runs", type=Path, default=Path("bench/results/zero_shot_runs"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/zero_shot.json"))
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.frames = 2, 10_000
        args.runs = args.runs.with_name(args.runs.name + "_quick")

    spec = GridSpec(
        envs=["di_friction"],
        methods=args.methods,
        seeds=list(range(args.seeds)),
        config="conf/{env}/{method}.yaml",
        args=[f"--model.collector.total_frames={args.frames}"],
        workers=args.workers,
        out_dir=str(args.runs),
    )
    spec.validate()
    start = time.perf_counter()
    failed = [r for r in run_grid(spec) if r["returncode"] != 0]
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed; see their fit.log under {args.runs}")
    labels = [m.replace(":", "_") for m in args.methods]
    everything = aggregate_grid(args.runs)["di_friction"]
    results = {label: everything[label] for label in labels}  # only the asked-for methods, in order
    table = markdown_table(results)
    meta = {
        "benchmark": "zero_shot",
        "env": "di_friction",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "seeds": args.seeds,
        "frames": args.frames,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))  # exactly {method: {split: {...}}}
    args.out.with_suffix(".meta.json").write_text(json.dumps(meta, indent=2))
    args.out.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {args.out}, .meta.json and .md ({meta['wall_s']} s)")


if __name__ == "__main__":
    main()
