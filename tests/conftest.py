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


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m lit_dmash fit -c conf/quickstart.yaml ARGS...` in a fresh process, from the repo root."""
    cmd = [sys.executable, "-m", "lit_dmash", "fit", "-c", "conf/quickstart.yaml", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
