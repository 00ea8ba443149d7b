"""Smoke test of bench/paper_scale.py at tiny sizes (the real measurements are run by hand)."""

import importlib.util
import json
import sys

from conftest import REPO


def load_paper_scale():
    spec = importlib.util.spec_from_file_location("paper_scale", REPO / "bench" / "paper_scale.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["paper_scale"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_paper_scale_quick_tiny(tmp_path):
    out = tmp_path / "quick.json"
    tiny = ["--envs", "4", "--horizon", "12", "--window", "6", "--hidden", "16", "--hypernet-hidden", "16"]
    tiny += ["--batch", "16", "--rounds", "1", "--block-seconds", "0.001"]
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
