"""How grid jobs run: a local process pool, submitit's LocalExecutor, or a slurm job array.

Every launcher calls `grid.run_job` on the unfinished jobs, so the files a job leaves (fit.log,
done.json, checkpoints) and therefore skipping, resuming and aggregating are the same whichever
launched it. `pool` and `submitit-local` keep `workers` jobs running and print a progress line per
finished job; `slurm` submits one job array and returns, unless `--wait`.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from lit_dmash.errors import ConfigError
from lit_dmash.experiments.grid import GridSpec, Job, relative, run_job, run_job_in_submitit

TAIL_LINES = 20


def say(line: str) -> None:
    """Progress goes out at once, also when stdout is a file (nohup, slurm logs)."""
    print(line, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def _eta(seconds: float) -> str:
    """H:MM, rounded up: an ETA of 0:00 means done now."""
    minutes = int(-(-seconds // 60))
    return f"{minutes // 60}:{minutes % 60:02d}"


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last `lines` lines of a log; none if it was never written."""
    if not path.is_file():
        return []
    with path.open(errors="replace") as f:
        return f.read().splitlines()[-lines:]


def failure_record(job: Job, error: BaseException | str, wall_s: float) -> dict[str, Any]:
    """A record for a job that ended without the fit's exit code (killed, timed out, not startable)."""
    message = str(error).strip().splitlines()[-1:] or [type(error).__name__]
    return {
        "task": job.task,
        "method": job.variant,
        "seeds": list(job.pending_seeds or job.seeds),
        "returncode": None,
        "wall_s": round(wall_s, 1),
        "error": message[0],
    }


class Progress:
    """One line per finished job with an ETA; a failed job's exit code and the tail of its fit.log."""

    def __init__(self, total: int, parallel: int, log: Callable[[str], Any] = say) -> None:
        self.total, self.parallel, self.log = total, max(1, min(parallel, total)), log
        self.durations: list[float] = []
        self.failed: list[Job] = []

    def report(self, job: Job, record: dict[str, Any]) -> None:
        self.durations.append(float(record["wall_s"]))
        n = len(self.durations)
        remaining = self.total - n
        eta = _eta(sum(self.durations) / n * remaining / min(self.parallel, max(remaining, 1)))
        head = f"[{n}/{self.total}] {job.name}"
        if record["returncode"] == 0:
            self.log(f"{head} done in {_duration(record['wall_s'])}, ETA {eta}")
            return
        self.failed.append(job)
        why = f"exit {record['returncode']}" if record["returncode"] is not None else record.get("error", "killed")
        log_path = job.root / "fit.log"
        lines = tail(log_path)
        where = f"; last {len(lines)} lines of {log_path}:" if lines else f"; no {log_path}"
        self.log(f"{head} FAILED ({why}) after {_duration(record['wall_s'])}, ETA {eta}{where}")
        for line in lines:
            self.log(f"    | {line}")


