"""Experiment grids: validation, job expansion, skip/resume, launchers (pool, submitit-local), slurm dry runs."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, TINY_ARGS

from lit_dmash.errors import ConfigError
from lit_dmash.experiments import grid, grid_cli, launchers
from lit_dmash.experiments.grid import GridSpec, Job, seed_dirs
from lit_dmash.experiments.launchers import Progress

PAPER_TASKS = "di di_friction ode cartpole ball_in_cup walker cheetah reacher_easy reacher_hard walker_gym hopper_gym"
PAPER_METHODS = "dr concat da dma dma_pearl dma_star dmash"
FIT = [sys.executable, "-m", "lit_dmash", "fit"]

# Stands in for `python -m lit_dmash fit` (via the grid's LIT_DMASH_GRID_FIT test hook): writes each
# seed's eval.json as the fit does, prints 30 lines, and exits 3 for the methods in FAKE_FIT_FAIL.
FAKE_FIT = """
import json, os, sys
from pathlib import Path

args = dict(a.split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
root, method = Path(args["--trainer.default_root_dir"]), args["--model.method"]
for i in range(30):
    print(f"{method} line {i}")
if method in os.environ.get("FAKE_FIT_FAIL", "").split(","):
    sys.exit(3)
if os.environ.get("FAKE_FIT_WAIT"):  # run until SIGTERM, and leave a mark that it came
    import signal, time
    def stop(signum, frame):
        (root / "terminated").write_text("SIGTERM")
        sys.exit(143)
    signal.signal(signal.SIGTERM, stop)
    root.mkdir(parents=True, exist_ok=True)
    (root / "started").write_text("")
    time.sleep(120)
    sys.exit(4)
for seed in json.loads(args["--model.seeds"]):
    (root / f"seed{seed}").mkdir(parents=True, exist_ok=True)
    (root / f"seed{seed}" / "eval.json").write_text(json.dumps({"evaluations": [{"env_frames": 10}]}))
"""


def _grid_file(tmp_path: Path, **overrides) -> str:
    spec = {
        "tasks": ["di"],
        "methods": ["dr", "dmash"],
        "seeds": [0, 1],
        "config": "conf/quickstart_di.yaml",
        "args": TINY_ARGS,
        "workers": 2,
        "out_dir": str(tmp_path / "grid"),
        "baselines": ["dr"],
        **overrides,
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _grid(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lit_dmash", "grid", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


# --- real fits (tiny) ---------------------------------------------------------------------------


@pytest.mark.integration
def test_tiny_grid_runs_resumes_and_aggregates(tmp_path):
    grid_file = _grid_file(tmp_path, args=[*TINY_ARGS, "--model.protocol.total_steps=4"])
    first = _grid("-c", grid_file)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    out = tmp_path / "grid"
    for method in ("dr", "dmash"):
        job = out / "di" / method
        assert (job / "done.json").is_file() and (job / "fit.log").is_file()
        (version,) = job.glob("lightning_logs/version_*")
        assert (version / "config.yaml").is_file() and list(version.glob("events.out.tfevents.*"))
        assert (version / "checkpoints" / "last.ckpt").is_file()
        for seed in (0, 1):
            assert (job / f"seed{seed}" / "done.json").is_file()
            evaluations = json.loads((job / f"seed{seed}" / "eval.json").read_text())["evaluations"]
            assert [e["updates"] for e in evaluations] == [1, 5]
    assert (out / "results.json").is_file() and (out / "results.md").is_file()

    # A second call finds every job finished and trains nothing.
    logs_before = {p: p.read_text() for p in out.glob("*/*/fit.log")}
    second = _grid("-c", grid_file, "--no-aggregate")  # aggregation was checked above
    assert second.returncode == 0
    assert "2 already finished, 0 to run" in second.stdout
    assert {p: p.read_text() for p in out.glob("*/*/fit.log")} == logs_before

    # Other fit arguments over finished runs: refused in one line, nothing runs or is skipped.
    larger = [*TINY_ARGS, "--model.protocol.total_steps=10"]
    refused = _grid("-c", _grid_file(tmp_path, args=larger), "--no-aggregate")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert refused.stderr.startswith("error: invalid grid.args=['--model.protocol.total_steps=10']: ")
    assert {p: p.read_text() for p in out.glob("*/*/fit.log")} == logs_before

    # An interrupted job (no done.json, a checkpoint) is resumed from it, in its own run folder, to a
    # larger budget: the evaluations continue the same eval.json.
    job = out / "di" / "dmash"
    for done in job.glob("**/done.json"):
        done.unlink()
    third = _grid("-c", _grid_file(tmp_path, methods=["dmash"], args=larger), "--no-aggregate")
    assert third.returncode == 0, third.stdout[-2000:] + third.stderr[-2000:]
    assert "1 job(s), 0 already finished, 1 to run" in third.stdout
    assert "--ckpt_path=last" in (job / "fit.log").read_text()
    assert [p.name for p in job.glob("lightning_logs/version_*")] == ["version_0"]
    evaluations = json.loads((job / "seed0" / "eval.json").read_text())["evaluations"]
    assert [e["updates"] for e in evaluations] == [1, 5, 9, 11]


@pytest.mark.integration
def test_failed_fit_is_reported_not_marked_done(tmp_path):
    grid_file = _grid_file(tmp_path, methods=["dr"], seeds=[0], args=["--model.sac.gamma=1.0"])
    proc = _grid("-c", grid_file)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "grid: all 1 job(s) failed" in proc.stderr
    job = tmp_path / "grid" / "di" / "dr"
    assert not (job / "done.json").exists() and not (job / "seed0" / "done.json").exists()
    assert "invalid sac.gamma=1.0" in (job / "fit.log").read_text()


# --- the grid file --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"envs": ["di_friction"]}, "grid.envs"),
        ({"tasks": ["di friction"]}, "grid.tasks"),
        ({"methods": ["dmash:diag"]}, "grid.methods"),
        ({"seeds": []}, "grid.seeds"),
        ({"seeds": [0, 0]}, "grid.seeds"),
        ({"workers": 0}, "grid.workers"),
        ({"group_seeds": "yes"}, "grid.group_seeds"),
        ({"order": "seed"}, "grid.order"),
        ({"config": "conf/{env}/{method}.yaml"}, "grid.config"),
        ({"method": ["dr"]}, "grid.method"),
        ({"launcher": "k8s"}, "grid.launcher"),
        ({"slurm": ["cpu"]}, "grid.slurm"),
        ({"slurm": {"partiton": "cpu"}}, "grid.slurm.partiton"),
        ({"slurm": {"time": "three days"}}, "grid.slurm.time"),
        ({"slurm": {"mem": 8}}, "grid.slurm.mem"),
        ({"slurm": {"cpus_per_task": 0}}, "grid.slurm.cpus_per_task"),
        ({"slurm": {"array_parallelism": 0}}, "grid.slurm.array_parallelism"),
        ({"slurm": {"setup": "module load cuda"}}, "grid.slurm.setup"),
    ],
)
def test_bad_grid_names_the_field(tmp_path, overrides, field):
    with pytest.raises(ConfigError) as info:
        GridSpec.load(_grid_file(tmp_path, **overrides))
    assert info.value.field == field


def test_envs_says_it_was_renamed(tmp_path):
    with pytest.raises(ConfigError, match="renamed to `tasks`"):
        GridSpec.load(_grid_file(tmp_path, envs=["di_friction"]))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"methods": ["dr", "ppo"]}, "grid.methods"),
        ({"config": "conf/{task}/nope.yaml"}, "grid.config"),
    ],
)
def test_jobs_that_would_fail_at_once_are_problems(tmp_path, overrides, field):
    spec = GridSpec.load(_grid_file(tmp_path, **overrides))
    assert [problem.field for problem in spec.problems()] == [field]


def test_out_dir_of_the_other_layout_is_a_problem(tmp_path):
    spec = GridSpec.load(_grid_file(tmp_path, methods=["dr"]))
    (spec.out / "di" / "dr" / "seed0" / "lightning_logs").mkdir(parents=True)  # group_seeds: false ran here
    assert [problem.field for problem in spec.problems()] == ["grid.group_seeds"]


@pytest.mark.parametrize(
    ("cli", "overrides", "field"),
    [
        ([], {"methods": ["dr", "ppo"]}, "grid.methods"),
        ([], {"slurm": {"time": "soon"}}, "grid.slurm.time"),
        (["--launcher", "k8s"], {}, "launcher"),
        (["--workers", "0"], {}, "workers"),
        (["--methods", "ppo"], {}, "grid.methods"),
        (["--methods", "dr", "dr"], {}, "grid.methods"),
        (["--tasks", "../di"], {}, "grid.tasks"),
    ],
)
def test_bad_grid_exits_with_one_line_before_any_run(tmp_path, capsys, cli, overrides, field):
    assert grid_cli.main(["-c", _grid_file(tmp_path, **overrides), *cli]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1 and f"invalid {field}=" in captured.err
    assert not (tmp_path / "grid").exists()


def test_tasks_and_methods_from_the_command_line_select_jobs_where_the_full_grid_has_them(tmp_path):
    file = _grid_file(tmp_path, config="conf/{task}/{method}.yaml")
    full = GridSpec.load(file)
    full.tasks, full.methods = ["di", "ode"], ["dr", "da"]
    args = grid_cli._parser().parse_args(["-c", file, "--tasks", "ode", "--methods", "da"])
    (job,) = grid_cli.load_with_overrides(args).jobs()
    same = next(j for j in full.jobs() if (j.task, j.method) == ("ode", "da"))
    assert (job.root, job.config, job.command()) == (same.root, same.config, same.command())
    assert job.root == full.out / "ode" / "da" and job.config == REPO / "conf" / "ode" / "da.yaml"


@pytest.mark.integration
def test_bad_grid_file_through_the_cli(tmp_path):
    proc = _grid("-c", _grid_file(tmp_path, slurm={"gpus": 1}))
    assert proc.returncode == 2 and proc.stderr.startswith("error: invalid grid.slurm.gpus=")
    assert "Traceback" not in proc.stderr and not (tmp_path / "grid").exists()


@pytest.mark.parametrize(
    ("value", "minutes"),
    [("72:00:00", 4320), ("3-00:00:00", 4320), ("1-12", 2160), ("90", 90), (90, 90), ("30:00", 30), ("0:01:30", 2)],
)
def test_slurm_time_formats(value, minutes):
    assert grid.SlurmSpec(time=value).minutes == minutes


# --- jobs -----------------------------------------------------------------------------------------


def test_jobs_with_and_without_seed_groups(tmp_path):
    spec = GridSpec.load(_grid_file(tmp_path, tasks=["a", "b"], methods=["dr", "dmash:lowrank"], seeds=[0, 1, 2]))
    out = tmp_path / "grid"
    jobs = spec.jobs()
    assert [job.name for job in jobs] == [
        "a/dr/seeds=0-2",
        "a/dmash_lowrank/seeds=0-2",
        "b/dr/seeds=0-2",
        "b/dmash_lowrank/seeds=0-2",
    ]
    assert jobs[1].root == out / "a" / "dmash_lowrank" and jobs[1].seeds == (0, 1, 2)
    assert jobs[1].command() == [
        *FIT,
        "-c",
        "conf/quickstart_di.yaml",
        "--model.method=dmash",
        "--model.seeds=[0,1,2]",
        f"--trainer.default_root_dir={out / 'a' / 'dmash_lowrank'}",
        "--trainer.enable_progress_bar=false",
        *TINY_ARGS,
        "--model.context.adapter=lowrank",
    ]

    spec.group_seeds = False
    jobs = spec.jobs()
    assert len(jobs) == 12 and [job.seeds for job in jobs[:4]] == [(0,)] * 4  # seed-major
    assert jobs[5].name == "a/dmash_lowrank/seeds=1" and jobs[5].root == out / "a" / "dmash_lowrank" / "seed1"
    assert "--model.seeds=[1]" in jobs[5].command()


def test_method_order_runs_each_arm_on_every_task_before_the_next_arm(tmp_path):
    spec = GridSpec.load(_grid_file(tmp_path, tasks=["a", "b"], methods=["dr", "dmash"], seeds=[0, 1], order="method"))
    cells = ["a/dr", "b/dr", "a/dmash", "b/dmash"]
    assert [job.name for job in spec.jobs()] == [f"{cell}/seeds=0-1" for cell in cells]
    spec.group_seeds = False
    assert [job.name for job in spec.jobs()][:4] == [f"{cell}/seeds=0" for cell in cells]  # seed-major


def test_paper_grid_has_77_groups_or_770_single_seed_jobs():
    spec = GridSpec.load(REPO / "conf/grids/paper_main.yaml")
    assert len(spec.jobs()) == 77 and {job.seeds for job in spec.jobs()} == {tuple(range(10))}
    spec.group_seeds = False
    assert len(spec.jobs()) == 770


def _checkpoint(root: Path, version: int) -> Path:
    ckpt = root / "lightning_logs" / f"version_{version}" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    return ckpt


def test_finished_seeds_are_skipped_and_resume_needs_a_checkpoint(tmp_path):
    job = Job("di_friction", "dmash", (0, 1, 2), REPO / "conf/quickstart_di.yaml", tmp_path / "job")
    assert job.pending_seeds == (0, 1, 2) and not job.finished
    assert "--ckpt_path=last" not in job.command()
    first = _checkpoint(job.root, 0)  # interrupted: continue from it
    assert "--ckpt_path=last" in job.command()

    job.mark_done({"task": "di_friction", "method": "dmash", "seeds": [0, 1, 2], "returncode": 0})
    assert job.finished and all((job.root / f"seed{s}" / "done.json").is_file() for s in (0, 1, 2))
    assert json.loads((job.root / "done.json").read_text())["checkpoint"] == str(first)

    # Seed 3 added to the grid later: only it runs, and not from the finished batch's checkpoint.
    extended = Job("di_friction", "dmash", (0, 1, 2, 3), job.config, job.root)
    assert extended.pending_seeds == (3,) and not extended.finished
    command = extended.command()
    assert "--model.seeds=[3]" in command and "--ckpt_path=last" not in command
    second = _checkpoint(job.root, 1)  # its own attempt was interrupted in turn
    os.utime(second, (time.time() + 5, time.time() + 5))
    assert "--ckpt_path=last" in extended.command()


def test_dry_run_says_where_a_job_to_resume_was_last_evaluated(tmp_path, capsys):
    from conftest import write_fake_eval

    spec = GridSpec.load(_grid_file(tmp_path))  # di x (dr, dmash) x seeds 0, 1
    dmash = next(job for job in spec.jobs() if job.method == "dmash")
    _checkpoint(dmash.root, 0)  # interrupted after seed 0 evaluated at 1 and 5,001, seed 1 at 1
    write_fake_eval(dmash.seed_dir(0), [{"updates": 1}, {"updates": 5001}], method="dmash", seed=0)
    write_fake_eval(dmash.seed_dir(1), [{"updates": 1}], method="dmash", seed=1)
    (dmash.root.parent / "dr" / "seed0").mkdir(parents=True)  # never evaluated, no checkpoint: pending
    assert dmash.evaluated_updates() == {0: 5001, 1: 1}
    assert launchers.dry_run(spec) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("[pending] ") and "--model.method=dr" in lines[1]
    assert lines[2].startswith("[resume] ") and lines[2].endswith("--ckpt_path=last")
    assert lines[3:] == ["    last evaluation: seed0 5,001, seed1 1"]


def test_checkpoint_rule_mirrors_the_fit(tmp_path):
    """The grid copies the rule `fit --ckpt_path last` uses to pick a checkpoint (so it needs no torch)."""
    from lit_dmash.checkpointing import latest_last_checkpoint

    assert grid.latest_checkpoint(tmp_path) is None and latest_last_checkpoint(tmp_path) is None
    old, new = _checkpoint(tmp_path, 0), _checkpoint(tmp_path, 1)
    os.utime(old, (time.time() + 5, time.time() + 5))
    assert grid.latest_checkpoint(tmp_path) == latest_last_checkpoint(tmp_path) == old != new


def test_adapter_kinds_mirror_the_networks():
    from lit_dmash.nets import adapters

    assert adapters.ADAPTER_KINDS == grid.ADAPTER_KINDS


def test_grid_side_is_torch_free_and_one_way():
    """The grid, its command line and `names` load without torch (submitit's job processes import
    them), and `grid` imports neither `launchers` nor `grid_cli`: the dependency runs one way."""
    code = (
        "import sys; import lit_dmash.names, lit_dmash.experiments.grid; "
        "assert not {'lit_dmash.experiments.launchers', 'lit_dmash.experiments.grid_cli'} & set(sys.modules); "
        "import lit_dmash.experiments.grid_cli; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_seed_folder_names_round_trip():
    from lit_dmash.names import parse_seed_folder, seed_folder

    assert [parse_seed_folder(seed_folder(s)) for s in (0, 7, 12)] == [0, 7, 12]
    assert [parse_seed_folder(n) for n in ("seed", "seeds", "seed1a", "submitit")] == [None] * 4


def test_seed_dirs_finds_both_layouts(tmp_path):
    (tmp_path / "a" / "dr" / "seed0").mkdir(parents=True)  # a seed group's seed folder
    (tmp_path / "a" / "dr" / "lightning_logs").mkdir()
    (tmp_path / "b" / "dma" / "seed3" / "seed3").mkdir(parents=True)  # a single-seed job's
    (tmp_path / "submitit" / "123").mkdir(parents=True)
    assert seed_dirs(tmp_path) == [
        ("a", "dr", 0, tmp_path / "a" / "dr" / "seed0"),
        ("b", "dma", 3, tmp_path / "b" / "dma" / "seed3" / "seed3"),
    ]


def test_progress_eta_uses_mean_duration_and_workers(tmp_path):
    lines: list[str] = []
    progress = Progress(total=5, parallel=2, log=lines.append)
    job = Job("t", "dr", (0, 1), tmp_path / "c.yaml", tmp_path / "t" / "dr")
    progress.report(job, {"returncode": 0, "wall_s": 100.0})
    progress.report(job, {"returncode": 0, "wall_s": 140.0})
    assert lines == ["[1/5] t/dr/seeds=0-1 done in 0:01:40, ETA 0:04", "[2/5] t/dr/seeds=0-1 done in 0:02:20, ETA 0:03"]


# --- launchers ------------------------------------------------------------------------------------


def _tail_args(root: Path) -> list[str]:
    return [f"--trainer.default_root_dir={root}", "--trainer.enable_progress_bar=false"]


@pytest.mark.integration
def test_paper_grid_dry_run_for_slurm_prints_every_command(tmp_path):
    out = tmp_path / "paper"
    proc = _grid("-c", "conf/grids/paper_main.yaml", "--launcher", "slurm", "--dry-run", "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "77 job(s), 0 finished, 77 to run with launcher slurm; dry run, nothing started" in proc.stdout
    assert "slurm: one job array of 77 job(s)" in proc.stdout
    for setting in ("time=4320", "cpus_per_task=1", "mem='8G'", "array_parallelism=77"):
        assert f"\n  {setting}\n" in proc.stdout
    commands = [shlex.split(line[len("[pending] ") :]) for line in proc.stdout.splitlines() if line.startswith("[")]
    seeds = "--model.seeds=[0,1,2,3,4,5,6,7,8,9]"
    assert commands == [
        [
            *FIT,
            "-c",
            f"conf/{task}/{method}.yaml",
            f"--model.method={method}",
            seeds,
            *_tail_args(out / task / method),
        ]
        for task in PAPER_TASKS.split()
        for method in PAPER_METHODS.split()
    ]
    assert not out.exists() and "submitted" not in proc.stdout


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="slurm is installed here")
def test_slurm_launcher_without_slurm_refuses_in_one_line(tmp_path):
    proc = _grid("-c", _grid_file(tmp_path), "--launcher", "slurm")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: invalid launcher='slurm': no sbatch here: run on a slurm login node, or use --dry-run"
    ]
    assert not (tmp_path / "grid").exists()


def _fake_slurm(tmp_path: Path) -> dict[str, str]:
    """`sbatch` and `srun` stand-ins on PATH: sbatch logs its call and answers as slurm does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/sbatch.log\necho "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.integration
def test_slurm_launcher_submits_one_array_whose_tasks_write_the_same_files(tmp_path):
    grid_file, env = _fake_grid(tmp_path, "slurm", slurm={"partition": "cpu", "time": "1:00:00", "setup": ["echo hi"]})
    env.update(_fake_slurm(tmp_path))
    proc = _grid("-c", grid_file, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "submitted 2 job(s) to slurm as job 4242" in proc.stdout
    assert f"python -m lit_dmash aggregate {tmp_path / 'grid'} --baselines dr" in proc.stdout
    folder = tmp_path / "grid" / "submitit"
    script = (folder / "4242_submission.sh").read_text()
    for line in ("--array=0-1%2", "--partition=cpu", "--time=60", "--cpus-per-task=1", "--mem=8G", "\necho hi\n"):
        assert line in script

    # Each array task, run as slurm would run it, writes what a local job writes.
    for task in (0, 1):
        slurm_env = {"SLURM_JOB_ID": f"{4243 + task}", "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": f"{task}"}
        slurm_env.update(SLURM_PROCID="0", SLURM_NTASKS="1", SLURM_JOB_NUM_NODES="1", SLURM_NODEID="0")
        slurm_env.update(SLURM_LOCALID="0", SLURM_JOB_NODELIST="n1", SUBMITIT_EXECUTOR="slurm")
        run = [sys.executable, "-m", "submitit.core._submit", str(folder)]
        assert subprocess.run(run, env={**os.environ, **slurm_env}, capture_output=True, timeout=60).returncode == 0
    out = tmp_path / "grid" / "di"
    assert all((out / m / name / "done.json").is_file() for m in ("dr", "dma") for name in ("", "seed0", "seed1"))

    again = _grid("-c", grid_file, "--no-aggregate", env=env)
    assert again.returncode == 0 and "2 already finished, 0 to run" in again.stdout
    assert len((tmp_path / "sbatch.log").read_text().splitlines()) == 1  # nothing submitted the second time


def _fake_grid(tmp_path: Path, launcher: str, **overrides) -> tuple[str, dict[str, str]]:
    fake = tmp_path / "fake_fit.py"
    fake.write_text(FAKE_FIT)
    grid_file = _grid_file(tmp_path, methods=["dr", "dma"], args=[], launcher=launcher, **overrides)
    return grid_file, {grid.FIT_COMMAND_ENV: shlex.join([sys.executable, str(fake)])}


@pytest.mark.integration
def test_submitit_local_end_to_end(tmp_path):
    grid_file, env = _fake_grid(tmp_path, "submitit-local")
    out = tmp_path / "grid" / "di"

    first = _grid("-c", grid_file, "--no-aggregate", env={**env, "FAKE_FIT_FAIL": "dma"})
    assert first.returncode == 1 and "Traceback" not in first.stderr, first.stdout + first.stderr
    assert "grid: 2 job(s), 0 already finished, 2 to run" in first.stdout
    assert re.search(r"^\[[12]/2\] di/dr/seeds=0-1 done in \d+\.\d s, ETA 0:0\d$", first.stdout, re.M)
    failed_line = r"^\[[12]/2\] di/dma/seeds=0-1 FAILED \(exit 3\) after .*, ETA .*; last 20 lines of (.*):$"
    failed = re.search(failed_line, first.stdout, re.M)
    assert failed and failed.group(1) == str(out / "dma" / "fit.log")
    tail = first.stdout[failed.end() :].splitlines()[1:21]
    assert tail == [f"    | dma line {i}" for i in range(10, 30)]
    assert "grid: 1 of 2 job(s) failed (di/dma/seeds=0-1)" in first.stderr
    assert all((out / "dr" / name / "done.json").is_file() for name in ("", "seed0", "seed1"))
    assert (out / "dr" / "seed1" / "eval.json").is_file() and not list(out.glob("dma/**/done.json"))
    assert list((tmp_path / "grid" / "submitit").iterdir())  # submitit's own folder: it ran the jobs

    second = _grid("-c", grid_file, "--no-aggregate", env=env)
    assert second.returncode == 0 and "1 already finished, 1 to run" in second.stdout
    assert "[1/1] di/dma/seeds=0-1 done in" in second.stdout
    assert (out / "dma" / "done.json").is_file() and (out / "dma" / "seed0" / "done.json").is_file()

    logs = {p: p.read_text() for p in out.glob("*/fit.log")}
    submitit_jobs = sorted((tmp_path / "grid" / "submitit").iterdir())
    third = _grid("-c", grid_file, "--no-aggregate", env=env)
    assert third.returncode == 0 and "2 already finished, 0 to run" in third.stdout
    assert {p: p.read_text() for p in out.glob("*/fit.log")} == logs
    assert sorted((tmp_path / "grid" / "submitit").iterdir()) == submitit_jobs


@pytest.mark.integration
def test_finished_runs_of_other_fit_arguments_are_refused_not_skipped(tmp_path):
    grid_file, env = _fake_grid(tmp_path, "pool")
    assert _grid("-c", grid_file, "--no-aggregate", env=env).returncode == 0
    out = tmp_path / "grid" / "di"
    logs = {p: p.read_text() for p in out.glob("*/fit.log")}
    done = json.loads((out / "dr" / "done.json").read_text())
    assert done["fit_arguments"] == ["conf/quickstart_di.yaml", "--model.method=dr"]

    other = tmp_path / "other.yaml"  # the same grid, other fit arguments
    other.write_text(yaml.safe_dump({**yaml.safe_load(Path(grid_file).read_text()), "args": ["--model.sac.gamma=0.9"]}))
    for attempt in ("launch", "old done.json"):
        proc = _grid("-c", str(other), "--no-aggregate", env=env)
        assert proc.returncode == 2 and proc.stdout == "", attempt
        assert proc.stderr.strip().splitlines() == [
            f"error: invalid grid.args=['--model.sac.gamma=0.9']: {out / 'dr'} holds finished runs of di/dr "
            "with other fit arguments (they had [] where this grid has ['--model.sac.gamma=0.9']); use another "
            "out_dir (--out-dir), or remove that folder to retrain"
        ], attempt
        assert {p: p.read_text() for p in out.glob("*/fit.log")} == logs, attempt
        for path in out.glob("**/done.json"):  # done.json written before the arguments were recorded
            path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "fit_arguments"}))
    dry = _grid("-c", str(other), "--dry-run", env=env)
    assert dry.returncode == 0 and "warning: invalid grid.args=['--model.sac.gamma=0.9']" in dry.stderr
    again = _grid("-c", grid_file, "--no-aggregate", env=env)  # the same arguments: skipped as before
    assert again.returncode == 0 and "2 already finished, 0 to run" in again.stdout


