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


def collected_batch(module, steps: int = 60):
    """64 real transitions (with their windows) from the module's own env and acting policy.

    Collected under no_grad, as the collector acts (the batch carries no graph); context methods
    fold them into their normaliser first, as training does.
    """
    env = module.make_env("train", 4, seed=0)
    with torch.no_grad():
        rollout = env.rollout(steps, module.policy, break_when_any_done=False)
    if module.context_model is not None:
        module.context_model.update_normalizer(rollout)
    return rollout.reshape(-1)[torch.randperm(4 * steps, generator=torch.Generator().manual_seed(0))[:64]]
