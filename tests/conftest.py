import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("RL_WARNINGS", "0")
os.environ.setdefault("MUJOCO_GL", "disable")  # no rendering in these tests; keeps glfw quiet on headless machines
# CI machines have 2 cores: one torch thread avoids oversubscription when pytest and torch compete.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
# A seed trained in a stack of seeds against the seed trained alone: equal to float rounding, for where
# the math library takes another kernel for a stack than for one seed (see test_agent, test_fit).
FLOAT_ROUNDING = {"rtol": 1e-5, "atol": 1e-6}

# The quickstart at tiny sizes: 4 contexts, 12-step episodes, window 6, 11 updates after 24 random steps.
TINY_ARGS = [  # the quickstart at tiny sizes; the grid tests pass these to every job
    "--model.env.num_envs=4",
    "--model.env.contexts_per_split=4",
    "--model.env.horizon=12",
    "--model.context.window=6",
    "--model.protocol.random_steps=24",
    "--model.protocol.total_steps=10",
    "--model.sac.hidden_dims=[16,16]",
    "--model.sac.batch_size=16",
    "--trainer.callbacks.init_args.every_n_updates=8",  # the quickstart's ZeroShotEvaluation
    "--trainer.callbacks.init_args.episodes=2",
]
TINY_CLI = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.log_every_n_steps=5",
    *TINY_ARGS,
]


@pytest.fixture
def data_dir() -> Path:
    return DATA


def cli_command(*args: str, subcommand: str = "fit", config: str = "conf/quickstart_di.yaml") -> list[str]:
    """`python -m lit_dmash fit -c conf/quickstart_di.yaml ARGS...`, to run from the repo root."""
    return [sys.executable, "-m", "lit_dmash", subcommand, "-c", config, *args]


def run_cli(
    *args: str, timeout: float = 300, subcommand: str = "fit", config: str = "conf/quickstart_di.yaml"
) -> subprocess.CompletedProcess:
    """Run `cli_command(*args)` in a fresh process and wait for it."""
    cmd = cli_command(*args, subcommand=subcommand, config=config)
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def tiny_context(method: str, **fields):
    """The tiny tests' context settings (window 3, half the window read, 8-wide hypernetworks), less
    those `method` never reads (the module refuses them); `fields` are passed through as given."""
    import dataclasses

    from lit_dmash.config import ContextConfig, without_inert
    from lit_dmash.methods import get_method

    tiny = ContextConfig(window=3, select_fraction=0.5, hypernet_hidden=[8, 8])
    return dataclasses.replace(without_inert(get_method(method), tiny), **fields)


def tiny_module(
    method: str = "dmash",
    task: str = "di",
    seeds=(0,),
    total_steps: int = 3,
    context=None,
    env=None,
    sac=None,
    **kwargs,
):
    """A module small enough to fit in about a second: 2 contexts, 6-step episodes, window 3.

    `context`, `env`, `sac`: fields of those groups to set on top of the tiny ones."""
    from lit_dmash.config import EnvConfig, ProtocolConfig, SACConfig
    from lit_dmash.module import ContextualSAC

    options = {"k": 3} if task == "ode_k" else {}
    env_fields = {"name": task, "num_envs": 2, "contexts_per_split": 2, "horizon": 6, "options": options, **(env or {})}
    return ContextualSAC(
        method=method,
        env=EnvConfig(**env_fields),
        protocol=ProtocolConfig(random_steps=12, total_steps=total_steps, buffer_size=60),
        sac=SACConfig(**{"hidden_dims": [8, 8], "batch_size": 8, **(sac or {})}),
        context=tiny_context(method, **(context or {})),
        seeds=list(seeds),
        **kwargs,
    )


def quiet_trainer(root=None, **kwargs):
    """A Lightning `Trainer` that fits a module to its own budget (`max_epochs=-1`) under `root` (None:
    Lightning's default), with no logger, progress bar, model summary or checkpoint callback; `kwargs`
    override or add to these."""
    import lightning as L

    quiet = {
        "max_epochs": -1,
        "default_root_dir": root,
        "logger": False,
        "enable_progress_bar": False,
        "enable_checkpointing": False,
        "enable_model_summary": False,
    }
    return L.Trainer(**{**quiet, **kwargs})


def write_fake_eval(
    seed_dir, evaluations: list[dict], task: str = "di", method: str = "dr", seed: int = 0, group=None, **fields
) -> Path:
    """`seed_dir/eval.json` as a fit writes it (`lit_dmash.records.write_record`: task, method, seed,
    group and commit, then `evaluations` and `fields`), without a fit."""
    from types import SimpleNamespace

    from lit_dmash.records import write_record

    seed_dir = Path(seed_dir)
    run = SimpleNamespace(
        env_cfg=SimpleNamespace(name=task),
        method=SimpleNamespace(name=method),
        task_spec=SimpleNamespace(group=group),
        seed_dir=lambda _seed: seed_dir,
    )
    write_record(run, seed, "eval.json", evaluations=evaluations, **fields)
    return seed_dir / "eval.json"


def nan_after(key: str, steps: int):
    """A real TorchRL transform that makes `key` ("observation", "reward") NaN in every sub-env's
    next step after `steps` env steps: a blown-up simulator or reward, for the non-finite paths."""
    import torch
    from torchrl.envs import Transform

    class NaNAfter(Transform):
        def __init__(self) -> None:
            super().__init__(in_keys=[], out_keys=[])
            self.count = 0

        def _step(self, tensordict, next_tensordict):
            self.count += 1
            if self.count > steps:
                next_tensordict.set(key, torch.full_like(next_tensordict[key], float("nan")))
            return next_tensordict

    return NaNAfter()
