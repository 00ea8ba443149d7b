"""Small file and provenance helpers: writes that a crash cannot leave half-done, and what a result ran at."""

from __future__ import annotations

import functools
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Write to a temporary file beside `path`; on success fsync it and rename it over `path`.

    The rename is atomic within a filesystem (hence "beside"): readers see the old file or the
    complete new one, never a partial write. On any error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, data: Any) -> None:
    with atomic_open(path, "w") as f:
        json.dump(data, f, indent=2)


@functools.cache
def repo_commit() -> str | None:
    """The short git commit of this checkout (recorded with every result), or None outside git."""
    return _git(Path(__file__).resolve().parent, "rev-parse", "--short", "HEAD") or None


def _git(cwd: Path, *args: str) -> str | None:
    """`git args` run in `cwd`: its stripped output, or None where git or the repository is missing."""
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def repo_state(path: str | Path | None = None) -> dict[str, Any]:
    """`{"commit", "working_tree_dirty"}` of the checkout at `path` (default: this one), read now.

    Benchmarks call it when they start: what they measure is that commit, plus the uncommitted
    changes to tracked files if `working_tree_dirty` (untracked files are not counted). None where
    git cannot say.
    """
    cwd = Path(path) if path is not None else Path(__file__).resolve().parent
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    dirty = None if status is None else bool(status)
    return {"commit": _git(cwd, "rev-parse", "--short", "HEAD"), "working_tree_dirty": dirty}


def bench_command(script: str, argv: Sequence[str] | None = None) -> str:
    """The shell line that reruns a bench script: `python <script> <argv or sys.argv[1:]>`."""
    return shlex.join(["python", script, *(sys.argv[1:] if argv is None else argv)])


class BenchRecord:
    """What a benchmark's JSON says about how it ran: command, commit, dirty flag, date, CPU, cores, load.

    Make it before anything runs, so that the commit and dirty flag are those of the code measured
    (a commit made while a long bench runs is not what ran); `finish()` reads the date and the load
    at the end. The 1/5/15-minute load average at both ends is there because a second busy process
    slows a 2-core machine ~1.5x, and a reader of a timing needs to know; the CPU model because the
    same 2-core setting has timed the paper-sized ODE run at 0.09 and at 0.18 s per update on two CPUs.
    """

    def __init__(self, command: str, repo: str | Path | None = None) -> None:
        self.command = command
        self.state = repo_state(repo)
        self.load_start = os.getloadavg()

    def finish(self) -> dict[str, Any]:
        return {
            "command": self.command,
            **self.state,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "load_1_5_15": {"start": self.load_start, "end": os.getloadavg()},
        }


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
