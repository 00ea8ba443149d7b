"""Keep a run resumable: `last.ckpt` every few minutes, at the end, and when the run is stopped."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import FrameType

import lightning as L
from jsonargparse.typing import PositiveFloat
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lit_dmash.module import NonFiniteError


class RunCheckpoint(L.Callback):
    """Writes `<run folder>/checkpoints/<filename>` so that a dead run loses at most `every_minutes`.

    Saved every `every_minutes` of training (checked after each step), at the end of training,
    and when the run is stopped by SIGTERM, Ctrl-C or a `NonFiniteError` (then it holds the last
    good state: the failing update was never applied). The checkpoint holds everything an exact
    resume needs (see `ContextualSAC.on_save_checkpoint`); the CLI writes it atomically and
    resumes it with `fit ... --ckpt_path last`. The CLI adds this callback to every run.

    Args:
        every_minutes: Wall-clock minutes of training between two saves.
        filename: Checkpoint file name in the run's `checkpoints/` folder.
    """

    def __init__(self, every_minutes: PositiveFloat = 10.0, filename: str = "last.ckpt") -> None:
        self.every_minutes, self.filename = every_minutes, filename
        self.path: Path | None = None
        self._last_save = time.monotonic()
        self._interrupted = False
        self._previous_sigint = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # trainer.log_dir broadcasts: resolve it here, on every rank.
        self.path = Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints" / self.filename
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

    def _raise_if_interrupted(self) -> None:
        if self._interrupted:
            raise KeyboardInterrupt("Ctrl-C received while a finalizer ran")

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        self._raise_if_interrupted()

    def save(self, trainer: L.Trainer, why: str) -> None:
        trainer.save_checkpoint(self.path)
        self._last_save = time.monotonic()
        rank_zero_info(f"lit-dmash: checkpoint ({why}) saved to {self.path}")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        self._raise_if_interrupted()  # also here: before a long periodic save or another callback's eval
        if time.monotonic() - self._last_save >= 60 * self.every_minutes:
            self.save(trainer, "periodic")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer, "end of training")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, (KeyboardInterrupt, SIGTERMException, NonFiniteError)) and self.path is not None:
            self.save(trainer, type(exception).__name__)
