"""Callbacks on tiny real runs: masking schedule, variance and representation diagnostics, DDP."""

import itertools
import math

import lightning as L
import pytest
import torch
from conftest import run_cli
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks import DynamicsProbe, MaskingSchedule, RepresentationDiagnostics, VarianceDiagnostics
from lit_dmash.config import CollectorConfig, ContextConfig, EnvConfig, SACConfig
from lit_dmash.diagnostics import decompose_variance, mean_resultant_length, minibatch_variance, mode_ids
from lit_dmash.module import ContextualSAC


@pytest.mark.parametrize(
    ("schedule", "frames", "expected"),
    [
        ("constant", 50, 0.4),
        ("linear", 0, 0.4),
        ("linear", 50, 0.2),
        ("linear", 500, 0.0),
        ("cosine", 0, 0.4),
        ("cosine", 50, 0.2),
        ("cosine", 25, 0.2 + 0.2 * math.cos(math.pi / 4)),
    ],
)
def test_masking_schedule_values(schedule, frames, expected):
    assert MaskingSchedule(schedule, end=0.0).value(frames, start=0.4, over_frames=100) == pytest.approx(expected)


def test_diagnostics_maths_by_hand():
    codes, labels = mode_ids(torch.tensor([[1.0, -1.0, 0.7], [-1.0, -1.0, 0.1], [1.0, 1.0, 2.0]]), 2)
    assert [labels[c] for c in codes.tolist()] == ["+-", "--", "++"]
    assert mean_resultant_length(torch.tensor([[2.0, 0.0], [5.0, 0.0]])) == pytest.approx(1.0)
    assert mean_resultant_length(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(0.0)
    grads = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    assert minibatch_variance(grads) == pytest.approx(1.0)  # deviations +-1 along one axis
    # Mode a: gradients around (0, 0) with variance 1; mode b: constant (4, 0); equal shares.
    within, between = decompose_variance(
        {0: torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), 1: torch.tensor([[4.0, 0.0], [4.0, 0.0]])}, {0: 0.5, 1: 0.5}
    )
    assert within == pytest.approx(0.5 * 1.0 + 0.5 * 0.0)
    assert between == pytest.approx(0.5 * 2.0**2 + 0.5 * 2.0**2)


@pytest.fixture(scope="module")
def diagnosed_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("diag")
    module = ContextualSAC(
        method="dmash",
        env=EnvConfig(num_envs=4),
        collector=CollectorConfig(frames_per_batch=32, total_frames=640, init_random_frames=128),
        sac=SACConfig(hidden_dims=[16, 16], batch_size=32),
        context=ContextConfig(history_len=4, encoder_hidden=[16], hypernet_hidden=[16]),
    )
    callbacks = [
        MaskingSchedule("linear", start=0.4, end=0.0),
        VarianceDiagnostics(every_n_updates=5, num_minibatches=2, minibatch_size=16),
        RepresentationDiagnostics(every_n_frames=320, episodes=4),
        DynamicsProbe(every_n_frames=320, samples=64),
    ]
    p_masks = []
    callbacks.append(_Recorder(lambda m: p_masks.append((m.env_frames, m.p_mask))))
    logger = TensorBoardLogger(root, name="run")
    trainer = L.Trainer(
        max_epochs=-1,
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_checkpointing=False,
        log_every_n_steps=1,
    )
    trainer.fit(module)
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    return module, callbacks, p_masks, events


class _Recorder(L.Callback):
    def __init__(self, fn):
        self.fn = fn

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.fn(pl_module)


def test_masking_schedule_drives_p_mask_and_it_is_logged(diagnosed_run):
    _, _, p_masks, events = diagnosed_run
    values = [p for _, p in p_masks]
    assert values[0] == pytest.approx(0.4), "set before the first collection, at 0 frames"
    assert values[1] == pytest.approx(0.4 * (1 - 32 / 640))
    assert all(a > b for a, b in itertools.pairwise(values)) and values[-1] < 0.05
    assert events.Scalars("train/p_mask")


def test_variance_diagnostics_logs_the_decomposition(diagnosed_run):
    _, callbacks, _, events = diagnosed_run
    history = callbacks[1].history
    assert len(history) >= 2
    for entry in history:
        assert entry["diag/pg_var/total"] > 0
        assert entry["diag/pg_var/within_mode"] >= 0 and entry["diag/pg_var/between_mode"] >= 0
        assert entry["diag/pg_var/ranks"] == 1
    assert events.Scalars("diag/pg_var/between_mode")


def test_representation_diagnostics_logs_concentration_angles_errors_and_figure(diagnosed_run):
    _, callbacks, _, events = diagnosed_run
    last = callbacks[2].history[-1]
    for mode in ("++", "+-", "-+"):
        assert 0.0 <= last[f"diag/repr/train/concentration/{mode}"] <= 1.0 + 1e-6
        assert last[f"diag/dyn/train/mse/{mode}"] >= 0
    assert 0.0 <= last["diag/repr/train/angle_min_deg"] <= 180.0
    assert "diag/repr/eval_pattern/concentration/--" in last
    assert "diag/repr/z_pca" in events.Tags()["images"]
    assert len(callbacks[2].history) == 2  # at 320 frames and at the end


def test_two_process_ddp_fit_gathers_variance_from_both_ranks(tmp_path):
    proc = run_cli(
        "--model.method=dmash",
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.accelerator=cpu",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
        "--model.env.num_envs=4",
        "--model.collector.frames_per_batch=32",
        "--model.collector.total_frames=512",
        "--model.collector.init_random_frames=128",
        "--model.sac.hidden_dims=[16,16]",
        "--model.sac.batch_size=32",
        "--model.sac.utd=2",
        "--model.context.history_len=4",
        "--trainer.callbacks.every_n_frames=0",
        "--trainer.callbacks.episodes=2",
        "--trainer.callbacks+=callbacks.VarianceDiagnostics",
        "--trainer.callbacks.every_n_updates=8",
        "--trainer.callbacks.num_minibatches=2",
        "--trainer.callbacks.minibatch_size=16",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "lightning_logs").iterdir()
    events = EventAccumulator(str(run))
    events.Reload()
    assert [e.value for e in events.Scalars("diag/pg_var/ranks")][-1] == 2.0
    assert events.Scalars("diag/pg_var/across_ranks")[-1].value >= 0
    assert (run / "eval.json").exists()


def test_dynamics_probe_logs_the_unmasked_dynamics_loss(diagnosed_run):
    _, _, _, events = diagnosed_run
    probes = events.Scalars("diag/dynamics_probe")
    assert [p.step for p in probes] == [320, 640]
    assert all(math.isfinite(p.value) and p.value > 0 for p in probes)
