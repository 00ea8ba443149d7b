"""`python -m lit_dmash grid -c FILE [...]`: the command line over `grid` (the jobs) and `launchers`.

Its own module so that the dependency runs one way: launchers import grid, this imports both.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

from lit_dmash.errors import ConfigError
from lit_dmash.experiments import grid, launchers


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lit_dmash grid", description=grid.__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--config", required=True, help="grid YAML (see conf/grids/)")
    parser.add_argument("--launcher", default=None, help=f"one of {', '.join(grid.LAUNCHERS)} (default: the grid's)")
    parser.add_argument("--workers", type=int, default=None, help="pool/submitit-local: jobs in parallel")
    parser.add_argument("--out-dir", default=None, help="override the grid's out_dir")
    parser.add_argument(
        "--tasks", nargs="+", default=None, help="run these tasks instead of the grid's (same out_dir layout)"
    )
    parser.add_argument(
        "--methods", nargs="+", default=None, help="run these methods instead of the grid's (same out_dir layout)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print every job's command (and slurm settings)")
    parser.add_argument("--wait", action="store_true", help="slurm: wait for the jobs, report, aggregate")
    parser.add_argument("--no-aggregate", action="store_true", help="skip results.md / plots")
    return parser


def load_with_overrides(args: argparse.Namespace) -> grid.GridSpec:
    """The grid file with the command line's overrides applied and checked."""
    spec = grid.GridSpec.load(args.config)
    if args.launcher is not None:
        if args.launcher not in grid.LAUNCHERS:
            raise ConfigError("launcher", args.launcher, f"expected one of {list(grid.LAUNCHERS)}")
        spec.launcher = args.launcher
    if args.workers is not None:
        if args.workers < 1:
            raise ConfigError("workers", args.workers, "expected an integer >= 1")
        spec.workers = args.workers
    if args.out_dir is not None:
        spec.out_dir = args.out_dir
    # A slice of a grid (one arm on one task, an arm the file lacks) without copying its YAML: each
    # job keeps the folder and fit arguments it has in the full grid, so it resumes there.
    if args.tasks is not None:
        spec.tasks = args.tasks
    if args.methods is not None:
        spec.methods = args.methods
    spec.validate()
    return spec


@contextlib.contextmanager
def _stop_fits_on_sigterm() -> Iterator[None]:
    """While inside: SIGTERM to the grid (not its process group) acts like Ctrl-C. The running fits are
    sent SIGTERM (they save `last.ckpt`), no further job starts, and the grid exits 130 once they have
    stopped; without this the grid would die at once and leave its fits running, orphaned."""

    def handler(signum: int, frame: object) -> None:
        grid.stop_running_fits()
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():  # signal handlers live there only
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with _stop_fits_on_sigterm():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        spec = load_with_overrides(args)
        if args.dry_run:
            return launchers.dry_run(spec)
        problems = spec.problems()
        if problems:
            raise problems[0]
        return launchers.launch(spec, wait=args.wait, aggregate=not args.no_aggregate)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
