"""When a periodic callback is due, by one of our counters (env frames, updates)."""

from __future__ import annotations

import lightning as L


class Periodic:
    """Due each time `count` reaches the next multiple of `every`; never when `every` is 0.

    Catches up in one step if `count` jumps past several multiples (a large collection), and
    keys on our counters rather than Lightning's step, so a resumed run keeps its rhythm.
    """

    def __init__(self, every: int) -> None:
        self.every = every
        self.next = every

    def due(self, count: int) -> bool:
        if not self.every or count < self.next:
            return False
        self.next = (count // self.every + 1) * self.every
        return True


class EveryNFrames(L.Callback):
    """Base of callbacks that `run` every `every_n_frames` env frames and once more at the end.

    The end-of-training run is skipped when the last periodic one happened at the same frame
    count. The schedule is checkpointed (`state_dict`), so a resumed run keeps its rhythm.
    Subclasses implement `run` (decorate it with `rank_zero_only` if only rank 0 should work).
    """

    def __init__(self, every_n_frames: int) -> None:
        self.every_n_frames = every_n_frames
        self._period = Periodic(every_n_frames)
        self._last_run_frames = -1

    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        raise NotImplementedError

    def _run_now(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_run_frames = pl_module.env_frames
        self.run(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if self._period.due(pl_module.env_frames):
            self._run_now(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.env_frames != self._last_run_frames:
            self._run_now(trainer, pl_module)

    def state_dict(self) -> dict:
        return {"next": self._period.next, "last": self._last_run_frames}

    def load_state_dict(self, state: dict) -> None:
        self._period.next, self._last_run_frames = state["next"], state["last"]
