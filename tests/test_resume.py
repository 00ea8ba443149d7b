"""Runs that survive: exact resume, SIGTERM, corrupt or mismatched checkpoints, NaN guard, memory."""

import os
import signal
import subprocess
import time

import lightning as L
import pytest
import torch
from conftest import REPO, cli_command, run_cli
from torchrl.envs import Transform

from callbacks import RunCheckpoint
from lit_dmash.checkpointing import AtomicCheckpointIO
from lit_dmash.config import CollectorConfig, ContextConfig, EnvConfig, SACConfig
from lit_dmash.errors import ConfigError
from lit_dmash.memory import check_buffer_fits
from lit_dmash.module import ContextualSAC, NonFiniteError


def tiny(total_frames: int, method: str = "dmash", **kwargs) -> ContextualSAC:
    return ContextualSAC(
        method=method,
        env=EnvConfig(num_envs=2),
        collector=CollectorConfig(frames_per_batch=16, total_frames=total_frames, init_random_frames=64),
        sac=SACConfig(hidden_dims=[16, 16], batch_size=16),
        context=ContextConfig(history_len=4, encoder_hidden=[16], hypernet_hidden=[16]),
        **kwargs,
    )


class LossRecorder(L.Callback):
    def __init__(self):
        self.losses = {}

    def on_train_batch_end(self, trainer, pl_module, *args):
        if pl_module.last_losses:
            self.losses[pl_module.updates] = dict(pl_module.last_losses)


def fit(module, root, ckpt_path=None, extra=()):
    recorder = LossRecorder()
    trainer = L.Trainer(
        max_epochs=-1,
        default_root_dir=root,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
        callbacks=[RunCheckpoint(), recorder, *extra],
    )
    trainer.fit(module, ckpt_path=ckpt_path)
    return trainer, recorder


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    _, straight = fit(tiny(320), tmp_path / "straight")
    first, _ = fit(tiny(192), tmp_path / "first")
    ckpt = tmp_path / "first" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    resumed_module = tiny(320)
    trainer, resumed = fit(resumed_module, tmp_path / "resumed", ckpt_path=ckpt)

    saved = torch.load(ckpt, weights_only=False)
    assert saved["global_step"] == first.global_step
    storage = saved["lit_dmash"]["replay_buffer"]["_storage"]
    assert storage["_len"] == 192
    # Only the filled rows are saved, not the preallocated capacity (padded back on resume).
    assert {tensor.shape[0] for tensor in storage["_storage"].values()} == {192}
    assert resumed_module.replay_buffer.storage.max_size > 192
    next_update = min(resumed.losses)
    assert next_update == first.global_step + 1, "resumed at the same update count"
    for key, value in resumed.losses[next_update].items():
        assert value == pytest.approx(straight.losses[next_update][key], abs=1e-6), key
    assert resumed_module.env_frames == 320 and trainer.global_step == max(straight.losses)
    assert len(resumed_module.replay_buffer) == 320


