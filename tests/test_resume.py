"""Runs that survive: exact resume for every arm (MuJoCo included), SIGTERM, Ctrl-C, SIGKILL at any
moment, unsafe / corrupt / mismatched checkpoints, the NaN guard, memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import REPO, TINY_CLI, cli_command, nan_after, quiet_trainer, run_cli, tiny_module
from torchrl.envs import TransformedEnv

from callbacks import RunCheckpoint
from lit_dmash.agent.update import NonFiniteError
from lit_dmash.checkpointing import AtomicCheckpointIO, CheckpointError, load_safely
from lit_dmash.errors import ConfigError
from lit_dmash.experience.rollout import SeedEnvs
from lit_dmash.memory import check_buffer_fits
from lit_dmash.methods import METHODS
from lit_dmash.module import ContextualSAC


class MetricsRecorder(L.Callback):
    def __init__(self):
        self.metrics: dict[int, dict[str, float]] = {}

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.metrics[pl_module.updates] = {k: float(v) for k, v in pl_module.last_metrics.items()}


def fit(module, root, ckpt_path=None, extra=()):
    recorder = MetricsRecorder()
    trainer = quiet_trainer(root, plugins=[AtomicCheckpointIO()], callbacks=[RunCheckpoint(), recorder, *extra])
    trainer.fit(module, ckpt_path=ckpt_path)
    return trainer, recorder


def _assert_same_state(a, b, where: str = "") -> None:
    """Recursive exact equality of tensors, dicts, lists and plain values."""
    if torch.is_tensor(a):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


# Every arm on DI; DMA*-SH on one task of each MuJoCo family: dm_control (cheetah) and gymnasium (hopper_gym).
RESUME_CASES = [(m, "di") for m in sorted(METHODS)] + [("dmash", "cheetah"), ("dmash", "hopper_gym")]


@pytest.mark.integration
@pytest.mark.parametrize(("method", "task"), RESUME_CASES)
def test_resume_continues_exactly_like_an_uninterrupted_run(method, task, tmp_path):
    # 14 updates after the resume at 3 on MuJoCo: episodes begun after the resume complete and are
    # learnt from, so the restored simulators (physics, reset streams) must be exact too.
    total = 8 if task == "di" else 17
    straight_module = tiny_module(method, task=task, total_steps=total)
    _, straight = fit(straight_module, tmp_path / "straight")
    fit(tiny_module(method, task=task, total_steps=3), tmp_path / "first")
    ckpt = tmp_path / "first" / "checkpoints" / "last.ckpt"
    resumed_module = tiny_module(method, task=task, total_steps=total)
    trainer, resumed = fit(resumed_module, tmp_path / "resumed", ckpt_path=ckpt)

    assert min(resumed.metrics) == 5, "the first update after the resume is update 5 (t = 4)"
    assert max(resumed.metrics) == total + 1
    for update, metrics in resumed.metrics.items():  # every update after the resume, not just the first
        assert metrics == straight.metrics[update], update
    _assert_same_state(resumed_module.agent.state_dict(), straight_module.agent.state_dict())
    for mine, theirs in zip(trainer.optimizers, straight_module.trainer.optimizers, strict=True):
        _assert_same_state(mine.state_dict()["state"], theirs.state_dict()["state"])
    assert resumed_module.env_frames == straight_module.env_frames
    ends = [load_safely(tmp_path / run / "checkpoints" / "last.ckpt")["lit_dmash"] for run in ("straight", "resumed")]
    _assert_same_state(ends[1]["collector"], ends[0]["collector"], "collector")  # envs, window, replay, streams


@pytest.mark.integration
def test_a_seed_batched_run_resumes_exactly(tmp_path):
    _, straight = fit(tiny_module("dmash", seeds=[0, 1], total_steps=8), tmp_path / "straight")
    fit(tiny_module("dmash", seeds=[0, 1], total_steps=3), tmp_path / "first")
    _, resumed = fit(
        tiny_module("dmash", seeds=[0, 1], total_steps=8),
        tmp_path / "r",
        ckpt_path=tmp_path / "first/checkpoints/last.ckpt",
    )
    assert all(resumed.metrics[u] == straight.metrics[u] for u in resumed.metrics)


@pytest.mark.integration
def test_resume_under_a_changed_protocol_is_refused_unless_asked_for(tmp_path):
    fit(tiny_module("dmash", total_steps=3), tmp_path / "first")
    ckpt = tmp_path / "first" / "checkpoints" / "last.ckpt"
    changes = {"sac": {"gamma": 0.9, "bootstrap_timeouts": True}, "env": {"contexts_per_split": 4}}
    with pytest.raises(CheckpointError) as refused:
        fit(tiny_module("dmash", total_steps=8, **changes), tmp_path / "refused", ckpt_path=ckpt)
    assert str(refused.value).startswith(
        "resuming under a changed protocol (env.contexts_per_split 2 -> 4, sac.gamma 0.99 -> 0.9, "
        "sac.bootstrap_timeouts False -> True); "
    )
    assert str(refused.value).endswith("or pass --model.allow_protocol_change=true if the change is meant")
    with pytest.raises(CheckpointError, match=r"context\.lr_encoder 0\.0003 -> 0\.001\)"):
        fit(tiny_module("dmash", total_steps=8, context={"lr_encoder": 1e-3}), tmp_path / "lr", ckpt_path=ckpt)
    with pytest.raises(CheckpointError, match=r"it has env\.num_envs=2, this run has 4 \(the replay"):
        module = tiny_module("dmash", total_steps=8, env={"num_envs": 4}, allow_protocol_change=True)
        fit(module, tmp_path / "envs", ckpt_path=ckpt)

    module = tiny_module("dmash", total_steps=8, allow_protocol_change=True, **changes)
    _, resumed = fit(module, tmp_path / "allowed", ckpt_path=ckpt)
    assert min(resumed.metrics) == 5 and module.updates == 9 and module.sac_cfg.gamma == 0.9


@pytest.mark.integration
def test_the_cli_names_the_changed_protocol_fields_and_the_flag_in_one_line(tmp_path, capsys):
    from lit_dmash.cli import main

    run = ["fit", "-c", "conf/quickstart_di.yaml", *TINY_CLI, f"--trainer.default_root_dir={tmp_path}"]
    main([*run, "--model.method=dr"])
    resume = [*run, "--model.method=dr", "--model.sac.lr_actor=0.001", "--model.protocol.total_steps=12"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main([*resume, "--ckpt_path=last"])
    err = capsys.readouterr().err
    assert refused.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "lit-dmash: error: resuming under a changed protocol (sac.lr_actor 0.0003 -> 0.001); the checkpoint's "
        "run would continue under other settings than it started with. Resume with the checkpoint's values, "
        "start a new run, or pass --model.allow_protocol_change=true if the change is meant"
    )
    main([*resume, "--ckpt_path=last", "--model.allow_protocol_change=true"])
    saved = load_safely(tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt")
    assert saved["lit_dmash"]["updates"] == 13 and saved["hyper_parameters"]["sac"]["lr_actor"] == 0.001


@pytest.mark.integration
def test_an_evaluation_period_changed_on_resume_counts_from_the_last_evaluation(tmp_path):
    """Evaluating every 8 updates to 11, then resuming to 21 every 4: due at 13, 17 and 21 (the old
    schedule, restored as it was saved, would wait for 17)."""
    import json

    from lit_dmash.cli import main

    run = ["fit", "-c", "conf/quickstart_di.yaml", *TINY_CLI, f"--trainer.default_root_dir={tmp_path}"]
    main([*run, "--model.method=dr"])  # TINY_CLI: every 8 updates, 11 in all
    more = ["--model.protocol.total_steps=20", "--trainer.callbacks.init_args.every_n_updates=4"]
    main([*run, "--model.method=dr", *more, "--ckpt_path=last"])
    evaluations = json.loads((tmp_path / "seed0" / "eval.json").read_text())["evaluations"]
    assert [e["updates"] for e in evaluations] == [1, 9, 11, 13, 17, 21]


def _tiny_cli(tmp_path: Path, *extra: str) -> list[str]:
    return [*TINY_CLI, f"--trainer.default_root_dir={tmp_path}", *extra]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.integration
def test_sigterm_saves_a_checkpoint_and_the_run_resumes(tmp_path):
    args = _tiny_cli(tmp_path, "--model.protocol.total_steps=100000")
    proc = subprocess.Popen(cli_command(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(tmp_path / "seed0" / "eval.json", proc)  # training is under way
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    run = tmp_path / "lightning_logs" / "version_0"
    saved = load_safely(run / "checkpoints" / "last.ckpt")
    updates = saved["lit_dmash"]["updates"]
    assert updates >= 1

    resumed = run_cli(*_tiny_cli(tmp_path, f"--model.protocol.total_steps={updates + 4}", "--ckpt_path=last"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = load_safely(run / "checkpoints" / "last.ckpt")
    assert after["lit_dmash"]["updates"] == updates + 5
    assert not (tmp_path / "lightning_logs" / "version_1").exists(), "resumed in the same run folder"


@pytest.mark.integration
def test_ctrl_c_saves_a_checkpoint(tmp_path):
    args = _tiny_cli(tmp_path, "--model.protocol.total_steps=100000")
    proc = subprocess.Popen(cli_command(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(tmp_path / "seed0" / "eval.json", proc)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        # Rare under a fully loaded suite (1 full-suite run in 3 here; 0 of 9 runs alone): the first
        # Ctrl-C is lost before the guard sees it. A user presses again; the save must still happen.
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "checkpoint (KeyboardInterrupt) saved" in err
    checkpoint = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert load_safely(checkpoint)["lit_dmash"]["updates"] >= 1
    assert checkpoint.stat().st_mode & 0o044, "readable like any file the user writes (umask), not 0600"


@pytest.mark.integration
def test_sigkill_at_any_moment_resumes_from_the_newest_complete_checkpoint(tmp_path):
    """Kill -9 mid-checkpoint-write (a temp file beside last.ckpt exists) and mid-update, then resume."""
    # Four seeds of 256-wide networks make a ~60 MB checkpoint: a write long enough to land a kill in.
    big = ["--model.seeds=4", "--model.sac.hidden_dims=[256,256]", "--model.context.hypernet_hidden=[64,64]"]
    args = _tiny_cli(tmp_path, "--model.protocol.total_steps=100000", "--checkpoint.every_n_frames=40", *big)
    ckpt_dir = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    last = ckpt_dir / "last.ckpt"

    def mtime() -> float:
        return last.stat().st_mtime if last.exists() else 0.0

    def updates() -> int:
        return load_safely(last)["lit_dmash"]["updates"] if last.exists() else -1

    def temp_files() -> set[str]:
        return {p.name for p in os.scandir(ckpt_dir) if p.name.endswith(".tmp")} if ckpt_dir.is_dir() else set()

    killed_mid_write = 0
    for attempt in range(4):
        mid_write = attempt % 2 == 0
        earlier = temp_files()  # left by earlier kills: a kill now only counts with a temp file of its own
        proc = subprocess.Popen(
            cli_command(*args, *(["--ckpt_path=last"] if attempt else [])),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        before, written, deadline = updates(), mtime(), time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            if mtime() > written and mid_write:  # a complete new checkpoint exists: kill during the next write
                if temp_files() - earlier:
                    break
                time.sleep(0.0005)
            elif mtime() > written:
                time.sleep(0.3)  # somewhere in the middle of the next updates
                break
            else:
                time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        killed_mid_write += mid_write and bool(temp_files() - earlier)
        assert updates() >= max(before, 0)  # last.ckpt is never unreadable, whenever the kill came
    assert killed_mid_write >= 1, "no kill landed while a checkpoint was being written"
    final = run_cli(*_tiny_cli(tmp_path, f"--model.protocol.total_steps={updates() + 3}", "--ckpt_path=last", *big))
    assert final.returncode == 0, final.stderr[-2000:]
    assert last.exists() and not temp_files(), "the temp files the kills left are removed"


KILLED_WRITE = """
import os, signal, sys
from lit_dmash.io import atomic_open

