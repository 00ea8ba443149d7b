"""Keep a run resumable: `last.ckpt` every few minutes, at the end, and when the run is stopped."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import FrameType

import lightning as L
from jsonargparse.typing import PositiveFloat, PositiveInt
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lit_dmash.agent.update import NonFiniteError
from lit_dmash.checkpointing import remove_stale_temp_files


class RunCheckpoint(L.Callback):
    """Writes `<run folder>/checkpoints/<filename>` so that a dead run loses at most one interval.

    Saved every `every_minutes` of training and/or every `every_n_frames` env frames (per seed;
    whichever comes first, checked after each step), at the end of training, and when the run is
    stopped by SIGTERM, Ctrl-C or a `NonFiniteError` (then it holds the last good state: the
    failing update was never applied). A SIGKILL (OOM killer, pre-emption) cannot be caught: the
    newest complete checkpoint is then at most one interval old, and never half-written (the CLI
    writes atomically); the temp file such a kill leaves is removed when the next run starts. The
    checkpoint holds everything an exact resume needs (see `ContextualSAC.on_save_checkpoint`);
    resume with `fit ... --ckpt_path last`. The CLI adds this
    callback to every run, configured by `--checkpoint.every_minutes` / `--checkpoint.every_n_frames`
    (or a `checkpoint:` block in the config).

    Args:
        every_minutes: Wall-clock minutes of training between two saves (None: not by time).
        every_n_frames: Env frames (per seed) between two saves (None: not by frames), for cluster jobs
            with short time limits.
        filename: Checkpoint file name in the run's `checkpoints/` folder.
    """

    def __init__(
        self,
        every_minutes: PositiveFloat | None = 10.0,
        every_n_frames: PositiveInt | None = None,
        filename: str = "last.ckpt",
    ) -> None:
        self.every_minutes, self.every_n_frames, self.filename = every_minutes, every_n_frames, filename
        self._next_frames = every_n_frames
        self.path: Path | None = None
        self._last_save = time.monotonic()
        self._interrupted = False
        self._previous_sigint = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # trainer.log_dir broadcasts: resolve it here, on every rank.
        self.path = Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints" / self.filename
        if trainer.is_global_zero:  # the only rank that writes it; nothing writes it yet
            removed = remove_stale_temp_files(self.path)
            if removed:
                rank_zero_info(f"lit-dmash: removed {removed} temp file(s) of {self.path} left by a killed save")
        self._last_save = time.monotonic()
        self._interrupted = False
        self._install_sigint_guard()

    def _install_sigint_guard(self) -> None:
        """Remember every Ctrl-C, so one raised inside a finalizer is not lost.

        Python's default handler raises `KeyboardInterrupt` wherever the interpreter is; inside a
        weakref callback or `__del__` (matplotlib and tensordict run some during garbage
        collection) CPython prints "Exception ignored in ..." and training goes on, so the
        run neither stops nor saves. This handler raises as before and also sets a flag that
        the next training step turns into a `KeyboardInterrupt` from a safe place.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return  # someone else (a user, Lightning's shutdown) owns Ctrl-C: leave it alone

        def on_sigint(signum: int, frame: FrameType | None) -> None:
            self._interrupted = True
            raise KeyboardInterrupt

        self._previous_sigint = signal.signal(signal.SIGINT, on_sigint)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous_sigint is not None and threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # Lightning ignores it while shutting down
                signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.every_n_frames is not None:  # a resumed run continues the rhythm from its frame count
            self._next_frames = (pl_module.env_frames // self.every_n_frames + 1) * self.every_n_frames

    def _raise_if_interrupted(self) -> None:
        if self._interrupted:
            raise KeyboardInterrupt("Ctrl-C received while a finalizer ran")

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        self._raise_if_interrupted()

    def save(self, trainer: L.Trainer, why: str) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # the full state: optimisers, callbacks
        self._last_save = time.monotonic()
        rank_zero_info(f"lit-dmash: checkpoint ({why}) saved to {self.path}")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        self._raise_if_interrupted()  # also here: before a long periodic save or another callback's eval
        if self._due(pl_module.env_frames):
            self.save(trainer, "periodic")

    def _due(self, frames: int) -> bool:
        by_time = self.every_minutes is not None and time.monotonic() - self._last_save >= 60 * self.every_minutes
        by_frames = self._next_frames is not None and frames >= self._next_frames
        if by_frames:
            self._next_frames = (frames // self.every_n_frames + 1) * self.every_n_frames
        return by_time or by_frames

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer, "end of training")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, (KeyboardInterrupt, SIGTERMException, NonFiniteError)) and self.path is not None:
            self.save(trainer, type(exception).__name__)
