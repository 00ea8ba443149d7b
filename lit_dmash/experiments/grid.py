"""Experiment grids: tasks x methods x seeds, run as `python -m lit_dmash fit` jobs.

The grid file's schema and its jobs; `launchers` runs them and `grid_cli` is the command line:

    python -m lit_dmash grid -c conf/grids/di_friction.yaml [--workers 2] [--dry-run]
    python -m lit_dmash grid -c conf/grids/paper_main.yaml --launcher slurm [--dry-run] [--wait]

The grid only launches and collects: Lightning trains. A job is one fit process. With
`group_seeds: true` (the default) one job trains all seeds of a task x method variant as a batch
(`--model.seeds=[0,1,...]`) in the job folder `<out_dir>/<task>/<variant>/`; with `false` each
seed is its own job in `<out_dir>/<task>/<variant>/seed<k>/`. A job folder is the fit's
`default_root_dir`: it holds `fit.log` (the process output), `lightning_logs/version_*/`
(TensorBoard, `config.yaml`, `checkpoints/last.ckpt`) and a `seed<k>/` folder per seed with its
`eval.json` (a single-seed job's is thus `seed<k>/seed<k>/`; `seed_dirs` finds both layouts, and
one out_dir holds only one). When the fit exits 0, `done.json` is written atomically into every
`seed<k>/`, then into the job folder, with the job's fit arguments (config, method, `args`,
adapter). A job is finished when all its seeds are: a second call skips finished jobs, trains
only a group's unfinished seeds, and resumes an interrupted job with `--ckpt_path last` if it
left a checkpoint (the fit refuses a resume under a changed protocol). A job folder holding
finished runs of other fit arguments is refused in one line before anything runs: they are
neither skipped (filed under this grid) nor mixed with new ones. Every launcher runs the same `run_job`, so skipping,
resuming and aggregating do not depend on the launcher. At the end `aggregate` writes
`results.md`, `results.json` and plots to out_dir (slurm prints that command, unless `--wait`);
a grid whose aggregation fails exits 1, like one whose jobs failed.

Grid file (every key; `tasks`, `methods` and `seeds` are required):

```yaml
tasks: [di_friction]                       # config folders under conf/ (was `envs`, now refused)
methods: [dr, dma, dmash, dmash:lowrank]   # method[:adapter]; the adapter becomes --model.context.adapter
seeds: [0, 1, 2]
group_seeds: true                          # one job per task x variant (false: one per seed)
order: task                                # task: each task's methods in turn; method: each method on every task
config: conf/{task}/{method}.yaml          # per-job config; {task} and {method} (without :adapter) are filled in
args: ["--model.protocol.total_steps=10000"]  # extra fit arguments for every job
workers: 1                                 # pool / submitit-local: jobs in parallel (one torch thread each)
out_dir: runs/grids/<grid file name>       # relative to the caller's directory
baselines: [dr, dma]                       # relative gains are reported against these
launcher: pool                             # pool | submitit-local | slurm (--launcher overrides it)
slurm:                                     # slurm / submitit-local settings (see SlurmSpec)
  partition: null
  account: null
  qos: null
  time: "72:00:00"                         # [D-]HH:MM:SS, or minutes
  cpus_per_task: 1                         # also the job's torch threads under slurm
  mem: 8G                                  # per job, with a K/M/G/T unit
  gpus_per_node: 0
  array_parallelism: 256                   # array jobs running at once
  job_name: null                           # default lit-dmash-<out_dir name>
  folder: null                             # submitit's logs and pickles; default <out_dir>/submitit
  setup: []                                # shell lines run before each job (module load, venv)
  additional: {}                           # any other sbatch option, e.g. {mail-type: FAIL}
```

Test hook: the environment variable `LIT_DMASH_GRID_FIT` (a shell-quoted command) replaces
`python -m lit_dmash fit` in every job's command; it exists for the tests' stand-in fit script.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from lit_dmash.errors import ConfigError
from lit_dmash.io import atomic_write_json
from lit_dmash.names import ADAPTER_KINDS, BASELINES, SEED_FOLDER_PATTERN, parse_seed_folder, seed_folder

REPO = Path(__file__).resolve().parents[2]
LAUNCHERS = ("pool", "submitit-local", "slurm")
JOB_ORDERS = ("task", "method")  # grid.order: which loop of tasks x methods is the outer one
STOP_GRACE_S = 120  # how long an interrupted job waits for its fit to save a checkpoint
FIT_COMMAND_ENV = "LIT_DMASH_GRID_FIT"  # test-only: replaces `python -m lit_dmash fit`
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def latest_checkpoint(root: Path) -> Path | None:
    """The newest `**/checkpoints/last.ckpt` under `root`: what `fit --ckpt_path last` resumes.

    The same rule as `lit_dmash.checkpointing.latest_last_checkpoint` (a test keeps them equal),
    not imported because it pulls torch and Lightning into every grid and submitit process.
    """
    found = [p for p in root.glob("**/checkpoints/last.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def seed_dirs(out_dir: str | Path) -> list[tuple[str, str, int, Path]]:
    """`(task, variant folder, seed, seed folder)` for every seed folder of a grid, in either layout.

    Seed groups: `<task>/<variant>/seed<k>/`; single-seed jobs: `<task>/<variant>/seed<k>/seed<k>/`
    (the job folder is the fit's root, which puts the seed's outputs in its own `seed<k>/`).
    """
    found = []
    for path in Path(out_dir).glob(f"*/*/{SEED_FOLDER_PATTERN}"):
        seed = parse_seed_folder(path.name)
        if path.is_dir() and seed is not None:
            task, variant = path.parent.parent.name, path.parent.name
            nested = path / path.name  # a single-seed job folder holds the seed's own folder
            found.append((task, variant, seed, nested if nested.is_dir() else path))
    return sorted(found)


def relative(path: Path) -> str:
    """`path` relative to the repository when inside it (jobs run there), else absolute."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def seed_ranges(seeds: tuple[int, ...] | list[int]) -> str:
    """`0-4,7`: a short, readable seed list for progress lines."""
    parts: list[str] = []
    for seed in sorted(seeds):
        if parts and seed == int(parts[-1].rpartition("-")[2]) + 1:
            parts[-1] = f"{parts[-1].partition('-')[0]}-{seed}"
        else:
            parts.append(str(seed))
    return ",".join(parts)


