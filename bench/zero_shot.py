"""Zero-shot benchmark on DI-Friction: train each method on `train`, evaluate on every split.

    python bench/zero_shot.py --methods dr dma dma_star dmash oracle --seeds 5 --out results.json
    python bench/zero_shot.py --quick            # 2 seeds, 10k frames: under 5 minutes on 2 cores

Each (method, seed) is one `python -m lit_dmash fit -c conf/di_friction/<method>.yaml` run (the
command a user would type), `--workers` at a time with one torch thread each. Runs that already
finished are reused (delete `--runs` to start over). A method may carry an adapter kind:
`dmash:lowrank`, `dmash:full`. Writes JSON `{method: {split: {mean, iqm, ci, returns}}}` and a
markdown table (mean AER, IQM with 95% stratified-bootstrap CI via rliable, relative gains);
seeds, frames, date and wall time go to `<out>.meta.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from lit_dmash.results import aggregate, final_returns, markdown_table

REPO = Path(__file__).resolve().parents[1]


def run_one(variant: str, seed: int, frames: int, runs: Path) -> tuple[str, int, Path, float]:
    method, _, adapter_kind = variant.partition(":")
    out = runs / variant.replace(":", "_") / f"seed{seed}"
    done = sorted(out.glob("lightning_logs/version_*/eval.json"))
    if done and json.loads(done[-1].read_text())["evaluations"][-1]["env_frames"] >= frames:
        return variant, seed, done[-1], 0.0
    cmd = [
        sys.executable,
        "-m",
        "lit_dmash",
        "fit",
        "-c",
        f"conf/di_friction/{method}.yaml",
        f"--seed_everything={seed}",
        f"--trainer.default_root_dir={out}",
        "--trainer.enable_progress_bar=false",
        f"--model.collector.total_frames={frames}",
    ]
    if adapter_kind:
        cmd.append(f"--model.context.adapter_kind={adapter_kind}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} seed {seed} failed:\n{proc.stderr[-2000:]}")
    return variant, seed, sorted(out.glob("lightning_logs/version_*/eval.json"))[-1], time.perf_counter() - start


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

    jobs = [(variant, seed) for seed in range(args.seeds) for variant in args.methods]
    start = time.perf_counter()
    per_seed: dict[str, dict[str, list[float]]] = {variant: {} for variant in args.methods}
    with ThreadPoolExecutor(args.workers) as pool:
        futures = [pool.submit(run_one, v, s, args.frames, args.runs) for v, s in jobs]
        for future in futures:
            variant, seed, eval_json, seconds = future.result()
            print(f"{variant:>16} seed {seed}: {seconds:6.1f} s  {final_returns(eval_json)}", flush=True)
    for variant, seed in jobs:  # in seed order, so returns[i] is seed i
        eval_json = sorted((args.runs / variant.replace(":", "_") / f"seed{seed}").glob("lightning_logs/*/eval.json"))
        for split, value in final_returns(eval_json[-1]).items():
            per_seed[variant].setdefault(split, []).append(value)

    results = aggregate(per_seed)
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