def run_pool(jobs: list[Job], workers: int, progress: Progress) -> None:
    """Today's launcher: `workers` threads, each waiting on one fit process at a time.

    On Ctrl-C no further job starts; the running fits (which got the SIGINT too) save and stop.
    """
    pool = ThreadPoolExecutor(workers)
    try:
        started = time.perf_counter()
        futures = {pool.submit(run_job, job, 1): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                record = future.result()
            except OSError as error:  # the fit command itself could not start
                record = failure_record(job, error, time.perf_counter() - started)
            progress.report(job, record)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _outcome(submitted: Any, job: Job, started: float) -> dict[str, Any]:
    """A submitit job's record; a killed or crashed job (timeout, OOM, cancel) becomes a failure record."""
    try:
        return submitted.result()
    except Exception as error:  # submitit re-raises whatever ended the job, as its own error types
        return failure_record(job, error, time.perf_counter() - started)


def watch(
    progress: Progress,
    running: dict[Any, tuple[Job, float]],
    queue: list[Job] | None = None,
    submit: Callable[[Job], Any] | None = None,
    slots: int = 1,
    poll_s: float = 0.2,
) -> None:
    """Report submitit jobs as they end, submitting from `queue` to keep `slots` running."""
    queue = list(queue or [])
    while queue or running:
        while queue and submit is not None and len(running) < slots:
            job = queue.pop(0)
            running[submit(job)] = (job, time.perf_counter())
        ended = [submitted for submitted in running if submitted.done()]
        if not ended:
            time.sleep(poll_s)
            continue
        for submitted in ended:
            job, started = running.pop(submitted)
            progress.report(job, _outcome(submitted, job, started))


def _submitit(launcher: str) -> Any:
    try:
        import submitit
    except ImportError as error:
        raise ConfigError("launcher", launcher, "needs submitit: pip install -r requirements.txt") from error
    return submitit


def run_submitit_local(spec: GridSpec, jobs: list[Job], progress: Progress) -> None:
    """submitit's LocalExecutor, `workers` jobs at a time (it would start every submitted job at once)."""
    executor = _submitit("submitit-local").LocalExecutor(folder=spec.slurm.folder_path(spec.out))
    executor.update_parameters(timeout_min=spec.slurm.minutes)
    watch(progress, {}, jobs, lambda job: executor.submit(run_job_in_submitit, job, 1), slots=spec.workers)


def submit_slurm(spec: GridSpec, jobs: list[Job]) -> list[Any]:
    """One slurm job array, one task per grid job; needs sbatch and srun on this machine."""
    for tool in ("sbatch", "srun"):
        if shutil.which(tool) is None:
            raise ConfigError("launcher", "slurm", f"no {tool} here: run on a slurm login node, or use --dry-run")
    executor = _submitit("slurm").SlurmExecutor(folder=spec.slurm.folder_path(spec.out))
    executor.update_parameters(**spec.slurm.executor_parameters(spec.out))
    threads = [spec.slurm.cpus_per_task] * len(jobs)
    return executor.map_array(run_job_in_submitit, jobs, threads)


def _aggregate_hint(spec: GridSpec) -> str:
    return f"python -m lit_dmash aggregate {relative(spec.out)} --baselines {' '.join(spec.baselines)}"


def launch(spec: GridSpec, wait: bool = False, aggregate: bool = True) -> int:
    """Run (or submit) every unfinished job; returns the exit status (1 if any job failed or the
    aggregation did, 2 if out_dir holds finished runs of other fit arguments, 130 on Ctrl-C)."""
    mismatches = spec.argument_mismatches()
    if mismatches:
        more = f" ({len(mismatches) - 1} more job(s) like it)" if len(mismatches) > 1 else ""
        print(f"error: {mismatches[0][1]}{more}", file=sys.stderr)
        return 2
    jobs = spec.jobs()
    pending = [job for job in jobs if not job.finished]
    say(f"grid: {len(jobs)} job(s), {len(jobs) - len(pending)} already finished, {len(pending)} to run")
    try:
        if spec.launcher == "slurm" and pending:
            return _launch_slurm(spec, pending, wait, aggregate)
        progress = Progress(len(pending), spec.workers)
        if pending and spec.launcher == "pool":
            run_pool(pending, spec.workers, progress)
        elif pending:
            run_submitit_local(spec, pending, progress)
    except KeyboardInterrupt:
        print("grid: interrupted; stopped fits save last.ckpt, and the next call resumes them", file=sys.stderr)
        return 130
    return finish(spec, progress, aggregate)


def _launch_slurm(spec: GridSpec, pending: list[Job], wait: bool, aggregate: bool) -> int:
    submitted = submit_slurm(spec, pending)
    folder = spec.slurm.folder_path(spec.out)
    print(f"submitted {len(submitted)} job(s) to slurm as job {submitted[0].job_id.split('_')[0]}; logs: {folder}")
    if not wait:
        print(f"not waiting; once they are done: {_aggregate_hint(spec)}")
        return 0
    progress = Progress(len(pending), spec.slurm.array_parallelism)
    try:
        watch(progress, {s: (job, time.perf_counter()) for s, job in zip(submitted, pending, strict=True)}, poll_s=30)
    except KeyboardInterrupt:
        print(f"grid: stopped waiting; the jobs run on; once they are done: {_aggregate_hint(spec)}", file=sys.stderr)
        return 130
    return finish(spec, progress, aggregate)


def finish(spec: GridSpec, progress: Progress, aggregate: bool) -> int:
    """Aggregate whatever finished; say in one line how many jobs failed. Non-zero if any job or the
    aggregation failed."""
    if progress.failed and len(progress.failed) == progress.total:
        print(f"grid: all {progress.total} job(s) failed; see the fit.log lines above", file=sys.stderr)
    aggregated = True
    if aggregate and any(job.finished for job in spec.jobs()):
        aggregated = _aggregate(spec)
    if progress.failed and len(progress.failed) < progress.total:
        names = ", ".join(job.name for job in progress.failed)
        count = f"{len(progress.failed)} of {progress.total}"
        print(f"grid: {count} job(s) failed ({names}); see their fit.log", file=sys.stderr)
    return 1 if progress.failed or not aggregated else 0


def _aggregate(spec: GridSpec) -> bool:
    """Write results.md / results.json / plots; False (after one line saying why) if that failed."""
    from lit_dmash.analysis.aggregate import aggregate_grid

    try:
        aggregate_grid(spec.out, baselines=spec.baselines)
        print(f"results: {spec.out / 'results.md'}")
        return True
    except FileNotFoundError as error:  # no job reached its first evaluation
        print(f"no results to aggregate: {error}", file=sys.stderr)
    except Exception as error:  # the jobs' results stand; the aggregate can be rerun on its own
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(f"aggregate failed ({type(error).__name__}: {message}); rerun: {_aggregate_hint(spec)}", file=sys.stderr)
    return False


def dry_run(spec: GridSpec) -> int:
    """Print every job's state and exact command (a job to resume: its seeds' last evaluation; slurm: the
    settings); start and submit nothing."""
    jobs = spec.jobs()
    pending = [job for job in jobs if not job.finished]
    print(
        f"grid: {len(jobs)} job(s), {len(jobs) - len(pending)} finished, {len(pending)} to run "
        f"with launcher {spec.launcher}; dry run, nothing started"
    )
    if spec.launcher == "slurm":
        _print_slurm(spec, len(pending))
    for job in jobs:
        state = "finished" if job.finished else "resume" if job.resumable_checkpoint() else "pending"
        print(f"[{state}] {shlex.join(job.command())}")
        reached = job.evaluated_updates() if state == "resume" else {}
        if reached:
            print("    last evaluation: " + ", ".join(f"seed{seed} {updates:,}" for seed, updates in reached.items()))
    problems = spec.problems()
    for problem in problems[:5]:
        print(f"warning: {problem}", file=sys.stderr)
    if problems:
        more = f" ({len(problems) - 5} more)" if len(problems) > 5 else ""
        print(f"warning: launching would refuse this grid{more}", file=sys.stderr)
    return 0


def _print_slurm(spec: GridSpec, count: int) -> None:
    params = spec.slurm.executor_parameters(spec.out)
    print(f"slurm: one job array of {count} job(s), folder {spec.slurm.folder_path(spec.out)}")
    print("slurm executor parameters (SlurmExecutor.update_parameters; time in minutes), for every job:")
    for key, value in params.items():
        print(f"  {key}={value!r}")
    threads = spec.slurm.cpus_per_task
    print(f"each job runs lit_dmash.experiments.grid.run_job_in_submitit(job, threads={threads}): its command below")