with atomic_open(sys.argv[1], "wb") as f:
    f.write(os.urandom(4096))
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed_write(path: Path) -> Path:
    """A real temp file left beside `path` by a process killed while it wrote `path`."""
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(path)], cwd=REPO, capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    (tmp,) = path.parent.glob(f".{path.name}.*.tmp")
    return tmp


class SeesTempFiles(L.Callback):
    def on_train_start(self, trainer, pl_module):
        self.at_start = sorted(p.name for p in (Path(trainer.default_root_dir) / "checkpoints").glob("*.tmp"))


@pytest.mark.integration
def test_temp_files_of_killed_saves_are_removed_on_start_and_after_a_save(tmp_path):
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    _killed_write(last)
    other = tmp_path / "checkpoints" / ".other.ckpt.abc.tmp"  # not last.ckpt's: left alone
    other.write_bytes(b"")
    seen = SeesTempFiles()
    fit(tiny_module("dr", total_steps=1), tmp_path, extra=[seen])
    assert seen.at_start == [other.name], "removed when the run starts, before any save"
    assert sorted(p.name for p in last.parent.iterdir()) == [other.name, "last.ckpt"]

    stale = _killed_write(last)
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}}, last)
    assert not stale.exists() and other.exists(), "removed after a successful save"


