"""Experiment grids: methods x envs x seeds, each run one `python -m lit_dmash fit` process.

    python -m lit_dmash grid -c conf/grids/di_friction.yaml [--workers 2] [--dry-run]

The grid only launches and collects: Lightning trains. Every run gets its own folder
`<out_dir>/<env>/<method>/seed<k>/` holding TensorBoard logs, the resolved `config.yaml`,
`eval.json` and `checkpoints/last.ckpt` (under `lightning_logs/version_*/`), the process output
(`fit.log`) and, once it succeeded, `done.json`. A second call skips finished runs and resumes
interrupted ones from their last checkpoint (`--ckpt_path last`), so a grid is resumable
as a whole. At the end `aggregate` writes `results.md`, `results.json` and plots to `out_dir`.

Grid file:

```yaml
envs: [di_friction]
methods: [dr, dma, dmash, dmash:lowrank]  # method[:adapter_kind]
seeds: [0, 1, 2]
config: conf/{env}/{method}.yaml          # per-run config; {env} and {method} are filled in
args: ["--model.collector.total_frames=30000"]  # extra CLI arguments for every run
workers: 1                                 # runs in parallel (one torch thread each)
out_dir: runs/grids/di_friction
baselines: [dr, dma]                       # relative gains are reported against these
```
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lit_dmash.errors import ConfigError
from lit_dmash.io import atomic_write_json

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Run:
    """One (env, method variant, seed) cell of a grid."""

    env: str
    variant: str  # "dmash" or "dmash:lowrank"
    seed: int
    config: Path
    out: Path

    @property
    def method(self) -> str:
        return self.variant.partition(":")[0]

    @property
    def label(self) -> str:
        return self.variant.replace(":", "_")

    @property
    def finished(self) -> bool:
        return (self.out / "done.json").is_file()

    def command(self, extra_args: list[str]) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "lit_dmash",
            "fit",
            "-c",
            str(self.config),
            f"--seed_everything={self.seed}",
            f"--model.method={self.method}",
            f"--trainer.default_root_dir={self.out}",
            "--trainer.enable_progress_bar=false",
            *extra_args,
        ]
        _, _, adapter_kind = self.variant.partition(":")
        if adapter_kind:
            cmd.append(f"--model.context.adapter_kind={adapter_kind}")
        if list(self.out.glob("lightning_logs/*/checkpoints/last.ckpt")):
            cmd.append("--ckpt_path=last")  # interrupted earlier: continue, do not start over
        return cmd


@dataclass
class GridSpec:
    """A parsed, validated grid file."""

    envs: list[str]
    methods: list[str]
    seeds: list[int]
    config: str = "conf/{env}/{method}.yaml"
    args: list[str] = field(default_factory=list)
    workers: int = 1
    out_dir: str = "runs/grids/grid"
    baselines: list[str] = field(default_factory=lambda: ["dr", "dma"])

    @classmethod
    def load(cls, path: str | Path) -> GridSpec:
        path = Path(path)
        if not path.is_file():
            raise ConfigError("grid", str(path), "expected an existing grid YAML file")
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, dict):
            raise ConfigError("grid", str(path), "expected a mapping with envs, methods, seeds")
        allowed = set(cls.__dataclass_fields__)
        for key in data:
            if key not in allowed:
                raise ConfigError(f"grid.{key}", data[key], f"allowed keys: {sorted(allowed)}")
        spec = cls(**data)
        spec.validate()
        return spec

    def validate(self) -> None:
        from lit_dmash.envs import env_names
        from lit_dmash.methods import METHODS

        for name, values in [("envs", self.envs), ("methods", self.methods), ("seeds", self.seeds)]:
            if not isinstance(values, list) or not values:
                raise ConfigError(f"grid.{name}", values, "expected a non-empty list")
        for env in self.envs:
            if env not in env_names():
                raise ConfigError("grid.envs", env, f"expected names from {env_names()}")
        for variant in self.methods:
            method, _, kind = variant.partition(":")
            if method not in METHODS:
                raise ConfigError(
                    "grid.methods", variant, f"expected method[:adapter_kind] with method in {sorted(METHODS)}"
                )
            if kind and kind not in ("scale_shift", "lowrank", "full"):
                raise ConfigError("grid.methods", variant, "adapter_kind must be scale_shift, lowrank or full")
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds):
            raise ConfigError("grid.seeds", self.seeds, "expected a list of integers")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError("grid.workers", self.workers, "expected an integer >= 1")
        if not isinstance(self.args, list) or not all(isinstance(a, str) for a in self.args):
            raise ConfigError("grid.args", self.args, "expected a list of CLI argument strings")
        for run in self.runs():
            if not run.config.is_file():
                raise ConfigError(
                    "grid.config", str(run.config), f"no such file for env={run.env}, method={run.method}"
                )

    def _config_path(self, env: str, method: str) -> Path:
        """The run's config, absolute: relative to the caller's directory if it exists there, else the repo."""
        path = Path(self.config.format(env=env, method=method))
        if path.is_absolute():
            return path
        return path.resolve() if path.exists() else REPO / path

    def runs(self) -> list[Run]:
        """Every cell, seed-major so early results cover all methods.

        Paths are absolute: runs execute in the repository root, whatever the caller's directory.
        """
        out = Path(self.out_dir).resolve()
        return [
            Run(
                env=env,
                variant=variant,
                seed=seed,
                config=self._config_path(env, variant.partition(":")[0]),
                out=out / env / variant.replace(":", "_") / f"seed{seed}",
            )
            for seed in self.seeds
            for env in self.envs
            for variant in self.methods
        ]


def launch(run: Run, extra_args: list[str]) -> dict[str, Any]:
    """Run one cell to completion in its own process; write `done.json` on success."""
    run.out.mkdir(parents=True, exist_ok=True)
    cmd = run.command(extra_args)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    with (run.out / "fit.log").open("a") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    record = {
        "env": run.env,
        "method": run.variant,
        "seed": run.seed,
        "returncode": proc.returncode,
        "wall_s": round(time.perf_counter() - start, 1),
        "command": cmd,
    }
    if proc.returncode == 0:
        atomic_write_json(run.out / "done.json", record)
    return record


def run_grid(spec: GridSpec, workers: int | None = None, log: Any = print) -> list[dict[str, Any]]:
    """Launch every unfinished run (`workers` at a time); returns one record per launched run."""
    pending = [run for run in spec.runs() if not run.finished]
    log(f"grid: {len(spec.runs())} runs, {len(spec.runs()) - len(pending)} already finished, {len(pending)} to run")
    records = []
    with ThreadPoolExecutor(workers or spec.workers) as pool:
        for record in pool.map(lambda run: launch(run, spec.args), pending):
            status = "ok" if record["returncode"] == 0 else f"FAILED (exit {record['returncode']})"
            log(f"  {record['env']}/{record['method']}/seed{record['seed']}: {status} in {record['wall_s']} s")
            records.append(record)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lit_dmash grid", description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--config", required=True, help="grid YAML (see conf/grids/)")
    parser.add_argument("--workers", type=int, default=None, help="override the grid's workers")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--no-aggregate", action="store_true", help="skip results.md / plots")
    args = parser.parse_args(argv)
    try:
        spec = GridSpec.load(args.config)
        if args.workers is not None and args.workers < 1:
            raise ConfigError("workers", args.workers, "expected an integer >= 1")
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        for run in spec.runs():
            state = "finished" if run.finished else "pending"
            print(f"[{state}] {' '.join(run.command(spec.args))}")
        return 0
    records = run_grid(spec, args.workers)
    failed = [r for r in records if r["returncode"] != 0]
    if not args.no_aggregate:
        from lit_dmash.aggregate import aggregate_grid

        try:
            aggregate_grid(spec.out_dir, baselines=spec.baselines)
            print(f"results: {Path(spec.out_dir) / 'results.md'}")
        except FileNotFoundError as error:  # every run failed before its first evaluation
            print(f"no results to aggregate: {error}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} run(s) failed; see their fit.log", file=sys.stderr)
        return 1
    return 0
