"""The generated configs `conf/<task>/<method>.yaml` are what `conf/generate.py` writes today, and valid."""

from __future__ import annotations

import importlib.util

import yaml
from conftest import REPO

from lit_dmash.config import ContextConfig, check_context_applies
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
