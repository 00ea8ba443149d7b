"""Lightning callbacks: cross-cutting concerns (evaluation, schedules, diagnostics, checkpoints)."""

from callbacks.dynamics_probe import DynamicsProbe
from callbacks.masking_schedule import MaskingSchedule
from callbacks.run_checkpoint import RunCheckpoint
from callbacks.zero_shot_eval import ZeroShotEvaluation

__all__ = [
    "DynamicsProbe",
    "MaskingSchedule",
    "RunCheckpoint",
    "ZeroShotEvaluation",
]
