"""Evaluating a trained agent: `test` on a checkpoint, `load_agent`, other loggers."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_CLI, quiet_trainer, run_cli, tiny_module

from lit_dmash import load_agent
from lit_dmash.envs import make_env
from lit_dmash.experience.rollout import ContextWindow


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    proc = run_cli(*TINY_CLI, f"--trainer.default_root_dir={root}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root


@pytest.mark.integration
def test_test_subcommand_twice_writes_identical_per_context_returns(trained_run):
    args = [*TINY_CLI, f"--trainer.default_root_dir={trained_run}", "--ckpt_path=last", "--model.test_episodes=2"]
    outputs = []
    for _ in range(2):
        proc = run_cli(*args, subcommand="test")
        assert proc.returncode == 0, proc.stderr[-2000:]
        outputs.append(json.loads((trained_run / "seed0" / "test.json").read_text()))
    first, second = outputs
    assert first["splits"] == second["splits"], "the same checkpoint tested twice gives the same numbers"
    assert "lit-dmash: tested dmash on di:" in proc.stdout  # and says what it found, and where
    assert f"AER train {first['splits']['train']['aer']:7.1f}" in proc.stdout
    assert str(trained_run / "seed0" / "test.json") in proc.stdout
    assert set(first["splits"]) == {"train", "eval_in", "eval_out"}
    for split in first["splits"].values():
        assert len(split["per_context"]) == 4 and all(len(r) == 2 for r in split["returns"])
    assert first["checkpoint"]["updates"] == 11 and first["config"]["method"] == "dmash"


@pytest.mark.integration
def test_test_refuses_a_checkpoint_of_another_method_in_one_line(trained_run):
    args = [*TINY_CLI, f"--trainer.default_root_dir={trained_run}", "--ckpt_path=last", "--model.method=dr"]
    proc = run_cli(*args, subcommand="test")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("lit-dmash: error: checkpoint does not match this run")


@pytest.mark.integration
def test_load_agent_acts_like_the_module(trained_run):
    (checkpoint,) = trained_run.glob("lightning_logs/*/checkpoints/last.ckpt")
    agent = load_agent(checkpoint)
    assert agent.config["method"] == "dmash" and agent.window == 6
    env = make_env("di", "eval_out", num_envs=4, contexts_per_split=4, horizon=12)
    rollout = env.rollout(12, agent.act)  # the window travels in the tensordict
    assert rollout["action"].shape == (4, 12, 2) and rollout["action"].abs().max() <= 1

    # Step 5's action equals the agent's own deterministic action on the window of steps 0..4.
    window = ContextWindow(6, rollout["observation"][:, 0].unsqueeze(0), 2)
    for t in range(5):
        window.push(
            rollout["observation"][:, t][None],
            rollout["action"][:, t][None],
            rollout["next", "observation"][:, t][None],
        )
    expected = agent.agent.act(rollout["observation"][:, 5][None], window.tensors, deterministic=True)[0]
    torch.testing.assert_close(rollout["action"][:, 5], expected)


@pytest.mark.integration
def test_a_fit_with_csv_logger_writes_metrics(tmp_path):
    proc = run_cli(
        *TINY_CLI,
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.logger=CSVLogger",
        f"--trainer.logger.save_dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (metrics,) = tmp_path.glob("lightning_logs/*/metrics.csv")
    header = metrics.read_text().splitlines()[0]
    assert "eval/eval_out/return" in header and "train/loss_critic" in header


@pytest.mark.integration
def test_a_fit_with_wandb_offline_runs_every_default_callback(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="optional extra: pip install .[wandb]")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    proc = run_cli(
        *TINY_CLI,
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.logger=WandbLogger",
        "--trainer.logger.offline=true",
        f"--trainer.logger.save_dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "seed0" / "eval.json").exists()


def test_tiny_module_acts_after_loading_its_own_checkpoint(tmp_path):
    module = tiny_module("concat")
    trainer = quiet_trainer(tmp_path)
    trainer.fit(module)
    trainer.save_checkpoint(tmp_path / "saved.ckpt")
    agent = load_agent(tmp_path / "saved.ckpt")
    env = make_env("di", "eval_out", num_envs=2, contexts_per_split=2, horizon=6)
    td = agent.act(env.reset())
    expected = module.agent.act(td["observation"][None], context=td["context"][None], deterministic=True)[0]
    torch.testing.assert_close(td["action"], expected)
