import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("RL_WARNINGS", "0")
# CI machines have 2 cores: one torch thread avoids oversubscription when pytest and torch compete.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def data_dir() -> Path:
    return DATA


def cli_command(*args: str) -> list[str]:
    """`python -m lit_dmash fit -c conf/quickstart.yaml ARGS...`, to run from the repo root."""
    return [sys.executable, "-m", "lit_dmash", "fit", "-c", "conf/quickstart.yaml", *args]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `cli_command(*args)` in a fresh process and wait for it."""
    return subprocess.run(cli_command(*args), cwd=REPO, capture_output=True, text=True, timeout=timeout)
