"""Smoke tests of the benchmark scripts at tiny sizes (the real measurements are run by hand)."""

import importlib.util
import json
import subprocess
import sys

import pytest
from conftest import REPO, TINY_ARGS


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def load_paper_scale():
    return load_script("paper_scale")


TINY = ["--envs", "4", "--horizon", "12", "--window", "6", "--hidden", "16", "--hypernet-hidden", "16", "--batch", "16"]


@pytest.mark.integration
def test_paper_scale_quick_tiny(tmp_path):
    out = tmp_path / "quick.json"
    tiny = [*TINY, "--rounds", "1", "--block-seconds", "0.001"]
    load_paper_scale().main(["--quick", "--device", "cpu", "--out", str(out), *tiny])
    report = json.loads(out.read_text())
    for key in ("seed_updates_per_s", "ms_per_update", "ms_per_iteration", "env_frames_per_s"):
        assert set(report[key]) == {"1", "10"}, key
        assert all(v > 0 for v in report[key].values()), key
    arm = report["results"]["di"]["dmash"]["10"]
    assert arm["run_s"] > arm["run_s_iterations"] > 0 and arm["eval_s"] > 0
    assert report["projection_hours"]["total_hours"]["10"] > 0
    assert report["authors_comparison"] == []  # not at the authors' sizes
    for key in ("command", "commit", "date", "machine", "torch", "threads", "load_1_5_15", "settings"):
        assert key in report


