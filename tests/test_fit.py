"""End to end through the CLI and the Trainer: logs, eval JSON, bad input, learning."""

import json

import lightning as L
import pytest
import torch
from conftest import run_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from lit_dmash.cli import main
from lit_dmash.config import CollectorConfig, EnvConfig, SACConfig
from lit_dmash.evaluation import first_episode_returns
from lit_dmash.methods import METHODS
from lit_dmash.module import ContextualSAC

TINY = [
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--model.env.num_envs=4",
    "--model.collector.frames_per_batch=32",
    "--model.collector.init_random_frames=128",
    "--model.collector.total_frames=384",
    "--model.sac.hidden_dims=[16,16]",
    "--model.sac.batch_size=32",
    "--trainer.callbacks.every_n_frames=256",  # the quickstart's ZeroShotEvaluation
    "--trainer.callbacks.episodes=3",
]


def test_cli_fit_writes_tensorboard_and_eval_json(tmp_path):
    proc = run_cli(
        *TINY,
        f"--trainer.default_root_dir={tmp_path}",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "lightning_logs").iterdir()
    assert list(run.glob("events.out.tfevents.*"))

    evaluations = json.loads((run / "eval.json").read_text())["evaluations"]
    assert [e["env_frames"] for e in evaluations] == [256, 384]
    for entry in evaluations:
        assert set(entry["splits"]) == {"train", "eval_in", "eval_out", "eval_pattern"}
        assert all(len(s["returns"]) == 3 for s in entry["splits"].values())

    events = EventAccumulator(str(run))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {
        "train/episode_return",
        "train/loss_qvalue",
        "train/loss_actor",
        "train/alpha",
        "train/updates",
        "time/updates_per_s",
        "eval/eval_out/return",
        "eval/eval_out/return_std",
    }
    assert expected <= scalars
    # The x-axis is env frames: the last eval sits at the final frame count.
    assert events.Scalars("eval/eval_out/return")[-1].step == 384
    # Episodes (50 steps x 4 envs) end once, at 224 frames: logged once, at the next log step, never repeated.
    assert [e.step for e in events.Scalars("train/episode_return")] == [320]
    # TensorBoard extras: per-split returns figure, HParams with final metrics, custom scalars layout.
    assert "eval/returns_by_split" in events.Tags()["images"]
    final = events.Scalars("final/eval_out/return")[-1].value
    assert final == pytest.approx(evaluations[-1]["splits"]["eval_out"]["mean"], rel=1e-5)
    experiment = HParamsPluginData.FromString(events.PluginTagToContent("hparams")["_hparams_/experiment"]).experiment
    assert "final/eval_out/return" in {info.name.tag for info in experiment.metric_infos}
    assert {"method", "sac/gamma", "collector/total_frames"} <= {info.name for info in experiment.hparam_infos}
    assert "custom_scalars__config__" in events.Tags()["tensors"]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_fits_a_few_steps(method, tmp_path):
    module = ContextualSAC(
        method=method,
        env=EnvConfig(num_envs=2),
        collector=CollectorConfig(frames_per_batch=16, total_frames=96, init_random_frames=32),
        sac=SACConfig(hidden_dims=[8], batch_size=16, utd=2),
    )
    trainer = L.Trainer(
        max_epochs=-1,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(module)
    assert module.env_frames == 96
    assert module.updates == 2 * (96 - 32) // 16 + 2
    assert trainer.global_step == module.updates, "one optimizer step per update"
    stored = set(module.replay_buffer[:4].keys(True, True))
    assert ("next", "history") not in stored and "loc" not in stored, "derived keys are not stored"
    assert ("history" in stored) == module.method.infers_context
    assert torch.isfinite(module.evaluate("eval_out", episodes=2, seed=0)).all()


BAD_INPUT = [
    (["--model.env.name=cartpole"], "env.name"),
    (["--model.env.split=test"], "env.split"),
    (["--model.env.num_envs=0"], "env.num_envs"),
    (["--model.env.horizon=0"], "env.horizon"),
    (["--model.env.horizon=80", "--model.eval_max_steps=60"], "eval_max_steps"),
    (["--model.env.context_file=/nonexistent.yaml"], "context_file"),
    (["--model.method=dmash_typo"], "method"),
    (["--model.collector.frames_per_batch=30"], "collector.frames_per_batch"),
    (["--model.collector.total_frames=0"], "collector.total_frames"),
    (["--model.sac.batch_size=-1"], "sac.batch_size"),
    (["--model.sac.hidden_dims=[]"], "sac.hidden_dims"),
    (["--model.sac.hidden_dims=[64,0]"], "sac.hidden_dims"),
    (["--model.sac.gamma=1.0"], "sac.gamma"),
    (["--model.sac.lr_actor=0"], "sac.lr_actor"),
    (["--model.sac.loss_impl=fast"], "sac.loss_impl"),
    (["--trainer.callbacks+=callbacks.ZeroShotEvaluation", "--trainer.callbacks.episodes=0"], "episodes"),
    (["--model.method=dmash", "--model.context.history_len=0"], "context.history_len"),
    (["--model.method=dmash", "--model.context.p_mask=1.0"], "context.p_mask"),
    (["--model.method=dmash", "--model.context.p_mask=-0.1"], "context.p_mask"),
    (["--model.method=dmash", "--model.context.adapter_width=32"], "context.adapter_width"),
    (["--model.method=dmash", "--model.context.dynamics_hidden=[128,64]"], "context.dynamics_hidden"),
    (["--model.method=dmash", "--model.context.adapter_kind=diagonal"], "context.adapter_kind"),
    (["--model.method=dmash", "--model.context.output_norm=batchnorm"], "context.output_norm"),
    (["--model.method=dmash", "--model.context.adapter_layer=2"], "context.adapter_layer"),
    (["--trainer.callbacks+=callbacks.MaskingSchedule", "--trainer.callbacks.schedule=step"], "schedule"),
    (["--trainer.callbacks+=callbacks.MaskingSchedule", "--trainer.callbacks.end=1.5"], "end"),
    (["--model.collector.buffer_size=100000000000"], "collector.buffer_size"),
    (["--model.on_nonfinite=ignore"], "on_nonfinite"),
    (["--trainer.devices=0"], "devices"),
    (["--trainer.strategy=nonsense"], "strategy"),
    (["--trainer.accelerator=tpu"], "torch_xla"),
    (["--ckpt_path=last"], "no checkpoints/last.ckpt"),
]


@pytest.mark.parametrize(("args", "field"), BAD_INPUT)
def test_bad_input_exits_before_training_and_names_the_field(args, field, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", "conf/quickstart.yaml", f"--trainer.default_root_dir={tmp_path}", *args])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert field in err
    assert not (tmp_path / "lightning_logs").exists(), "no run may start on bad input"


@pytest.mark.parametrize("split_field", ["signs", "friction"])
def test_malformed_context_file_fails_from_the_cli_without_traceback(tmp_path, split_field):
    bad = {"signs": "[[1, 1, 1]]", "friction": "[[1.5, 0.5]]"}
    spec = {"signs": "[[1, 1]]", "friction": "[[0.5, 1.5]]"} | {split_field: bad[split_field]}
    path = tmp_path / "bad.yaml"
    path.write_text(
        f"num_actuators: 2\nparams: [friction]\nsplits:\n  train:\n    signs: {spec['signs']}\n"
        f"    friction: {spec['friction']}\n"
    )
    proc = run_cli(
        f"--model.env.context_file={path}",
        f"--trainer.default_root_dir={tmp_path}",
        timeout=120,
    )
    assert proc.returncode == 2
    assert f"splits.train.{split_field}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_first_episode_returns_ignore_steps_after_the_first_done():
    reward = torch.ones(2, 5, 1)
    done = torch.zeros(2, 5, 1, dtype=torch.bool)
    done[0, 2] = True  # sub-env 0 ends after 3 steps, then a new episode starts
    done[1, 4] = True
    assert first_episode_returns(reward, done).tolist() == [3.0, 5.0]
