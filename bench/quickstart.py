"""Time the README's main job (`fit -c conf/quickstart.yaml`) and keep its zero-shot result.

    python bench/quickstart.py --out results/quickstart.json            # the main job, then again with videos

Each variant is the real CLI in a fresh process (what a user runs after the install), in its own
run folder under `--runs`: `plain` is the command as README gives it, `video` adds
`--trainer.callbacks+=callbacks.PolicyVideo` (every split filmed at the end of training). Writes
the wall time of each, the video overhead, the final evaluation of seed 0 (AER per split, the
paper's mean over contexts of the mean return over episodes) and the command, commit, date,
machine and load average to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from lit_dmash.io import atomic_write_json, repo_commit

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"plain": [], "video": ["--trainer.callbacks+=callbacks.PolicyVideo"]}


def run_variant(name: str, runs: Path) -> dict:
    """One `fit` of the quickstart config in a fresh process: wall seconds and the final evaluation."""
    root = runs / name
    shutil.rmtree(root, ignore_errors=True)
    command = [sys.executable, "-m", "lit_dmash", "fit", "-c", "conf/quickstart.yaml"]
    command += [f"--trainer.default_root_dir={root}", "--trainer.enable_progress_bar=false", *VARIANTS[name]]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{name}: fit failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    final = json.loads((root / "seed0" / "eval.json").read_text())["evaluations"][-1]
    out = {"wall_s": round(wall, 1), "updates": final["updates"], "env_frames": final["env_frames"]}
    out["aer"] = {split: s["aer"] for split, s in final["splits"].items()}
    videos = sorted((root / "videos").glob("*.gif")) if (root / "videos").is_dir() else []
    out["videos"] = {p.name: p.stat().st_size for p in videos}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/quickstart.json"))
    parser.add_argument("--runs", type=Path, default=Path("bench/results/quickstart_runs"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    results = {name: run_variant(name, args.runs.resolve()) for name in args.variants}
    report = {
        "command": " ".join(["python", "bench/quickstart.py", *(argv if argv is not None else sys.argv[1:])]),
        "commit": repo_commit(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "load_1_5_15": {"start": load_start, "end": os.getloadavg()},
        "results": results,
    }
    if {"plain", "video"} <= results.keys():
        report["video_overhead_s"] = round(results["video"]["wall_s"] - results["plain"]["wall_s"], 1)
    atomic_write_json(args.out, report)
    for name, r in results.items():
        aer = ", ".join(f"{split} {value:.2f}" for split, value in r["aer"].items())
        print(f"{name}: {r['wall_s']} s, {r['updates']} updates; AER {aer}; videos {r['videos'] or 'none'}")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