def test_sigterm_saves_a_checkpoint_and_the_run_resumes(tmp_path):
    args = [
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
        "--model.env.num_envs=4",
        "--model.collector.frames_per_batch=32",
        "--model.collector.init_random_frames=128",
        "--model.sac.hidden_dims=[16,16]",
        "--model.sac.batch_size=32",
        "--trainer.callbacks.every_n_frames=256",
        "--trainer.callbacks.episodes=2",
    ]
    cmd = cli_command(*args, "--model.collector.total_frames=10000000")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "lightning_logs" / "version_0"
    deadline = time.monotonic() + 120
    while not (run / "eval.json").exists() and time.monotonic() < deadline:  # training is under way
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    frames, step = saved["lit_dmash"]["env_frames"], saved["global_step"]
    assert frames >= 256 and step > 0

    resumed = run_cli(*args, f"--model.collector.total_frames={frames + 128}", "--ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert after["lit_dmash"]["env_frames"] == frames + 128 and after["global_step"] > step
    assert not (tmp_path / "lightning_logs" / "version_1").exists(), "resumed in the same run folder"


def test_ctrl_c_saves_a_checkpoint(tmp_path):
    cmd = cli_command(
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
        "--model.collector.total_frames=10000000",
        "--trainer.callbacks.every_n_frames=256",
    )
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "lightning_logs" / "version_0"
    deadline = time.monotonic() + 120
    while not (run / "eval.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "checkpoint (KeyboardInterrupt) saved" in err
    checkpoint = run / "checkpoints" / "last.ckpt"
    assert torch.load(checkpoint, weights_only=False)["lit_dmash"]["env_frames"] >= 256
    assert checkpoint.stat().st_mode & 0o044, "readable like any file the user writes (umask), not 0600"


def test_corrupt_truncated_and_mismatched_checkpoints_fail_clearly(tmp_path):
    fit(tiny(96, method="dr"), tmp_path)
    good = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    garbage, truncated = tmp_path / "garbage.ckpt", tmp_path / "truncated.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for path in (garbage, truncated):
        proc = run_cli(f"--trainer.default_root_dir={tmp_path / 'x'}", f"--ckpt_path={path}", timeout=120)
        assert proc.returncode == 2 and "corrupt or truncated" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli(f"--trainer.default_root_dir={tmp_path / 'y'}", "--model.method=dmash", f"--ckpt_path={good}")
    assert proc.returncode == 2 and "method='dr'" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli(f"--trainer.default_root_dir={tmp_path / 'z'}", "--model.method=dr", f"--ckpt_path={good}")
    assert proc.returncode == 2 and "sac.hidden_dims" in proc.stderr


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


class NaNRewardAfter(Transform):
    """Real transform that corrupts the reward stream after `steps` env steps."""

    def __init__(self, steps: int):
        super().__init__(in_keys=[], out_keys=[])
        self.steps, self.count = steps, 0

    def _step(self, tensordict, next_tensordict):
        self.count += 1
        if self.count > self.steps:
            next_tensordict.set("reward", torch.full_like(next_tensordict["reward"], float("nan")))
        return next_tensordict


class PoisonedSAC(ContextualSAC):
    def make_env(self, split, num_envs, seed):
        env = super().make_env(split, num_envs, seed)
        if split == self.env_cfg.split and num_envs == self.env_cfg.num_envs:  # the training env only
            env.insert_transform(0, NaNRewardAfter(steps=100))
        return env


def test_nan_in_the_reward_stream_stops_with_the_last_good_state(tmp_path):
    module = PoisonedSAC(**_poisoned_args())
    with pytest.raises(NonFiniteError, match=r"non-finite observation or reward .* env frame 192"):
        fit(module, tmp_path)
    saved = torch.load(tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=False)
    assert saved["lit_dmash"]["env_frames"] == 192
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point())
    assert "carrier" not in saved["lit_dmash"], "the poisoned episodes are not saved for resuming"


def test_nan_skip_mode_drops_bad_batches_and_counts_them(tmp_path):
    module = PoisonedSAC(**_poisoned_args(), on_nonfinite="skip")
    fit(module, tmp_path)
    assert module.nonfinite_skipped > 0
    stored = module.replay_buffer[: len(module.replay_buffer)]
    assert torch.isfinite(stored["next", "reward"]).all()


def _poisoned_args():
    return dict(
        method="dr",
        env=EnvConfig(num_envs=2),
        collector=CollectorConfig(frames_per_batch=32, total_frames=320, init_random_frames=64),
        sac=SACConfig(hidden_dims=[16], batch_size=16),
    )


def test_buffer_that_does_not_fit_is_refused_before_allocation():
    check_buffer_fits(1000, 100, available=10**6)
    with pytest.raises(ConfigError, match=r"collector\.buffer_size") as err:
        check_buffer_fits(10**6, 746, available=10**8)
    assert "746 bytes per transition" in str(err.value)
    assert os.environ.get("RL_WARNINGS") == "0"
