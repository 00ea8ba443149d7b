"""The generated configs `conf/<task>/<method>.yaml` are what `conf/generate.py` writes today, and valid;
the shipped grids `conf/grids/*.yaml` name methods, configs and fit arguments that exist."""

from __future__ import annotations

import importlib.util

import pytest
import yaml
from conftest import REPO

from lit_dmash import cli
from lit_dmash.config import ContextConfig, check_context_applies
from lit_dmash.experiments.grid import GridSpec
from lit_dmash.methods import get_method


def _generator():
    spec = importlib.util.spec_from_file_location("conf_generate", REPO / "conf" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXPECTED = _generator().expected_files()


def test_every_generated_config_is_committed_as_generated():
    """Regenerated in memory and compared with the files: `python conf/generate.py` rewrites them."""
    stale = [
        str(path.relative_to(REPO)) for path, text in EXPECTED.items() if not path.is_file() or path.read_text() != text
    ]
    assert not stale, f"out of date (run python conf/generate.py): {stale}"


def test_no_config_folder_holds_a_file_the_generator_does_not_write():
    folders = {path.parent for path in EXPECTED}
    extra = sorted(str(p.relative_to(REPO)) for folder in folders for p in folder.glob("*.yaml") if p not in EXPECTED)
    assert not extra, f"not generated (stale or hand-written): {extra}"


def test_every_generated_config_sets_only_options_its_arm_reads():
    for path in EXPECTED:
        model = yaml.safe_load(path.read_text())["model"]
        check_context_applies(get_method(model["method"]), ContextConfig(**model.get("context", {})))


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        flat |= _flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return flat


def _callbacks_but_period(config: dict) -> list:
    return [
        (c["class_path"], {k: v for k, v in c["init_args"].items() if k != "every_n_updates"})
        for c in config["trainer.callbacks"]
    ]


def test_the_main_job_is_the_paper_run_of_dmash_on_ode_cut_short():
    """README says so: only the budget, logging, network width and batch size may differ (what makes it ~3 minutes)."""
    paper = _flat(yaml.safe_load((REPO / "conf" / "ode" / "dmash.yaml").read_text()))
    quick = _flat(yaml.safe_load((REPO / "conf" / "quickstart.yaml").read_text()))
    allowed = {"model.protocol.total_steps", "trainer.default_root_dir", "trainer.log_every_n_steps"}
    allowed |= {"model.sac.hidden_dims", "model.sac.batch_size", "trainer.callbacks", "model.protocol.steps_per_batch"}
    assert _callbacks_but_period(quick) == _callbacks_but_period(paper)  # the paper's evaluation, at its own period
    differ = sorted(key for key in paper.keys() | quick.keys() if paper.get(key) != quick.get(key))
    assert set(differ) <= allowed, f"conf/quickstart.yaml departs from conf/ode/dmash.yaml in {set(differ) - allowed}"
    assert quick["model.protocol.total_steps"] < paper["model.protocol.total_steps"]


GRID_FILES = sorted((REPO / "conf" / "grids").glob("*.yaml"))


@pytest.mark.integration
@pytest.mark.parametrize("path", GRID_FILES, ids=lambda p: p.name)
def test_every_shipped_grid_names_real_methods_configs_and_fit_arguments(path, tmp_path, capsys):
    """Each grid file parses, its methods exist, every task x method has its config, and the fit
    arguments of each method variant (config, method, the grid's `args`, adapter) pass the fit's own
    parser (`--print_config` parses and validates, then exits without building anything)."""
    spec = GridSpec.load(path)
    spec.out_dir = str(tmp_path)  # no finished runs in the way: only the file is checked
    assert not spec.problems(), [str(p) for p in spec.problems()]
    first_per_variant = {job.variant: job for job in reversed(spec.jobs())}
    for job in first_per_variant.values():
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["fit", "-c", *job.fit_arguments(), "--print_config"])
        errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
        assert exit_info.value.code == 0, f"{path.name} {job.variant}: {errors}"
