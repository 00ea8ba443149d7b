"""When a periodic callback is due, by one of our counters (updates, env frames)."""

from __future__ import annotations

import lightning as L


class Periodic:
    """Due each time `count` reaches the next `k * every + offset` (from `first`); never when `every` is 0.

    Catches up in one step if `count` jumps past several due points, and keys on our counters
    rather than Lightning's step, so a resumed run keeps its rhythm.
    """

    def __init__(self, every: int, first: int | None = None, offset: int = 0) -> None:
        # Plain ints: the CLI passes jsonargparse's int subclasses, which a weights-only load refuses.
        self.every, self.offset = int(every), int(offset)
        self.next = self.every if first is None else int(first)

    def after(self, count: int) -> int:
        """The first due point after `count`."""
        return ((count - self.offset) // self.every + 1) * self.every + self.offset

    def due(self, count: int) -> bool:
        if not self.every or count < self.next:
            return False
        self.next = self.after(count)
        return True


class EveryN(L.Callback):
    """Base of callbacks that `run` every `every` units of a counter and once more at the end.

    `counter(pl_module)` gives the count (subclasses pick updates or env frames). The
    end-of-training run is skipped when the last periodic one happened at the same count. The
    schedule is checkpointed (`state_dict`), so a resumed run keeps its rhythm. Subclasses
    implement `run` (decorate it with `rank_zero_only` if only rank 0 should work).
    """

    def __init__(self, every: int, first: int | None = None, offset: int = 0) -> None:
        self._period = Periodic(every, first, offset)
        self._last_run = -1

    def counter(self, pl_module: L.LightningModule) -> int:
        raise NotImplementedError

    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        raise NotImplementedError

    def _run_now(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_run = self.counter(pl_module)
        self.run(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if self._period.due(self.counter(pl_module)):
            self._run_now(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.counter(pl_module) != self._last_run:
            self._run_now(trainer, pl_module)

    def state_dict(self) -> dict:
        return {"next": self._period.next, "last": self._last_run, "every": self._period.every}

    def load_state_dict(self, state: dict) -> None:
        """Keep the saved rhythm; a period changed on resume (`--ckpt_path last` with another
        `every_n_*`) counts from the last run, so the next one is not left where the old period put it."""
        self._period.next, self._last_run = state["next"], state["last"]
        changed = state.get("every", self._period.every) != self._period.every
        if changed and self._period.every and self._last_run >= 0:
            self._period.next = self._period.after(self._last_run)


class EveryNFrames(EveryN):
    """`EveryN` on env frames per seed (what the x-axis of every logged metric counts)."""

    def __init__(self, every_n_frames: int) -> None:
        super().__init__(every_n_frames)
        self.every_n_frames = every_n_frames

    def counter(self, pl_module: L.LightningModule) -> int:
        return pl_module.env_frames


class EveryNUpdates(EveryN):
    """`EveryN` on updates, first after the first update (the authors evaluate at t = 0, 5000, ...)."""

    def __init__(self, every_n_updates: int) -> None:
        # Updates u = t + 1: due at t = 0, every, 2 every, ... i.e. u = 1, every + 1, ...
        super().__init__(every_n_updates, first=1, offset=1)
        self.every_n_updates = every_n_updates

    def counter(self, pl_module: L.LightningModule) -> int:
        return pl_module.updates
