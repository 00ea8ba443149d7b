"""Time the README's main job (`fit -c conf/quickstart.yaml`) and keep its zero-shot result.

    python bench/quickstart.py --out results/quickstart.json          # seeds 0, 1, 2, then seed 0 with videos
    python bench/quickstart.py --variants plain --seeds 0 --fit-arg=--model.method=dr \
        --runs bench/results/quickstart_dr --out results/quickstart_dr.json   # the baseline, same run

Each run is the real CLI in a fresh process (what a user runs after the install), in its own run
folder under `--runs`: `plain` is the command as README gives it (seed 0, then the other
`--seeds` with `--seed_everything`), `video` adds `--trainer.callbacks+=callbacks.PolicyVideo`
(every split filmed at the end of training). Writes, per run, the wall time, the AER per split (the
paper's mean over contexts of the mean return over episodes) at the first evaluation (the untrained
policy, t = 0) and at the last, whether the last closes at least half of the gap to `--reference`
(what DMA*-SH reaches on the task at the paper's budget), the video overhead, and the command,
commit, dirty flag, date, machine and load average to `--out`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from lit_dmash.io import BenchRecord, atomic_write_json, bench_command
from lit_dmash.names import seed_folder

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"plain": [], "video": ["--trainer.callbacks+=callbacks.PolicyVideo"]}


def run_variant(name: str, runs: Path, seed: int = 0, fit_args: list[str] | None = None) -> dict:
    """One `fit` of the quickstart config in a fresh process: wall seconds, first and last evaluation."""
    root = runs / f"{name}_seed{seed}"
    shutil.rmtree(root, ignore_errors=True)
    command = [sys.executable, "-m", "lit_dmash", "fit", "-c", "conf/quickstart.yaml"]
    command += [f"--trainer.default_root_dir={root}", "--trainer.enable_progress_bar=false", *VARIANTS[name]]
    command += [f"--seed_everything={seed}"] if seed else []
    command += fit_args or []
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{name}: fit failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    evaluations = json.loads((root / seed_folder(seed) / "eval.json").read_text())["evaluations"]
    first, final = evaluations[0], evaluations[-1]
    out = {"seed": seed, "wall_s": round(wall, 1), "updates": final["updates"], "env_frames": final["env_frames"]}
    out["aer_first"] = {split: s["aer"] for split, s in first["splits"].items()}
    out["aer"] = {split: s["aer"] for split, s in final["splits"].items()}
    videos = sorted((root / "videos").glob("*.gif")) if (root / "videos").is_dir() else []
    out["videos"] = {p.name: p.stat().st_size for p in videos}
    return out


def closes_half_the_gap(run: dict, reference: dict[str, float]) -> dict[str, bool]:
    """Per split: last AER >= (first + reference) / 2, the issue's bar for "visibly learns"."""
    return {split: run["aer"][split] >= (run["aer_first"][split] + reference[split]) / 2 for split in reference}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/quickstart.json"))
    parser.add_argument("--runs", type=Path, default=Path("bench/results/quickstart_runs"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="plain runs; videos: seed 0 only")
    parser.add_argument(
        "--fit-arg",
        action="append",
        default=[],
        help="an extra fit argument for every run, e.g. --fit-arg=--model.method=dr (repeatable)",
    )
    parser.add_argument(
        "--reference",
        type=json.loads,
        default=None,
        help="AER per split that DMA*-SH reaches at the paper's budget, as JSON: {split: AER}",
    )
    args = parser.parse_args(argv)
    record = BenchRecord(bench_command("bench/quickstart.py", argv))  # before anything runs
    runs = args.runs.resolve()
    results: dict[str, list[dict]] = {}
    for name in args.variants:
        seeds = args.seeds if name == "plain" else [0]
        results[name] = [run_variant(name, runs, seed, args.fit_arg) for seed in seeds]
        if args.reference:
            for run in results[name]:
                run["closes_half_the_gap"] = closes_half_the_gap(run, args.reference)
    report = {
        **record.finish(),
        "reference": args.reference,
        "fit_args": args.fit_arg,
        "results": results,
    }
    if {"plain", "video"} <= results.keys():
        report["video_overhead_s"] = round(results["video"][0]["wall_s"] - results["plain"][0]["wall_s"], 1)
    atomic_write_json(args.out, report)
    for name, runs_of in results.items():
        for r in runs_of:
            aer = ", ".join(f"{split} {r['aer_first'][split]:.1f} -> {r['aer'][split]:.1f}" for split in r["aer"])
            print(f"{name} seed {r['seed']}: {r['wall_s']} s, {r['updates']} updates; AER {aer}")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
