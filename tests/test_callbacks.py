"""Callbacks on tiny real runs: the paper's diagnostics, policy-gradient variance, dynamics probe,
masking schedule, loggers other than TensorBoard, and DDP across two processes."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TINY_CLI, quiet_trainer, run_cli, tiny_module
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks import ContextDiagnostics, DynamicsProbe, MaskingSchedule, PolicyGradientVariance, ZeroShotEvaluation
from lit_dmash.errors import ConfigError

pytestmark = pytest.mark.integration  # callbacks on real Trainer fits, DDP across two processes


def _fit(module, root, callbacks, logger=None):
    trainer = quiet_trainer(
        root,
        log_every_n_steps=1,
        logger=logger if logger is not None else TensorBoardLogger(root),
        callbacks=callbacks,
    )
    trainer.fit(module)
    return trainer


@pytest.fixture(scope="module")
def diagnosed_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("diagnosed")
    callbacks = [
        ContextDiagnostics(every_n_updates=4, samples=4),
        PolicyGradientVariance(every_n_updates=4, num_minibatches=2),
        DynamicsProbe(every_n_frames=40),
    ]
    module = tiny_module("dmash", total_steps=8)
    trainer = _fit(module, root, callbacks)
    events = EventAccumulator(str(trainer.log_dir))
    events.Reload()
    return module, callbacks, events


def test_context_diagnostics_log_the_papers_quantities(diagnosed_run):
    _, callbacks, events = diagnosed_run
    history = callbacks[0].history
    assert [entry["updates"] for entry in history] == [1, 5, 9]  # t = 0, t = 4 and the end
    last = history[-1]
    for split in ("train", "eval_in", "eval_out"):
        parts = [last[f"diag/{split}/variability/{p}"] for p in ("within_context", "within_mode", "between_mode")]
        assert all(p >= 0 for p in parts)
        assert sum(parts) == pytest.approx(last[f"diag/{split}/variability"], rel=1e-6)
        assert last[f"diag/{split}/informativeness"] >= 0
        assert last[f"diag/{split}/informativeness/action_factor"] >= 0
        assert -1 <= last[f"diag/{split}/cosine"] <= 1
        assert math.isfinite(last[f"diag/{split}/overlap"])  # di has two modes (the sign)
        assert f"diag/{split}/cosine_matrix" in events.Tags()["images"]
    assert last["diag/shadow_grad/actor"] > 0 and last["diag/shadow_grad/critic"] > 0


def test_policy_gradient_variance_logs_the_decomposition(diagnosed_run):
    _, callbacks, events = diagnosed_run
    for entry in callbacks[1].history:
        assert entry["diag/pg_var/total"] > 0
        assert entry["diag/pg_var/within_mode"] >= 0 and entry["diag/pg_var/between_mode"] >= 0
        assert entry["diag/pg_var/ranks"] == 1
    assert events.Scalars("diag/pg_var/between_mode")


def test_dynamics_probe_logs_the_unmasked_dynamics_loss(diagnosed_run):
    module, _, events = diagnosed_run
    probes = events.Scalars("diag/dynamics_probe")
    assert probes[-1].step == module.env_frames
    assert all(math.isfinite(p.value) and p.value > 0 for p in probes)


def test_diagnostics_do_not_change_the_training_run(diagnosed_run, tmp_path):
    diagnosed, _, _ = diagnosed_run
    plain = tiny_module("dmash", total_steps=8)
    _fit(plain, tmp_path, [])
    for (name, a), b in zip(plain.agent.state_dict().items(), diagnosed.agent.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_masking_schedule_moves_p_mask_and_the_module_logs_it(tmp_path):
    module = tiny_module("dmash", total_steps=8)
    schedule = MaskingSchedule("linear", start=0.4, end=0.0, over_frames=40)
    _fit(module, tmp_path, [schedule])
    assert module.spec.p_mask == 0.0 and module.agent.spec.p_mask == 0.0
    assert schedule.value(20, 0.4, 40) == pytest.approx(0.2)
    assert MaskingSchedule("cosine", end=0.0).value(20, 0.4, 40) == pytest.approx(0.2)
    with pytest.raises(ConfigError, match=r"MaskingSchedule\.schedule"):
        MaskingSchedule("step")


def test_every_default_callback_runs_with_a_csv_logger(tmp_path):
    module = tiny_module("dmash", total_steps=4)
    callbacks = [
        ZeroShotEvaluation(every_n_updates=2, episodes=1),
        ContextDiagnostics(every_n_updates=0, samples=2),
        PolicyGradientVariance(every_n_updates=2, num_minibatches=2),
        DynamicsProbe(every_n_frames=0),
    ]
    trainer = _fit(module, tmp_path, callbacks, logger=CSVLogger(tmp_path))
    metrics = (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").read_text()
    for column in ("eval/eval_out/return", "diag/eval_out/informativeness", "diag/pg_var/total", "train/loss_critic"):
        assert column in metrics
    assert trainer.state.finished


def test_two_process_ddp_fit_trains_one_model_and_gathers_from_both_ranks(tmp_path):
    proc = run_cli(
        *TINY_CLI,
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.accelerator=cpu",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.callbacks+=callbacks.PolicyGradientVariance",
        "--trainer.callbacks.every_n_updates=4",
        "--trainer.callbacks.num_minibatches=2",
        "--trainer.callbacks+=tests.rank_probe.RankParameters",
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Each rank collects its own episodes (other start states): only averaged gradients keep the two
    # copies of every parameter equal, bit for bit, after 11 updates.
    (start0, end0), (start1, end1) = (
        [torch.load(tmp_path / f"rank{rank}_{when}.pt") for when in ("start", "end")] for rank in (0, 1)
    )
    assert end0.keys() == end1.keys() and len(end0) > 10
    for name in end0:
        assert torch.equal(start0[name], start1[name]), name
        assert torch.equal(end0[name], end1[name]), name
    assert sum(not torch.equal(start0[name], end0[name]) for name in end0) >= len(end0) // 2, "training moved them"
    (run,) = (tmp_path / "lightning_logs").iterdir()
    events = EventAccumulator(str(run))
    events.Reload()
    assert [e.value for e in events.Scalars("diag/pg_var/ranks")][-1] == 2.0
    across = events.Scalars("diag/pg_var/across_ranks")[-1].value
    assert math.isfinite(across) and across > 0, "the ranks' actor gradients differ: they saw other data"
    assert (tmp_path / "seed0" / "eval.json").exists()
    assert (run / "checkpoints" / "last.ckpt").exists()


def test_the_progress_bar_ends_on_the_final_evaluation(tmp_path):
    """The final evaluation runs at the end of training, after the bar's last step: its last frame
    shows that evaluation's AER (ODE pays a dense reward, so the two evaluations differ)."""
    from callbacks.progress import TrainingProgress

    module = tiny_module("dmash", task="ode", total_steps=6, env={"horizon": 10})
    evaluation, bar = ZeroShotEvaluation(every_n_updates=100, episodes=1), TrainingProgress(refresh_rate=1)
    quiet_trainer(tmp_path, enable_progress_bar=True, callbacks=[evaluation, bar]).fit(module)
    first, last = evaluation.aer_at(0), evaluation.aer_at(-1)
    assert (first["updates"], last["updates"]) == (1, 7)
    shown = lambda aer: ", ".join(f"{split} {value:.1f}" for split, value in aer.items())  # noqa: E731
    assert shown(first["aer"]) != shown(last["aer"]), "a test of the final frame needs two AERs that differ"
    assert f"AER={shown(last['aer'])}" in bar.train_progress_bar.postfix
