"""The input-masking probability over training, as a function of env frames."""

from __future__ import annotations

import math
from typing import Literal

import lightning as L
from jsonargparse.typing import PositiveInt, restricted_number_type
from lightning.pytorch.utilities import rank_zero_warn

from lit_dmash.errors import check_choice, check_int, check_range

MaskProbability = restricted_number_type("MaskProbability", float, [(">=", 0.0), ("<", 1.0)])
SCHEDULES = ("constant", "linear", "cosine")


class MaskingSchedule(L.Callback):
    """Sets the masking probability before every training step from the env frames seen so far.

    `constant` keeps `start`; `linear` and `cosine` go from `start` to `end` over `over_frames`
    env frames (per seed), then stay at `end`. The module logs the value in force as
    `train/p_mask`. Driven by env frames (not Lightning's step), so a resumed run continues the
    schedule where it was. Methods without an encoder are left alone, with a warning. (Ours: the
    authors keep the method's masking probability constant.)

    Args:
        schedule: `constant`, `linear` or `cosine`.
        start: Probability at frame 0; None keeps the method's (0.2 DMA*, 0.4 DMA*-SH, or context.p_mask).
        end: Probability from `over_frames` on.
        over_frames: Length of the schedule in env frames; None uses the whole run.
    """

    def __init__(
        self,
        schedule: Literal["constant", "linear", "cosine"] = "linear",
        start: MaskProbability | None = None,
        end: MaskProbability = 0.0,
        over_frames: PositiveInt | None = None,
    ) -> None:
        check_choice("MaskingSchedule.schedule", schedule, SCHEDULES)
        for name, value in (("start", start), ("end", end)):
            if value is not None:
                check_range(f"MaskingSchedule.{name}", value, 0.0, 1.0, high_inclusive=False)
        if over_frames is not None:
            check_int("MaskingSchedule.over_frames", over_frames)
        self.schedule, self.start, self.end, self.over_frames = schedule, start, end, over_frames
        self._active = False

    def value(self, frames: int, start: float, over_frames: int) -> float:
        progress = min(1.0, frames / over_frames)
        if self.schedule == "constant":
            return start
        if self.schedule == "linear":
            return start + (self.end - start) * progress
        return self.end + (start - self.end) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._active = pl_module.agent.encoder is not None
        if not self._active:
            rank_zero_warn(f"MaskingSchedule: method {pl_module.method.name!r} has no encoder; the schedule is ignored")
        if self.start is None:
            self.start = pl_module.spec.p_mask
        if self.over_frames is None:
            protocol = pl_module.protocol
            self.over_frames = (protocol.random_steps + protocol.total_steps + 1) * pl_module.env_cfg.num_envs

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if self._active:
            pl_module.set_p_mask(self.value(pl_module.env_frames, self.start, self.over_frames))
