"""Time what CI does: a fresh clone of the current commit, the README's install + test command.

    python bench/suite_time.py --out results/suite_time.json
    python bench/suite_time.py --fast --out results/suite_time_fast.json   # the developers' fast layer

Clones HEAD into a temporary folder, runs `.ci/run` there (a new venv, `pip install -r
requirements.txt`, the test command README.md gives), and records the total wall time, the
pytest summary line and its own time, the commit, whether the checkout had uncommitted changes
to tracked files at the start (they are not in the clone, so not timed), the date, the cores and
the load average. `--fast` times the fast layer (the tests not marked `integration`) in the clone
with this interpreter instead: what a developer runs while working.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lit_dmash.io import BenchRecord, atomic_write_json, bench_command

REPO = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^=*\s*(\d+ passed.*?) in ([\d.]+)s", re.M)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/suite_time.json"))
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose HEAD is cloned and timed")
    parser.add_argument(
        "--fast",
        action="store_true",
        help='time the developers\' fast layer instead (`pytest -m "not integration"` in the clone, this '
        "interpreter, no install)",
    )
    args = parser.parse_args(argv)
    # Uncommitted changes are not in the clone: recorded (the dirty flag), not timed.
    record = BenchRecord(bench_command("bench/suite_time.py", argv), repo=args.repo)
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(args.repo), str(clone)], check=True)
        rev = ["git", "rev-parse", "--short", "HEAD"]
        commit = subprocess.run(rev, cwd=clone, capture_output=True, text=True, check=True).stdout.strip()
        start = time.perf_counter()
        if args.fast:
            fast = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not integration"]
            env = {**os.environ, "PYTHONPATH": str(clone)}  # the clone's code, not an installed copy
            proc = subprocess.run(fast, cwd=clone, capture_output=True, text=True, env=env)
        else:
            proc = subprocess.run(["bash", ".ci/run"], cwd=clone, capture_output=True, text=True)
        wall = time.perf_counter() - start
    tail = (proc.stdout + proc.stderr)[-4000:]
    match = SUMMARY.search(proc.stdout)
    report = {
        **record.finish(),
        "commit": commit,  # what was cloned and tested
        "layer": "fast (-m 'not integration')" if args.fast else "all (.ci/run: install + README's test command)",
        "returncode": proc.returncode,
        "total_wall_s": round(wall, 1),
        "pytest_summary": match.group(1) if match else None,
        "pytest_s": float(match.group(2)) if match else None,
    }
    if proc.returncode:
        report["output_tail"] = tail
    atomic_write_json(args.out, report)
    print(f"exit {proc.returncode}: {wall:.0f} s in all; pytest: {report['pytest_summary']} in {report['pytest_s']} s")
    return report


if __name__ == "__main__":
    main()