class Payload:
    """Unpickling this creates a file: what a malicious checkpoint would do with `os.system`."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


class ShellPayload(Payload):
    """The same through `os.system` itself (torch blocks its module outright, with another message)."""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.integration
@pytest.mark.parametrize(("payload", "what"), [(Payload, "GLOBAL getattr"), (ShellPayload, "GLOBAL posix.system")])
def test_a_checkpoint_that_would_run_code_is_refused_and_the_payload_never_runs(tmp_path, payload, what):
    fit(tiny_module("dr"), tmp_path)
    good = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(good, weights_only=True)
    marker = tmp_path / "pwned"
    checkpoint["extra"] = payload(str(marker))
    evil = tmp_path / "evil.ckpt"
    torch.save(checkpoint, evil)
    proc = run_cli(f"--trainer.default_root_dir={tmp_path / 'x'}", "--model.method=dr", f"--ckpt_path={evil}")
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"lit-dmash: error: checkpoint {evil} refused: it holds pickled Python objects (")
    assert what in last and "weights-only loading refuses because unpickling them can run code" in last
    assert last.endswith(f"python -m lit_dmash convert-checkpoint {evil} NEW.ckpt --trust")
    assert "Traceback" not in proc.stderr and "corrupt" not in last
    assert not marker.exists(), "the payload ran"
    with pytest.raises(CheckpointError):
        load_safely(evil)
    assert not marker.exists()


@pytest.mark.integration
def test_convert_checkpoint_needs_trust_and_produces_a_safe_file(tmp_path):
    import numpy as np

    old = tmp_path / "old.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "rng": np.random.get_state()}, old)  # numpy: not weights-only
    with pytest.raises(CheckpointError, match="refused: it holds pickled Python objects"):
        load_safely(old)
    new = tmp_path / "new.ckpt"
    cmd = [sys.executable, "-m", "lit_dmash", "convert-checkpoint", str(old), str(new)]
    refused = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert refused.returncode == 2 and "--trust" in refused.stderr and not new.exists()
    done = subprocess.run([*cmd, "--trust"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert torch.equal(load_safely(new)["state_dict"]["w"], torch.ones(2))


@pytest.mark.integration
def test_a_converted_checkpoint_resumes_exactly(tmp_path):
    """A run's checkpoint with pickled objects added (numpy arrays, a random state), converted, resumes."""
    import numpy as np

    _, straight = fit(tiny_module("dmash", total_steps=8), tmp_path / "straight")
    fit(tiny_module("dmash", total_steps=3), tmp_path / "first")
    checkpoint = torch.load(tmp_path / "first" / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["lit_dmash"]["notes"] = {"rng": np.random.RandomState(0).get_state(), "mean": np.zeros(3)}
    old, new = tmp_path / "pickled.ckpt", tmp_path / "converted.ckpt"
    torch.save(checkpoint, old)
    with pytest.raises(CheckpointError, match="holds pickled Python objects"):
        fit(tiny_module("dmash", total_steps=8), tmp_path / "refused", ckpt_path=old)
    convert = [sys.executable, "-m", "lit_dmash", "convert-checkpoint", str(old), str(new), "--trust"]
    assert subprocess.run(convert, cwd=REPO, capture_output=True).returncode == 0
    _, resumed = fit(tiny_module("dmash", total_steps=8), tmp_path / "resumed", ckpt_path=new)
    assert min(resumed.metrics) == 5 and all(resumed.metrics[u] == straight.metrics[u] for u in resumed.metrics)


@pytest.mark.integration
def test_a_checkpoint_of_the_old_format_is_refused_saying_so(tmp_path):
    fit(tiny_module("dr"), tmp_path)
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["lit_dmash"]["architecture"]["format"] = 1
    old = tmp_path / "format1.ckpt"
    torch.save(checkpoint, old)
    with pytest.raises(CheckpointError) as refused:
        fit(tiny_module("dr"), tmp_path / "r", ckpt_path=old)
    assert str(refused.value).startswith("checkpoint format 1 is not this version's 2: it was written by an older")
    assert str(refused.value).endswith("; start a new run")


@pytest.mark.integration
def test_corrupt_truncated_and_mismatched_checkpoints_fail_in_one_line(tmp_path):
    fit(tiny_module("dr"), tmp_path)
    good = tmp_path / "checkpoints" / "last.ckpt"
    garbage, truncated = tmp_path / "garbage.ckpt", tmp_path / "truncated.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for path in (garbage, truncated):
        proc = run_cli(f"--trainer.default_root_dir={tmp_path / 'x'}", f"--ckpt_path={path}")
        last = proc.stderr.strip().splitlines()[-1]
        assert proc.returncode == 2 and last.startswith(f"lit-dmash: error: checkpoint {path} is corrupt or truncated")
        assert "Traceback" not in proc.stderr
    cases = [
        (["--model.method=dmash"], "it has method='dr', this run has 'dmash'"),
        (["--model.method=dr", "--model.env.name=ode"], "it has env.name='di', this run has 'ode'"),
        (["--model.method=dr", "--model.env.name=di", "--model.sac.hidden_dims=[32,32]"], "sac.hidden_dims"),
    ]
    for args, expected in cases:
        proc = run_cli(f"--trainer.default_root_dir={tmp_path / 'y'}", *args, f"--ckpt_path={good}")
        assert proc.returncode == 2 and expected in proc.stderr.strip().splitlines()[-1], proc.stderr[-1500:]
        assert "Traceback" not in proc.stderr


def test_atomic_save_leaves_the_old_checkpoint_intact_when_saving_fails(tmp_path):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full, say")

    with pytest.raises(RuntimeError):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(2)}, "bad": Unpicklable()}, path)
    assert torch.equal(io.load_checkpoint(path)["state_dict"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"], "no temp file left behind"


class PoisonedSAC(ContextualSAC):
    def make_envs(self, split, num_envs=None, seed_offset=0):
        envs = super().make_envs(split, num_envs, seed_offset)
        if split == "train" and num_envs is None:  # the training envs only
            return SeedEnvs([TransformedEnv(env, nan_after("reward", steps=20)) for env in envs.envs])
        return envs


def _poisoned(**kwargs) -> PoisonedSAC:
    template = tiny_module("dr", total_steps=20)
    return PoisonedSAC(
        method="dr",
        env=template.env_cfg,
        protocol=template.protocol,
        sac=template.sac_cfg,
        context=template.context_cfg,
        **kwargs,
    )


@pytest.mark.integration
def test_nan_in_the_reward_stream_stops_with_the_last_good_state(tmp_path):
    with pytest.raises(NonFiniteError, match=r"non-finite observation or reward at vector step \d+") as error:
        fit(_poisoned(), tmp_path)
    step = int(str(error.value).split("vector step ")[1].split(",")[0])
    saved = load_safely(tmp_path / "checkpoints" / "last.ckpt")
    assert saved["lit_dmash"]["collector"]["vector_steps"] == step, "the bad step is neither stored nor counted"
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point())
    assert saved["lit_dmash"]["collector"]["envs"] == [None], "the poisoned episodes are not saved for resuming"


@pytest.mark.integration
def test_nan_skip_mode_drops_bad_steps_and_counts_them(tmp_path):
    module = _poisoned(on_nonfinite="skip")
    fit(module, tmp_path)
    assert module.nonfinite_skipped > 0
    assert torch.isfinite(module.agent.log_alpha).all()


class BreakSimulation(L.Callback):
    """Makes one training simulator diverge before vector step `at` (dm_control then raises PhysicsError);
    keeps the replay as it is right after that step."""

    def __init__(self, at: int, sub_env: int = 1):
        self.at, self.sub_env, self.replay_after = at, sub_env, None

    def on_train_batch_start(self, trainer, pl_module, *args):
        if pl_module.collector.vector_steps == self.at:
            pl_module.collector.envs.envs[0].simulators[self.sub_env].data.qvel[:] = float("nan")

    def on_train_batch_end(self, trainer, pl_module, *args):
        if self.replay_after is None and pl_module.collector.vector_steps > self.at:
            self.replay_after = pl_module.collector.replay.state_dict()


def _made_up_transitions(replay: dict, sub_env: int, window: int) -> int:
    """Stored transitions that look like the old fallback: reward exactly 0 and next_obs equal to obs."""
    data, stored = replay["data"], 0
    for slot, length in zip(replay["slots"].tolist(), replay["lengths"].tolist(), strict=False):
        rows = slice(window, window + length)
        same = (data["next_obs"][0, sub_env, slot, rows] == data["obs"][0, sub_env, slot, rows]).all(-1)
        stored += int((same & (data["reward"][0, sub_env, slot, rows] == 0)).sum())
    return stored


@pytest.mark.integration
def test_a_physics_failure_stops_naming_task_context_and_step(tmp_path):
    module = tiny_module("dr", task="cheetah", total_steps=20)
    with pytest.raises(NonFiniteError) as error:
        fit(module, tmp_path, extra=[BreakSimulation(at=15)])
    message = str(error.value)
    context = "(context length=1.2, action_factor=1)"
    assert message.startswith(f"simulation failed in task cheetah, sub-env 1 {context}, episode step 4: ")
    assert "PhysicsError" in message and "(seed 0, vector step 15), update 3, env frame 30" in message
    assert "model.on_nonfinite=skip" in message and "\n" not in message
    saved = load_safely(tmp_path / "checkpoints" / "last.ckpt")
    assert saved["lit_dmash"]["collector"]["vector_steps"] == 15, "the failed step is neither stored nor counted"
    assert saved["lit_dmash"]["collector"]["envs"] == [None], "the failed episodes are not saved for resuming"


@pytest.mark.integration
def test_a_physics_failure_with_skip_drops_the_step_counts_and_logs_it(tmp_path):
    module = tiny_module("dr", task="cheetah", total_steps=8, on_nonfinite="skip")
    broken = BreakSimulation(at=15)
    trainer, _ = fit(module, tmp_path, extra=[broken])
    assert module.sim_failures == 1 and module.nonfinite_skipped == 0
    assert trainer.callback_metrics["train/sim_failures"].item() == 1 and trainer.state.finished
    replay = broken.replay_after
    # Capacity 2: the episode of steps 12.. (slot 0) ends with steps 12-14, before the failed step 15.
    assert replay["lengths"].tolist() == [3, 6] and replay["current"] == 1
    assert _made_up_transitions(replay, sub_env=1, window=3) == 0, "a made-up transition reached the replay"


def test_replay_that_does_not_fit_is_refused_before_allocation():
    check_buffer_fits(1000, available=10**6)
    with pytest.raises(ConfigError, match=r"protocol\.buffer_size"):
        check_buffer_fits(10**9, available=10**8)
    assert os.environ.get("RL_WARNINGS") == "0"


@pytest.mark.integration
def test_mujoco_checkpoints_load_weights_only(tmp_path):
    """Simulator states, task random states and replay rows are tensors and plain values."""
    fit(tiny_module("dmash", task="cheetah"), tmp_path)
    saved = load_safely(tmp_path / "checkpoints" / "last.ckpt")
    assert saved["lit_dmash"]["collector"]["envs"][0] is not None