@pytest.mark.integration
def test_a_grid_whose_aggregation_fails_exits_non_zero(tmp_path):
    grid_file, env = _fake_grid(tmp_path, "pool")  # the stand-in's eval.json has no returns to aggregate
    proc = _grid("-c", grid_file, env=env)
    assert "[2/2]" in proc.stdout and "FAILED" not in proc.stdout, proc.stdout
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("aggregate failed (")


@pytest.mark.integration
def test_pool_grid_whose_jobs_all_fail_says_so_in_one_line(tmp_path):
    grid_file, env = _fake_grid(tmp_path, "pool")
    proc = _grid("-c", grid_file, env={**env, "FAKE_FIT_FAIL": "dr,dma"})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["grid: all 2 job(s) failed; see the fit.log lines above"]
    assert len(re.findall(r"^\[[12]/2\] di/(dr|dma)/seeds=0-1 FAILED \(exit 3\)", proc.stdout, re.M)) == 2


MOVED = {
    "experiments": ("grid", "launchers"),
    "analysis": ("aggregate", "grid_results", "report_markdown", "plots", "results", "diagnostics"),
}


def test_moved_modules_keep_their_old_import_paths():
    """`lit_dmash.grid` and the others still import, as the very module that moved (so a monkeypatch
    or a private name through the old path reaches the code that runs)."""
    import importlib

    for package, names in MOVED.items():
        for name in names:
            new = importlib.import_module(f"lit_dmash.{package}.{name}")
            assert importlib.import_module(f"lit_dmash.{name}") is new
            assert getattr(importlib.import_module("lit_dmash"), name) is new


@pytest.mark.integration
def test_sigterm_to_the_grid_stops_its_fits_and_exits_130(tmp_path):
    """`kill GRID_PID` (a scheduler, a shell) reaches the grid alone, not its fits: the grid forwards
    it, each fit gets SIGTERM (to save `last.ckpt`), and the grid exits 130 once they have stopped."""
    grid_file, env = _fake_grid(tmp_path, "pool", workers=1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lit_dmash", "grid", "-c", grid_file, "--no-aggregate"],
        cwd=REPO,
        env={**os.environ, **env, "FAKE_FIT_WAIT": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = list((tmp_path / "grid").glob("di/*/started"))
    deadline = time.monotonic() + 120
    while not started and time.monotonic() < deadline:
        time.sleep(0.2)
        started = list((tmp_path / "grid").glob("di/*/started"))
    assert started, "the fake fit never started"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert (started[0].parent / "terminated").read_text() == "SIGTERM", "the fit was not stopped"
    assert "interrupted" in err and len(list((tmp_path / "grid").glob("di/*/started"))) == 1, "no second job"
