"""Smoke tests of the benchmark scripts at tiny sizes (the real measurements are run by hand)."""

import importlib.util
import json
import sys

from conftest import REPO


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def load_paper_scale():
    return load_script("paper_scale")


TINY = ["--envs", "4", "--horizon", "12", "--window", "6", "--hidden", "16", "--hypernet-hidden", "16", "--batch", "16"]


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