@pytest.mark.integration
def test_roofline_tiny(tmp_path, capsys):
    out = tmp_path / "roofline.json"
    args = ["--tasks", "di", "--methods", "dr", "dmash", "--many", "2", "--rounds", "1", "--block-seconds", "0.001"]
    load_paper_scale()
    report = load_script("roofline").main([*args, *TINY, "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["commit"] == report["commit"] and "working_tree_dirty" in saved
    for method in ("dr", "dmash"):
        row = saved["results"]["di"][method]
        assert row["gflop_per_update"] > 0 and row["percent_of_peak"] > 0
        assert row["S2"]["ms_per_seed_update"] > 0 and row["authors"] is None
    # the shared adapter's generation and application make dmash's update the larger one
    assert saved["results"]["di"]["dmash"]["gflop_per_update"] > saved["results"]["di"]["dr"]["gflop_per_update"]
    assert "| di | dmash |" in capsys.readouterr().out


def test_quickstart_bar_is_half_the_gap_to_the_reference():
    closes = load_script("quickstart").closes_half_the_gap
    run = {"aer_first": {"train": 60.0, "eval_out": 50.0}, "aer": {"train": 120.0, "eval_out": 100.0}}
    assert closes(run, {"train": 180.0, "eval_out": 150.0}) == {"train": True, "eval_out": True}
    assert closes(run, {"train": 181.0, "eval_out": 150.1}) == {"train": False, "eval_out": False}


# --- every bench records the commit it measured and whether the tree was dirty, read at its start ---


def _git(repo, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def _tiny_repo(tmp_path, ci_run: str):
    """A git checkout whose `.ci/run` is `ci_run`: what suite_time clones and times."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    (repo / ".ci" / "run").write_text(ci_run)
    (repo / "notes.txt").write_text("one\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    return repo


@pytest.mark.integration
def test_quickstart_breakdown_splits_a_tiny_main_job_into_its_parts(tmp_path):
    tiny = [*TINY_ARGS, "--model.protocol.steps_per_batch=4"]  # as test_the_main_job_config_runs_at_tiny_size
    out = tmp_path / "breakdown.json"
    args = ["--out", str(out), "--root", str(tmp_path / "run"), *(f"--fit-arg={a}" for a in tiny)]
    report = load_script("quickstart_breakdown").main(args)
    saved = json.loads(out.read_text())
    assert saved["parts_s"] == report["parts_s"] and saved["commit"] and "working_tree_dirty" in saved
    assert report["updates"] == 11 and len(report["evaluations_s"]) == 3  # after updates 1 and 9, and at the end
    parts = report["parts_s"]
    assert all(parts[k] > 0 for k in ("imports_s", "setup_s", "random_phase_s", "updates_s")), parts
    assert parts["acting_and_env_s"] >= 0 and parts["rest_s"] >= 0, "the parts overlap"
    assert parts["evaluations_s"] == pytest.approx(sum(report["evaluations_s"]), abs=0.02)
    assert (tmp_path / "run" / "seed0" / "eval.json").exists()


def test_repo_state_is_the_commit_and_uncommitted_tracked_changes(tmp_path):
    from lit_dmash.io import repo_state

    repo = _tiny_repo(tmp_path, "true\n")
    commit = _git(repo, "rev-parse", "--short", "HEAD")
    assert repo_state(repo) == {"commit": commit, "working_tree_dirty": False}
    (repo / "untracked.txt").write_text("x")
    assert repo_state(repo)["working_tree_dirty"] is False, "untracked files do not count"
    (repo / "notes.txt").write_text("two\n")
    assert repo_state(repo) == {"commit": commit, "working_tree_dirty": True}
    assert repo_state(tmp_path / "nowhere") == {"commit": None, "working_tree_dirty": None}


def test_a_bench_record_names_the_commit_it_started_at_not_one_made_while_it_ran(tmp_path):
    from lit_dmash.io import BenchRecord, bench_command

    repo = _tiny_repo(tmp_path, "true\n")
    started_at = _git(repo, "rev-parse", "--short", "HEAD")
    record = BenchRecord(bench_command("bench/x.py", ["--out", "a b.json"]), repo=repo)
    (repo / "notes.txt").write_text("two\n")
    _git(repo, "commit", "-qam", "made while the bench ran")
    report = record.finish()
    assert report["commit"] == started_at != _git(repo, "rev-parse", "--short", "HEAD")
    assert report["working_tree_dirty"] is False
    assert report["command"] == "python bench/x.py --out 'a b.json'"  # pasteable into a shell
    assert set(report["load_1_5_15"]) == {"start", "end"} and report["cores"] >= 1 and report["cpu"]


def _same_checkout(report: dict) -> None:
    from lit_dmash.io import repo_state

    assert {k: report[k] for k in ("commit", "working_tree_dirty")} == repo_state(REPO)


def test_env_throughput_records_commit_and_dirty(tmp_path):
    out = tmp_path / "throughput.json"
    report = load_script("env_throughput").main(
        ["--envs", "di", "--num-envs", "2", "--seconds", "0.01", "--repeats", "1", "--out", str(out)]
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(report)) and report["rows"]
    _same_checkout(report)
    assert report["command"].startswith("python bench/env_throughput.py --envs di")


def test_suite_time_records_the_tested_commit_and_the_dirty_tree(tmp_path):
    repo = _tiny_repo(tmp_path, 'echo "===== 3 passed in 0.25s ====="\n')
    (repo / "notes.txt").write_text("not committed: not in the clone\n")
    out = tmp_path / "suite.json"
    report = load_script("suite_time").main(["--repo", str(repo), "--out", str(out)])
    assert report["commit"] == _git(repo, "rev-parse", "--short", "HEAD") and report["working_tree_dirty"] is True
    assert report["returncode"] == 0 and report["pytest_summary"] == "3 passed" and report["pytest_s"] == 0.25
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))  # tuples are written as lists


@pytest.mark.integration
def test_suite_time_fast_times_only_the_tests_not_marked_integration(tmp_path):
    repo = _tiny_repo(tmp_path, "exit 1\n")  # .ci/run is not what --fast runs
    (repo / "tests").mkdir()
    (repo / "tests" / "test_layers.py").write_text(
        "import pytest\n\ndef test_unit():\n    pass\n\n"
        "@pytest.mark.integration\ndef test_end_to_end():\n    raise AssertionError('not in the fast layer')\n"
    )
    (repo / "pyproject.toml").write_text('[tool.pytest.ini_options]\nmarkers = ["integration: slow"]\n')
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "tests")
    report = load_script("suite_time").main(["--repo", str(repo), "--fast", "--out", str(tmp_path / "fast.json")])
    assert report["returncode"] == 0 and report["pytest_summary"] == "1 passed, 1 deselected"
    assert report["layer"].startswith("fast") and report["working_tree_dirty"] is False


def test_zero_shot_records_commit_dirty_and_a_command_with_its_runs_folder(tmp_path):
    tiny = ["--model.env.num_envs=4", "--model.env.contexts_per_split=4", "--model.env.horizon=12"]
    tiny += ["--model.context.window=6", "--model.sac.hidden_dims=[16,16]", "--model.sac.batch_size=16"]
    runs, out = tmp_path / "runs", tmp_path / "out"
    args = ["--env", "di", "--methods", "dr", "--seeds", "1", "--updates", "2", "--random-steps", "24"]
    args += ["--episodes", "1", "--workers", "1", "--runs", str(runs), "--out", str(out), "--baselines", "dr"]
    load_script("zero_shot").main([*args, *(f"--fit-arg={a}" for a in tiny)])
    meta = json.loads((out / "meta.json").read_text())
    _same_checkout(meta)
    assert f"--runs {runs} --out {out}" in meta["command"] and (out / "di.json").is_file()


@pytest.mark.integration
def test_watch_still_records_commit_and_dirty(tmp_path, monkeypatch):
    from lit_dmash import render

    monkeypatch.delenv("MUJOCO_GL", raising=False)  # conftest turns rendering off for the other tests
    render.gl_backend.cache_clear()
    out = tmp_path / "still.png"
    try:
        load_script("watch_still").main(
            ["--out", str(out), "--horizon", "12", "--updates", "2", "--width", "64", "--height", "48"]
        )
    finally:
        render.gl_backend.cache_clear()
    record = json.loads(out.with_suffix(".json").read_text())
    _same_checkout(record)
    assert out.is_file() and record["command"].startswith("python bench/watch_still.py --out")


def _paper_budget_run(root, method: str, seed: int, updates: list[int]) -> None:
    """A `di` run's eval.json with evaluations at `updates`; contexts carry a sign (inverted / normal)."""
    from conftest import write_fake_eval

    def split(aer: float) -> dict:
        contexts = [[0.5 + 0.1 * i, -1.0 if i % 2 else 1.0] for i in range(4)]
        return {"aer": aer, "per_context": [aer] * 4, "returns": [[aer]] * 4, "contexts": contexts}

    evaluations = [
        {
            "updates": u,
            "env_frames": 20 * u,
            "splits": {s: split(u / 1000 + seed) for s in ("train", "eval_in", "eval_out")},
        }
        for u in updates
    ]
    folder = root / "di" / method / f"seed{seed}"
    folder.mkdir(parents=True)
    write_fake_eval(folder, evaluations, task="di", method=method, seed=seed, group="non-overlapping")


@pytest.mark.integration
def test_paper_budget_compares_a_grid_in_progress_where_its_arms_have_got_to(tmp_path):
    """An arm still short of `--min-updates` is left out of the aggregate (and said so); the others are
    cut at the last update they all reached; every eval.json is copied; the figures are written."""
    grid, out = tmp_path / "grid", tmp_path / "out"
    for seed in (0, 1):
        _paper_budget_run(grid, "dr", seed, [1, 5001, 10001])
        _paper_budget_run(grid, "dmash", seed, [1, 5001])
        _paper_budget_run(grid, "concat", seed, [1])
    load_script("paper_budget").main(["--grid", str(grid), "--out", str(out), "--min-updates", "5001", "--reps", "50"])
    status = json.loads((out / "status.json").read_text())
    assert status["compared_at_updates"] == {"di": 5001}
    assert status["left_out_of_the_aggregate"] == {"di": ["concat"]}
    assert status["runs"]["di"]["dr"]["seed1"]["updates"] == 10001
    assert (out / "di" / "concat" / "seed1" / "eval.json").is_file()
    compared = json.loads((out / "results.json").read_text())
    assert "concat" not in json.dumps(compared) and "dmash" in json.dumps(compared)
    assert (out / "curves_di.png").is_file() and (out / "per_context_di.png").is_file()


@pytest.mark.integration
def test_paper_budget_keeps_a_committed_run_that_got_further_than_a_fresh_grid(tmp_path):
    """Checkpoints are never committed, so a fresh machine's grid restarts a run at update 0: collecting
    it must neither replace the committed eval.json that got further nor drop that run's status, while
    a run that got further in the grid does replace the committed one."""
    first_machine, grid, out = tmp_path / "first", tmp_path / "grid", tmp_path / "out"
    for seed in (0, 1):
        _paper_budget_run(first_machine, "dr", seed, [1, 5001, 10001])
        _paper_budget_run(first_machine, "dmash", seed, [1])
    paper_budget = load_script("paper_budget")
    paper_budget.main(["--grid", str(first_machine), "--out", str(out), "--reps", "50"])  # the committed state
    for seed in (0, 1):
        _paper_budget_run(grid, "dr", seed, [1])
        _paper_budget_run(grid, "dmash", seed, [1, 5001])
    paper_budget.main(["--grid", str(grid), "--out", str(out), "--reps", "50"])
    status = json.loads((out / "status.json").read_text())
    kept = json.loads((out / "di" / "dr" / "seed0" / "eval.json").read_text())
    assert [e["updates"] for e in kept["evaluations"]] == [1, 5001, 10001]
    assert status["runs"]["di"]["dr"]["seed0"]["updates"] == 10001
    assert status["runs"]["di"]["dmash"]["seed1"]["updates"] == 5001
    assert status["compared_at_updates"] == {"di": 5001}


def test_status_lists_the_commits_that_ran_each_evaluation_in_order():
    evaluation_commits = load_script("paper_budget").evaluation_commits
    resumed = {"commit": "c3", "evaluations": [{"commit": "c1"}, {"commit": "c1"}, {"commit": "c3"}]}
    assert evaluation_commits(resumed) == ["c1", "c3"]  # run to its second evaluation at c1, resumed at c3
    older = {"commit": "c2", "evaluations": [{"updates": 1}, {"updates": 5001}]}  # entries without a commit
    assert evaluation_commits(older) == ["c2"]
    assert evaluation_commits({"commit": "c3", "evaluations": [{}, {"commit": "c3"}]}) == [None, "c3"]


def test_per_context_lines_break_across_the_training_range_not_within_a_side():
    """eval_out contexts of di lie below and above the training masses [0.5, 1.5]: the line has a gap
    there; training contexts inside the range stay one line."""
    import numpy as np

    broken_across = load_script("paper_budget").broken_across
    x, y = broken_across(np.array([0.1, 0.3, 0.45, 1.6, 2.0]), np.arange(5.0), 0.5, 1.5)
    assert np.isnan(x[3]) and np.isnan(y[3]) and list(x[[0, 1, 2, 4, 5]]) == [0.1, 0.3, 0.45, 1.6, 2.0]
    x, y = broken_across(np.array([0.55, 0.9, 1.2, 1.45]), np.arange(4.0), 0.5, 1.5)
    assert not np.isnan(x).any() and len(x) == 4


def test_learning_check_reference_is_the_lowest_seed_at_that_update_or_none(tmp_path):
    """The bar is set by the committed run that learnt least at the checked update; an arm or an update
    without committed runs has no reference (reported as such, never passed)."""
    from conftest import write_fake_eval

    check = load_script("learning_check")
    for seed, aer in ((0, 141.0), (1, 138.0), (2, 148.0)):
        evaluations = [
            {"updates": 1, "env_frames": 0, "splits": {"train": {"aer": 40.0}}},
            {"updates": 5001, "env_frames": 0, "splits": {"train": {"aer": aer}}},
        ]
        write_fake_eval(tmp_path / "ode" / "dmash" / f"seed{seed}", evaluations, task="ode", method="dmash", seed=seed)
    assert check.reference_aer(tmp_path, "ode", "dmash", 5001) == 138.0
    assert check.reference_aer(tmp_path, "ode", "dmash", 1) == 40.0
    assert check.reference_aer(tmp_path, "ode", "dmash", 10001) is None
    assert check.reference_aer(tmp_path, "ode", "dma_star", 5001) is None
