"""End to end through the CLI and the Trainer: logs, eval JSON, every arm on every task, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import FLOAT_ROUNDING, REPO, TINY_ARGS, TINY_CLI, quiet_trainer, run_cli, tiny_module
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from callbacks import ZeroShotEvaluation
from lit_dmash.cli import main
from lit_dmash.envs import task_names
from lit_dmash.io import repo_commit
from lit_dmash.methods import METHODS

pytestmark = pytest.mark.integration  # end to end through the CLI and the Trainer


def test_cli_fit_writes_tensorboard_and_eval_json(tmp_path):
    proc = run_cli(*TINY_CLI, f"--trainer.default_root_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "lightning_logs").iterdir()
    assert list(run.glob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "last.ckpt").is_file()

    saved = json.loads((tmp_path / "seed0" / "eval.json").read_text())
    assert (saved["task"], saved["method"], saved["seed"], saved["group"]) == ("di", "dmash", 0, "non-overlapping")
    evaluations = saved["evaluations"]
    assert [e["updates"] for e in evaluations] == [1, 9, 11]  # after t = 0, t = 8 and at the end (t = 10)
    assert {e["commit"] for e in evaluations} == {saved["commit"]} == {repo_commit()}  # one process, one commit
    for entry in evaluations:
        assert set(entry["splits"]) == {"train", "eval_in", "eval_out"}
        for split in entry["splits"].values():
            assert len(split["per_context"]) == 4 and all(len(r) == 2 for r in split["returns"])
            assert split["aer"] == pytest.approx(sum(split["per_context"]) / 4)

    events = EventAccumulator(str(run))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {
        "train/episode_return",
        "train/loss_critic",
        "train/loss_actor",
        "train/loss_dynamics",
        "train/alpha",
        "train/updates",
        "time/updates_per_s",
        "eval/eval_out/return",
    }
    assert expected <= scalars
    # The x-axis is env frames per seed: the last eval sits at the final frame count.
    final_frames = evaluations[-1]["env_frames"]
    assert events.Scalars("eval/eval_out/return")[-1].step == final_frames
    assert events.Scalars("eval/eval_out/return")[-1].value == pytest.approx(
        evaluations[-1]["splits"]["eval_out"]["aer"], rel=1e-5
    )
    assert "eval/returns_by_split" in events.Tags()["images"]
    experiment = HParamsPluginData.FromString(events.PluginTagToContent("hparams")["_hparams_/experiment"]).experiment
    assert "final/eval_out/return" in {info.name.tag for info in experiment.metric_infos}
    assert {"method", "sac/gamma", "protocol/total_steps"} <= {info.name for info in experiment.hparam_infos}
    assert "custom_scalars__config__" in events.Tags()["tensors"]


def test_console_shows_progress_and_a_summary_and_no_noise(tmp_path):
    """What a user sees: a bar with the run's total, the AERs at the first and last evaluation, the
    files and the next command; none of the known messages that are not about the run."""
    proc = run_cli(*TINY_ARGS, "--trainer.enable_model_summary=false", f"--trainer.default_root_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.replace("\r", "\n")
    assert "/35 [" in out  # 24 random steps + 11 updates: the bar knows the total
    assert "0/?" not in out and "Epoch 0" not in out  # not even in its first frames (they stay in a log)
    assert "updates=11" in out and "AER=train" in out
    saved = json.loads((tmp_path / "seed0" / "eval.json").read_text())
    first, last = saved["evaluations"][0], saved["evaluations"][-1]
    summary = out[out.index("lit-dmash: dmash on di finished:") :]
    assert f"first evaluation (update       1): train {first['splits']['train']['aer']:7.1f}" in summary
    assert f"last evaluation  (update      11): train {last['splits']['train']['aer']:7.1f}" in summary
    assert str(tmp_path / "seed0" / "eval.json") in summary
    assert "checkpoints/last.ckpt" in summary and f"tensorboard --logdir {tmp_path}/lightning_logs" in summary
    assert "python -m lit_dmash test -c conf/quickstart_di.yaml" in summary and "--ckpt_path last" in summary
    everything = proc.stdout + proc.stderr
    for noise in ("litlogger", "LeafSpec", "`weights_only` was not set", "DISPLAY environment variable"):
        assert noise not in everything, noise


def test_the_main_job_config_runs_at_tiny_size(tmp_path):
    """README's main job (`conf/quickstart.yaml`: DMA*-SH on ODE) with its budget and sizes shrunk."""
    # Its 10 vector steps per Lightning step shrunk to 4, which divide the tiny evaluation period of 8.
    args = (*TINY_CLI, f"--trainer.default_root_dir={tmp_path}", "--model.protocol.steps_per_batch=4")
    proc = run_cli(*args, config="conf/quickstart.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = json.loads((tmp_path / "seed0" / "eval.json").read_text())
    assert (saved["task"], saved["method"]) == ("ode", "dmash")
    assert [e["updates"] for e in saved["evaluations"]] == [1, 9, 11]


def test_the_readme_loop_is_what_fit_runs():
    """README's bare loop ("The code, read top to bottom"), run as written at a tiny size, trains the
    same weights as a Lightning `fit` of the same configs: the module adds wiring, not computation."""
    import re

    from lit_dmash.module import ContextualSAC

    text = (REPO / "README.md").read_text()
    block = re.search(r"### The code, read top to bottom.*?```python\n(.*?)```", text, re.S).group(1)
    tiny = {
        'EnvConfig(name="ode")': 'EnvConfig(name="ode", num_envs=4, contexts_per_split=4, horizon=30)',
        "ProtocolConfig()": "ProtocolConfig(total_steps=3, random_steps=40)",
        "SACConfig()": "SACConfig(hidden_dims=[16, 16], batch_size=8)",
    }
    for written, small in tiny.items():
        assert written in block, written
        block = block.replace(written, small)
    bare: dict = {}
    exec(block, bare)
    configs = {name: bare[name] for name in ("env", "protocol", "sac", "context")}
    module = ContextualSAC(method="dmash", seeds=bare["seeds"], **configs)
    quiet_trainer().fit(module)
    assert module.updates == 4 and bare["collector"].vector_steps == 44
    fitted, looped = module.agent.state_dict(), bare["agent"].state_dict()
    assert fitted.keys() == looped.keys()
    for key, value in looped.items():
        assert torch.equal(fitted[key], value), key


@pytest.mark.parametrize("task", task_names())
def test_every_arm_fits_on_every_task(task, tmp_path):
    """Every arm and ablation trains (a few updates) and evaluates on every paper task."""
    for method in sorted(METHODS):
        module = tiny_module(method, task=task, seeds=[0])
        trainer = quiet_trainer(
            tmp_path / method, callbacks=[ZeroShotEvaluation(every_n_updates=0, episodes=1, splits=["eval_out"])]
        )
        trainer.fit(module)
        assert module.updates == module.protocol.total_steps + 1, method
        saved = json.loads((tmp_path / method / "seed0" / "eval.json").read_text())
        assert len(saved["evaluations"][-1]["splits"]["eval_out"]["per_context"]) == 2, method


def test_steps_per_batch_changes_neither_the_training_nor_when_evaluations_run(tmp_path):
    """n = 4 vector steps per Lightning step against n = 1: the same weights and the same evaluations at
    the same updates (every 8 updates: after t = 0 and t = 8, and at the end), as ProtocolConfig says."""
    runs = {}
    for n in (1, 4):
        root = tmp_path / f"n{n}"
        proc = run_cli(*TINY_CLI, f"--trainer.default_root_dir={root}", f"--model.protocol.steps_per_batch={n}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        (checkpoint,) = root.glob("lightning_logs/version_0/checkpoints/last.ckpt")
        weights = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
        runs[n] = (json.loads((root / "seed0" / "eval.json").read_text())["evaluations"], weights)
    (evals_1, weights_1), (evals_4, weights_4) = runs[1], runs[4]
    assert [e["updates"] for e in evals_4] == [e["updates"] for e in evals_1] == [1, 9, 11]
    assert [e["splits"] for e in evals_4] == [e["splits"] for e in evals_1]
    assert weights_4.keys() == weights_1.keys()
    for key in weights_1:
        torch.testing.assert_close(weights_4[key], weights_1[key], rtol=0, atol=0, msg=key)


def _cli_error(tmp_path, capsys, *args: str) -> str:
    """The CLI's stderr for bad input, after checking it stopped before any run started."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", "conf/quickstart.yaml", f"--trainer.default_root_dir={tmp_path}", *args])
    assert exit_info.value.code != 0
    assert not (tmp_path / "lightning_logs").exists(), "no run may start on bad input"
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip()


BAD_INPUT = [
    (["--model.env.name=pong"], "lit-dmash: error: invalid env.name='pong': expected one of ["),
    (["--model.env.num_envs=0"], "lit-dmash: error: invalid env.num_envs=0: expected an integer >= 1"),
    (
        ["--model.env.contexts_per_split=0"],
        "lit-dmash: error: invalid env.contexts_per_split=0: expected an integer >= 1",
    ),
    (["--model.env.horizon=0"], "lit-dmash: error: invalid env.horizon=0: expected an integer >= 1"),
    (["--model.env.horizon=10"], "lit-dmash: error: invalid context.window=24: expected <= the episode length 10"),
    (["--model.method=dmash_typo"], "lit-dmash: error: invalid method='dmash_typo': expected one of ["),
    (
        ["--model.protocol.total_steps=-1"],
        "lit-dmash: error: invalid protocol.total_steps=-1: expected an integer >= 0",
    ),
    (
        ["--model.protocol.random_steps=0"],
        "lit-dmash: error: invalid protocol.random_steps=0: expected an integer >= 1",
    ),
    (["--model.sac.batch_size=4"], "lit-dmash: error: invalid sac.batch_size=4: expected >= env.num_envs=20"),
    (
        ["--model.sac.hidden_dims=[]"],
        "lit-dmash: error: invalid sac.hidden_dims=[]: expected a non-empty list of integers >= 1",
    ),
    (["--model.sac.gamma=1.0"], "lit-dmash: error: invalid sac.gamma=1.0: expected a number in [0.0, 1.0)"),
    (["--model.sac.lr_actor=0"], "lit-dmash: error: invalid sac.lr_actor=0.0: expected a number > 0"),
    (["--model.context.p_mask=1.0"], "lit-dmash: error: invalid context.p_mask=1.0: expected a number in [0.0, 1.0)"),
    (
        ["--model.context.adapter=diagonal"],
        "lit-dmash: error: invalid context.adapter='diagonal': expected one of "
        "['bottleneck', 'scale_shift', 'lowrank', 'full']",
    ),
    (
        ["--model.context.encoder=gru"],
        "lit-dmash: error: invalid context.encoder='gru': expected one of ['lstm', 'plstm', 'meanpool']",
    ),
    (["--model.seeds=[1,1]"], "lit-dmash: error: invalid seeds=[1, 1]: expected distinct seeds"),
    (
        ["--model.on_nonfinite=ignore"],
        "lit-dmash: error: invalid on_nonfinite='ignore': expected one of ['stop', 'skip']",
    ),
    (
        ["--model.protocol.buffer_size=10000000000", "--model.protocol.total_steps=10000000000"],
        "lit-dmash: error: invalid protocol.buffer_size=",
    ),
    (["--ckpt_path=last"], "lit-dmash: error: --ckpt_path last: no checkpoints/last.ckpt under"),
    (
        ["--model.context.p_mask=0.2", "--model.method=dr"],
        "lit-dmash: error: invalid context.p_mask=0.2: does nothing for method 'dr', which has no context "
        "encoder or dynamics model; leave it unset",
    ),
    (["--model.context.leak_free=true", "--model.method=concat"], "lit-dmash: error: invalid context.leak_free=True"),
    (["--model.context.z_dim=4", "--model.method=da"], "lit-dmash: error: invalid context.z_dim=4: does nothing for"),
    (
        ["--model.context.hypernet_hidden=[8]", "--model.method=dma_star"],
        "lit-dmash: error: invalid context.hypernet_hidden=[8]: does nothing for method 'dma_star', which has no "
        "adapter or hypernetwork",
    ),
    (
        ["--model.context.kl_weight=0.1", "--model.method=dma"],
        "lit-dmash: error: invalid context.kl_weight=0.1: does nothing for method 'dma' with encoder 'lstm': "
        "only the Gaussian plstm has a KL term",
    ),
    (
        ["--model.context.adapter_rank=3", "--model.context.adapter=full"],
        "lit-dmash: error: invalid context.adapter_rank=3: does nothing with context.adapter='full'",
    ),
]


@pytest.mark.parametrize(("args", "line"), BAD_INPUT, ids=[a[0].split("=")[0] for a, _ in BAD_INPUT])
def test_bad_input_gives_one_line_naming_the_field(args, line, tmp_path, capsys):
    last = _cli_error(tmp_path, capsys, *args).splitlines()[-1]  # Lightning may log "Seed set to 0" first
    assert last.startswith(line), last


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--trainer.callbacks.init_args.episodes=0"], "episodes"),
        (["--checkpoint.every_minutes=-1"], "checkpoint.every_minutes"),
        (["--trainer.devices=0"], "devices"),
        (["--trainer.strategy=nonsense"], "strategy"),
    ],
)
def test_bad_trainer_or_callback_input_is_refused_by_name(args, field, tmp_path, capsys):
    # jsonargparse's and Lightning's own messages: several lines, but they name the key
    assert field in _cli_error(tmp_path, capsys, *args)


@pytest.mark.parametrize("method", ["dr", "concat", "da", "dma_pearl", "dmash"])
def test_a_seed_trained_in_a_batch_is_the_seed_trained_alone(method, tmp_path):
    """Envs, replay, random streams and parameters per seed: seed 7 of [3, 7] equals a run of seed 7 alone
    to float rounding. Not bit for bit: the math library may take another kernel for a batch of two
    than for one (on an AMD EPYC CPU, `bmm`'s weight gradient with 5 input features differs by one
    rounding step, and `dma_pearl` by 3e-8 after 6 updates). A seed reading another seed's data,
    envs or random numbers differs by orders of magnitude more than this tolerance."""
    runs = {}
    for seeds in ([7], [3, 7]):
        module = tiny_module(method, seeds=seeds, total_steps=6)
        quiet_trainer(tmp_path / str(len(seeds))).fit(module)
        runs[len(seeds)] = module.agent.state_dict()
    for (name, alone), batched in zip(runs[1].items(), runs[2].values(), strict=True):
        if batched.dim() and batched.shape[0] == 2 and name != "rng.keys":
            torch.testing.assert_close(batched[1], alone[0], **FLOAT_ROUNDING, msg=name)
