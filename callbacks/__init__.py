"""Lightning callbacks: cross-cutting concerns (evaluation, schedules, diagnostics)."""

from callbacks.dynamics_probe import DynamicsProbe
from callbacks.masking_schedule import MaskingSchedule
from callbacks.representation_diagnostics import RepresentationDiagnostics
from callbacks.run_checkpoint import RunCheckpoint
from callbacks.variance_diagnostics import VarianceDiagnostics
from callbacks.zero_shot_eval import ZeroShotEvaluation

__all__ = [
    "DynamicsProbe",
    "MaskingSchedule",
    "RepresentationDiagnostics",
    "RunCheckpoint",
    "VarianceDiagnostics",
    "ZeroShotEvaluation",
]