@dataclass(frozen=True)
class Job:
    """One fit process: a task x method variant and the seeds it trains (all of a group, or one)."""

    task: str
    variant: str  # "dmash" or "dmash:lowrank"
    seeds: tuple[int, ...]
    config: Path
    root: Path  # --trainer.default_root_dir
    args: tuple[str, ...] = ()
    fit: tuple[str, ...] = (sys.executable, "-m", "lit_dmash", "fit")

    @property
    def method(self) -> str:
        return self.variant.partition(":")[0]

    @property
    def name(self) -> str:
        return f"{self.task}/{self.variant.replace(':', '_')}/seeds={seed_ranges(self.seeds)}"

    def seed_dir(self, seed: int) -> Path:
        return self.root / seed_folder(seed)

    @property
    def pending_seeds(self) -> tuple[int, ...]:
        return tuple(s for s in self.seeds if not (self.seed_dir(s) / "done.json").is_file())

    @property
    def finished(self) -> bool:
        return not self.pending_seeds

    def evaluated_updates(self) -> dict[int, int]:
        """Each seed's last evaluation (in updates) from its `eval.json`; seeds without one are left out.

        Where an unfinished job stands, read without torch or the checkpoint (`--dry-run`): a run
        resumes from its `last.ckpt`, which is at or past its last evaluation.
        """
        reached = {}
        for seed in self.seeds:
            try:
                evaluations = json.loads((self.seed_dir(seed) / "eval.json").read_text())["evaluations"]
                reached[seed] = int(evaluations[-1]["updates"])
            except (OSError, ValueError, KeyError, IndexError, TypeError):
                continue  # not evaluated yet (or not a file a fit wrote): nothing to report
        return reached

    def fit_arguments(self) -> list[str]:
        """What makes this job's runs what they are: config, method, the grid's args, the adapter.

        Seeds, folders, the progress bar and `--ckpt_path` are left out: they say where and which
        seeds run, not how. Recorded in `done.json`; a finished job is only skipped if they match.
        """
        _, _, adapter_kind = self.variant.partition(":")
        adapter = [f"--model.context.adapter={adapter_kind}"] if adapter_kind else []
        return [relative(self.config), f"--model.method={self.method}", *self.args, *adapter]

    def recorded_arguments(self) -> list[str] | None:
        """The fit arguments of the finished runs in this job's folder (None: nothing finished there).

        `done.json` files written before the arguments were recorded hold the fit command: its
        arguments are recovered from it.
        """
        recorded = [self.root / "done.json", *(self.seed_dir(s) / "done.json" for s in self.seeds)]
        for path in recorded:
            if path.is_file():
                done = json.loads(path.read_text())
                return done.get("fit_arguments") or arguments_of_command(done.get("command") or [])
        return None

    def argument_mismatch(self) -> ConfigError | None:
        """A `ConfigError` if finished runs in this job's folder were trained with other fit arguments."""
        theirs, mine = self.recorded_arguments(), self.fit_arguments()
        if theirs is None or theirs == mine:
            return None
        changed = [op for op in difflib.SequenceMatcher(None, theirs, mine).get_opcodes() if op[0] != "equal"]
        only_theirs = [a for _, i1, i2, _, _ in changed for a in theirs[i1:i2]]
        only_mine = [a for _, _, _, j1, j2 in changed for a in mine[j1:j2]]
        return ConfigError(
            "grid.args",
            only_mine,
            f"{relative(self.root)} holds finished runs of {self.task}/{self.variant} with other fit arguments "
            f"(they had {only_theirs} where this grid has {only_mine}); use another out_dir (--out-dir), "
            "or remove that folder to retrain",
        )

    def resumable_checkpoint(self) -> Path | None:
        """The checkpoint of an interrupted attempt; None if there is none or it belongs to a finished one.

        A finished job records its checkpoint in `done.json`: when seeds are added to a grid later,
        the group's new attempt must start fresh rather than continue the finished batch.
        """
        found = latest_checkpoint(self.root)
        if found is None:
            return None
        done = self.root / "done.json"
        if done.is_file() and json.loads(done.read_text()).get("checkpoint") == str(found):
            return None
        return found

    def command(self) -> list[str]:
        """The fit command for the unfinished seeds, resuming if an interrupted attempt left a checkpoint."""
        seeds = ",".join(str(s) for s in self.pending_seeds or self.seeds)
        config, method, *rest = self.fit_arguments()
        cmd = [
            *self.fit,
            "-c",
            config,
            method,
            f"--model.seeds=[{seeds}]",
            f"--trainer.default_root_dir={relative(self.root)}",
            "--trainer.enable_progress_bar=false",
            *rest,
        ]
        if self.resumable_checkpoint() is not None:
            cmd.append("--ckpt_path=last")  # interrupted earlier: continue, do not start over
        return cmd

    def mark_done(self, record: dict[str, Any]) -> None:
        """`done.json` into each seed folder, then the job folder (which names the finished checkpoint),
        with the job's fit arguments."""
        record = {**record, "fit_arguments": self.fit_arguments()}
        for seed in record["seeds"]:
            atomic_write_json(self.seed_dir(seed) / "done.json", {**record, "seed": seed})
        checkpoint = latest_checkpoint(self.root)
        atomic_write_json(self.root / "done.json", {**record, "checkpoint": str(checkpoint) if checkpoint else None})


