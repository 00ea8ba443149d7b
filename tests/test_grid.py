"""Experiment grids end to end: launch, resume-by-skipping, aggregate with CIs and plots."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import REPO

from lit_dmash.aggregate import bootstrap_mean_ci, collect, curves
from lit_dmash.errors import ConfigError
from lit_dmash.grid import GridSpec, Run

TINY_ARGS = [
    "--model.env.num_envs=4",
    "--model.collector.frames_per_batch=32",
    "--model.collector.init_random_frames=128",
    "--model.collector.total_frames=320",
    "--model.sac.hidden_dims=[16,16]",
    "--model.sac.batch_size=32",
    "--model.sac.utd=1",
    "--trainer.callbacks.every_n_frames=160",
    "--trainer.callbacks.episodes=3",
]


def _grid_file(tmp_path, **overrides) -> str:
    spec = {
        "envs": ["di_friction"],
        "methods": ["dr", "dmash"],
        "seeds": [0, 1],
        "config": "conf/quickstart.yaml",
        "args": TINY_ARGS,
        "workers": 2,
        "out_dir": str(tmp_path / "grid"),
        "baselines": ["dr"],
        **overrides,
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _grid(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lit_dmash", "grid", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def test_tiny_grid_runs_resumes_and_aggregates(tmp_path):
    grid_file = _grid_file(tmp_path)
    first = _grid("-c", grid_file)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    out = tmp_path / "grid"
    for method in ("dr", "dmash"):
        for seed in (0, 1):
            run = out / "di_friction" / method / f"seed{seed}"
            assert (run / "done.json").is_file()
            (version,) = run.glob("lightning_logs/version_*")
            assert (version / "config.yaml").is_file() and list(version.glob("events.out.tfevents.*"))
            assert (version / "checkpoints" / "last.ckpt").is_file()
            evaluations = json.loads((version / "eval.json").read_text())["evaluations"]
            assert [e["env_frames"] for e in evaluations] == [160, 320]

    results = json.loads((out / "results.json").read_text())["di_friction"]
    assert set(results) == {"dr", "dmash"}
    for stats in results["dmash"].values():
        assert stats["seeds"] == [0, 1] and len(stats["returns"]) == 2
        assert stats["ci"][0] <= stats["iqm"] <= stats["ci"][1]
    table = (out / "results.md").read_text()
    assert "IQM [95% CI]" in table and "gain vs dr" in table and "| dmash | eval_out |" in table
    assert (out / "curves_di_friction.png").stat().st_size > 0
    assert (out / "intervals_di_friction.png").stat().st_size > 0

    # A second call finds every run finished and trains nothing.
    logs_before = {p: p.read_text() for p in out.glob("*/*/*/fit.log")}
    second = _grid("-c", grid_file)
    assert second.returncode == 0
    assert "4 already finished, 0 to run" in second.stdout
    assert {p: p.read_text() for p in out.glob("*/*/*/fit.log")} == logs_before


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    run = Run("di_friction", "dmash:lowrank", 3, REPO / "conf/quickstart.yaml", tmp_path / "seed3")
    command = run.command([])
    assert "--ckpt_path=last" not in command
    assert "--model.method=dmash" in command and "--model.context.adapter_kind=lowrank" in command
    ckpt = tmp_path / "seed3" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    assert "--ckpt_path=last" in run.command([])


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"envs": ["cartpole"]}, "grid.envs"),
        ({"methods": ["dmash:diag"]}, "grid.methods"),
        ({"methods": ["ppo"]}, "grid.methods"),
        ({"seeds": []}, "grid.seeds"),
        ({"workers": 0}, "grid.workers"),
        ({"config": "conf/{env}/nope.yaml"}, "grid.config"),
        ({"method": ["dr"]}, "grid.method"),
    ],
)
def test_bad_grid_names_the_field(tmp_path, overrides, field):
    with pytest.raises(ConfigError) as info:
        GridSpec.load(_grid_file(tmp_path, **overrides))
    assert info.value.field == field


def test_bad_grid_exits_with_one_line_before_any_run(tmp_path):
    proc = _grid("-c", _grid_file(tmp_path, methods=["dr", "ppo"]))
    assert proc.returncode == 2 and "grid.methods" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "grid").exists()


def test_curves_align_seeds_on_shared_evaluation_points(tmp_path):
    def evaluation(frames, value):
        return {"env_frames": frames, "splits": {"eval_out": {"mean": value}}}

    by_seed = {0: [evaluation(10, 1.0), evaluation(20, 3.0)], 1: [evaluation(10, 2.0), evaluation(20, 5.0)]}
    frames, returns = curves(by_seed, "eval_out")
    assert frames.tolist() == [10, 20]
    np.testing.assert_allclose(returns, [[1.0, 3.0], [2.0, 5.0]])
    low, high = bootstrap_mean_ci(returns)
    assert (low >= returns.min(0)).all() and (high <= returns.max(0)).all() and (low <= high).all()
    seed_dir = tmp_path / "di_friction" / "dr" / "seed0" / "lightning_logs" / "version_0"
    seed_dir.mkdir(parents=True)
    (seed_dir / "eval.json").write_text(json.dumps({"evaluations": by_seed[0]}))
    assert collect(tmp_path) == {"di_friction": {"dr": {0: by_seed[0]}}}


def test_failed_runs_are_reported_not_marked_done(tmp_path):
    grid_file = _grid_file(tmp_path, methods=["dr"], seeds=[0], args=["--model.sac.gamma=1.0"])
    proc = _grid("-c", grid_file)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "1 run(s) failed" in proc.stderr and "no results to aggregate" in proc.stderr
    run = tmp_path / "grid" / "di_friction" / "dr" / "seed0"
    assert not (run / "done.json").exists()
    assert "invalid sac.gamma=1.0" in (run / "fit.log").read_text()
