import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("RL_WARNINGS", "0")
# CI machines have 2 cores: one torch thread avoids oversubscription when pytest and torch compete.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def data_dir() -> Path:
    return DATA
