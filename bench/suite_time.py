"""Time what CI does: a fresh clone of the current commit, the README's install + test command.

    python bench/suite_time.py --out results/suite_time.json

Clones HEAD into a temporary folder, runs `.ci/run` there (a new venv, `pip install -r
requirements.txt`, the test command README.md gives), and records the total wall time, the
pytest summary line and its own time, the commit, the date, the cores and the load average.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from lit_dmash.io import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^=*\s*(\d+ passed.*) in ([\d.]+)s", re.M)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/suite_time.json"))
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        rev = ["git", "rev-parse", "--short", "HEAD"]
        commit = subprocess.run(rev, cwd=clone, capture_output=True, text=True, check=True).stdout.strip()
        start = time.perf_counter()
        proc = subprocess.run(["bash", ".ci/run"], cwd=clone, capture_output=True, text=True)
        wall = time.perf_counter() - start
    tail = (proc.stdout + proc.stderr)[-4000:]
    match = SUMMARY.search(proc.stdout)
    report = {
        "command": f"python bench/suite_time.py --out {args.out}",
        "commit": commit,  # what was cloned and tested
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "load_1_5_15": {"start": load_start, "end": os.getloadavg()},
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