_NOT_FIT_ARGUMENTS = ("--model.seeds=", "--trainer.default_root_dir=", "--trainer.enable_progress_bar=", "--ckpt_path=")


def arguments_of_command(command: list[str]) -> list[str] | None:
    """`Job.fit_arguments` recovered from a fit command `Job.command` built (None if it is not one)."""
    if "-c" not in command or command.index("-c") + 1 >= len(command):
        return None
    start = command.index("-c") + 1
    return [a for a in command[start:] if not a.startswith(_NOT_FIT_ARGUMENTS)]


def run_job(job: Job, threads: int = 1) -> dict[str, Any]:
    """Run one job's fit to completion in its own process (output appended to `fit.log`).

    The same function runs under every launcher; it returns a record instead of raising when the
    fit fails, so a failure reaches the progress report with its exit code.
    """
    job.root.mkdir(parents=True, exist_ok=True)
    seeds = job.pending_seeds or job.seeds
    cmd = job.command()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with (job.root / "fit.log").open("a") as log:
        log.write(f"$ {shlex.join(cmd)}\n")
        log.flush()
        returncode = _wait_for_fit(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
    record = {
        "task": job.task,
        "method": job.variant,
        "seeds": list(seeds),
        "returncode": returncode,
        "wall_s": round(time.perf_counter() - start, 1),
        "command": cmd,
    }
    if returncode == 0:
        job.mark_done(record)
    return record


_RUNNING_FITS: set[subprocess.Popen] = set()  # this process's fits, for `stop_running_fits`
_RUNNING_LOCK = threading.Lock()


def stop_running_fits() -> int:
    """Send SIGTERM to every fit this process is waiting on (each saves `last.ckpt` and stops); how many.

    A SIGTERM to the grid itself (`kill`, a scheduler) reaches only the grid, not its children: the
    grid's command line forwards it with this, so no fit runs on orphaned.
    """
    with _RUNNING_LOCK:
        running = [proc for proc in _RUNNING_FITS if proc.poll() is None]
    for proc in running:
        proc.terminate()
    return len(running)


def _wait_for_fit(proc: subprocess.Popen) -> int:
    """The fit's exit code; if we are interrupted first (Ctrl-C, a launcher's cancel or timeout), the fit
    gets SIGTERM and time to save `last.ckpt` (which `subprocess.run` would not give it: it kills)."""
    with _RUNNING_LOCK:
        _RUNNING_FITS.add(proc)
    try:
        return proc.wait()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    finally:
        with _RUNNING_LOCK:
            _RUNNING_FITS.discard(proc)


def run_job_in_submitit(job: Job, threads: int = 1) -> dict[str, Any]:
    """`run_job` inside a submitit job.

    Slurm sends USR2 (submitit's requeue signal) 90 s before the time limit; our callable is not
    checkpointable, so submitit would raise, and the fit would be killed mid-run. Ignored here
    (and by the fit, which inherits it), the fit runs to slurm's SIGTERM at the limit, saves
    `last.ckpt`, and the next grid call resumes it.
    """
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    return run_job(job, threads)


def _parse_minutes(value: Any) -> int | None:
    """Slurm's time formats (`M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`, or int minutes) in minutes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    match = re.fullmatch(r"(?:(\d+)-)?(\d+(?::\d+){0,2})", str(value))
    if not match:
        return None
    days, parts = int(match.group(1) or 0), [int(p) for p in match.group(2).split(":")]
    if match.group(1):  # D-H, D-H:M, D-H:M:S
        h, m, s = [*parts, 0, 0][:3]
    elif len(parts) == 3:  # H:M:S
        h, m, s = parts
    else:  # M, M:S
        h, (m, s) = 0, [*parts, 0][:2]
    minutes = days * 1440 + h * 60 + m + (1 if s else 0)
    return minutes if minutes > 0 else None


@dataclass
class SlurmSpec:
    """The grid file's `slurm:` section: sbatch settings for each job of the array."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | int = "72:00:00"
    cpus_per_task: int = 1
    mem: str = "8G"
    gpus_per_node: int = 0
    array_parallelism: int = 256
    job_name: str | None = None
    folder: str | None = None
    setup: list[str] = field(default_factory=list)
    additional: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> SlurmSpec:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ConfigError("grid.slurm", data, "expected a mapping of slurm settings")
        _check_keys("grid.slurm", data, cls)
        spec = cls(**data)
        spec.validate()
        return spec

    def validate(self) -> None:
        for name in ("partition", "account", "qos", "job_name", "folder"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ConfigError(f"grid.slurm.{name}", getattr(self, name), "expected a string or null")
        if _parse_minutes(self.time) is None:
            raise ConfigError("grid.slurm.time", self.time, "expected [D-]HH:MM:SS or minutes > 0")
        if not isinstance(self.mem, str) or not re.fullmatch(r"\d+[KMGT]", self.mem):
            raise ConfigError("grid.slurm.mem", self.mem, "expected a size with a unit, e.g. 8G or 8000M")
        for name, low in (("cpus_per_task", 1), ("gpus_per_node", 0), ("array_parallelism", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"grid.slurm.{name}", value, f"expected an integer >= {low}")
        if not isinstance(self.setup, list) or not all(isinstance(line, str) for line in self.setup):
            raise ConfigError("grid.slurm.setup", self.setup, "expected a list of shell lines")
        if not isinstance(self.additional, dict):
            raise ConfigError("grid.slurm.additional", self.additional, "expected a mapping of sbatch options")

    @property
    def minutes(self) -> int:
        return _parse_minutes(self.time) or 0

    def executor_parameters(self, out_dir: Path) -> dict[str, Any]:
        """Keyword arguments for submitit's `SlurmExecutor.update_parameters` (None values left out)."""
        params: dict[str, Any] = {
            "job_name": self.job_name or f"lit-dmash-{out_dir.name}",
            "partition": self.partition,
            "account": self.account,
            "qos": self.qos,
            "time": self.minutes,
            "cpus_per_task": self.cpus_per_task,
            "mem": self.mem,
            "gpus_per_node": self.gpus_per_node or None,
            "array_parallelism": self.array_parallelism,
            "setup": self.setup or None,
            "additional_parameters": self.additional or None,
        }
        return {key: value for key, value in params.items() if value is not None}

    def folder_path(self, out_dir: Path) -> Path:
        """submitit's folder (its pickles and logs, named by job id; a `%j` in it becomes the job id)."""
        return Path(self.folder).resolve() if self.folder else out_dir / "submitit"


def _check_keys(prefix: str, data: dict[str, Any], cls: type) -> None:
    allowed = sorted(f.name for f in fields(cls))
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{prefix}.{key}", data[key], f"allowed keys: {allowed}")


@dataclass
class GridSpec:
    """A parsed, validated grid file (see the module docstring for every key)."""

    tasks: list[str]
    methods: list[str]
    seeds: list[int]
    group_seeds: bool = True
    order: str = "task"
    config: str = "conf/{task}/{method}.yaml"
    args: list[str] = field(default_factory=list)
    workers: int = 1
    out_dir: str = "runs/grids/grid"
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    launcher: str = "pool"
    slurm: SlurmSpec = field(default_factory=SlurmSpec)

    @classmethod
    def load(cls, path: str | Path) -> GridSpec:
        """Parse and check the file's schema; names that need the filesystem are checked by `problems`."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError("grid", str(path), "expected an existing grid YAML file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ConfigError("grid", str(path), f"not valid YAML ({str(error).splitlines()[0]})") from error
        if not isinstance(data, dict):
            raise ConfigError("grid", str(path), "expected a mapping with tasks, methods, seeds")
        if "envs" in data:
            renamed = "renamed to `tasks` (per-job configs: conf/{task}/{method}.yaml)"
            raise ConfigError("grid.envs", data["envs"], renamed)
        _check_keys("grid", data, cls)
        for key in ("tasks", "methods", "seeds"):
            if key not in data:
                raise ConfigError(f"grid.{key}", None, "required: a non-empty list")
        data = {"out_dir": f"runs/grids/{path.stem}", **data}
        spec = cls(**{**data, "slurm": SlurmSpec.from_dict(data.get("slurm"))})
        spec.validate()
        return spec

    def validate(self) -> None:
        for name in ("tasks", "methods", "seeds"):
            values = getattr(self, name)
            if not isinstance(values, list) or not values or len(set(map(str, values))) != len(values):
                raise ConfigError(f"grid.{name}", values, "expected a non-empty list without repeats")
        for task in self.tasks:
            if not isinstance(task, str) or not _NAME.match(task):
                raise ConfigError("grid.tasks", task, "expected folder names (letters, digits, _ . -)")
        for variant in self.methods:
            method, _, kind = str(variant).partition(":")
            if not _NAME.match(method) or (kind and kind not in ADAPTER_KINDS):
                raise ConfigError("grid.methods", variant, f"expected method[:adapter], adapter in {ADAPTER_KINDS}")
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in self.seeds):
            raise ConfigError("grid.seeds", self.seeds, "expected a list of integers >= 0")
        self._validate_scalars()

    def _validate_scalars(self) -> None:
        if not isinstance(self.group_seeds, bool):
            raise ConfigError("grid.group_seeds", self.group_seeds, "expected true or false")
        if self.order not in JOB_ORDERS:
            raise ConfigError("grid.order", self.order, f"expected one of {list(JOB_ORDERS)}")
        try:
            self.config.format(task="t", method="m")
        except (KeyError, IndexError, ValueError, AttributeError) as error:
            raise ConfigError("grid.config", self.config, "expected a path with {task} and {method}") from error
        if not isinstance(self.args, list) or not all(isinstance(a, str) for a in self.args):
            raise ConfigError("grid.args", self.args, "expected a list of CLI argument strings")
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 1:
            raise ConfigError("grid.workers", self.workers, "expected an integer >= 1")
        if not isinstance(self.out_dir, str) or not self.out_dir:
            raise ConfigError("grid.out_dir", self.out_dir, "expected a folder path")
        if not isinstance(self.baselines, list) or not all(isinstance(b, str) for b in self.baselines):
            raise ConfigError("grid.baselines", self.baselines, "expected a list of method names")
        if self.launcher not in LAUNCHERS:
            raise ConfigError("grid.launcher", self.launcher, f"expected one of {list(LAUNCHERS)}")

    @property
    def out(self) -> Path:
        return Path(self.out_dir).resolve()

    def _config_path(self, task: str, method: str) -> Path:
        """The job's config, absolute: relative to the caller's directory if it exists there, else the repo."""
        path = Path(self.config.format(task=task, method=method))
        if path.is_absolute():
            return path
        return path.resolve() if path.exists() else REPO / path

    def jobs(self) -> list[Job]:
        """Every job, with absolute paths (jobs run in the repository root, whatever the caller's directory).

        Seed groups run in `order` (task-major by default; method-major fills one arm's results on
        every task before the next arm's); single-seed jobs are seed-major, in that order within a
        seed, so early results cover all methods.
        """
        fit = tuple(shlex.split(os.environ[FIT_COMMAND_ENV])) if os.environ.get(FIT_COMMAND_ENV) else Job.fit
        if self.order == "task":
            cells = [(task, variant) for task in self.tasks for variant in self.methods]
        else:
            cells = [(task, variant) for variant in self.methods for task in self.tasks]
        if self.group_seeds:
            specs = [(task, variant, tuple(self.seeds)) for task, variant in cells]
        else:
            specs = [(task, variant, (seed,)) for seed in self.seeds for task, variant in cells]
        return [
            Job(
                task=task,
                variant=variant,
                seeds=seeds,
                config=self._config_path(task, variant.partition(":")[0]),
                root=self._job_root(task, variant, seeds),
                args=tuple(self.args),
                fit=fit,
            )
            for task, variant, seeds in specs
        ]

    def _job_root(self, task: str, variant: str, seeds: tuple[int, ...]) -> Path:
        cell = self.out / task / variant.replace(":", "_")
        return cell if self.group_seeds else cell / seed_folder(seeds[0])

    def problems(self) -> list[ConfigError]:
        """What would make jobs fail at once: unknown methods, missing configs, a layout clash in out_dir.

        Launching refuses a grid with problems; `--dry-run` only warns (configs may not exist yet).
        """
        from lit_dmash.methods import METHODS

        found: dict[str, ConfigError] = {}
        for variant in self.methods:
            if variant.partition(":")[0] not in METHODS:
                found[variant] = ConfigError("grid.methods", variant, f"expected methods from {sorted(METHODS)}")
        for job in self.jobs():
            if not job.config.is_file():
                found.setdefault(
                    str(job.config),
                    ConfigError("grid.config", relative(job.config), f"no such file (task={job.task}, {job.method})"),
                )
        found.update(self._layout_clashes())
        found.update({str(job.root): error for job, error in self.argument_mismatches()})
        return list(found.values())

    def argument_mismatches(self) -> list[tuple[Job, ConfigError]]:
        """Jobs whose folder holds finished runs trained with other fit arguments: skipping them would
        file those runs under this grid; running them would mix two settings in one folder."""
        return [(job, error) for job in self.jobs() if (error := job.argument_mismatch()) is not None]

    def _layout_clashes(self) -> dict[str, ConfigError]:
        """out_dir cells written with the other `group_seeds`: their checkpoints would be resumed by the wrong job."""
        clashes = {}
        for task in self.tasks:
            for variant in self.methods:
                cell = self.out / task / variant.replace(":", "_")
                other = f"{SEED_FOLDER_PATTERN}/lightning_logs" if self.group_seeds else "lightning_logs"
                if any(cell.glob(other)):
                    clashes[str(cell)] = ConfigError(
                        "grid.group_seeds",
                        self.group_seeds,
                        f"{cell} holds jobs run with group_seeds={not self.group_seeds}; use another out_dir",
                    )
        return clashes
