"""Lightning callbacks: cross-cutting concerns (evaluation, schedules, diagnostics, checkpoints)."""

from callbacks.context_diagnostics import ContextDiagnostics
from callbacks.dynamics_probe import DynamicsProbe
from callbacks.masking_schedule import MaskingSchedule
from callbacks.policy_gradient_variance import PolicyGradientVariance
from callbacks.policy_video import PolicyVideo
from callbacks.progress import TrainingProgress
from callbacks.run_checkpoint import RunCheckpoint
from callbacks.run_summary import RunSummary
from callbacks.zero_shot_eval import ZeroShotEvaluation

__all__ = [
    "ContextDiagnostics",
    "DynamicsProbe",
    "MaskingSchedule",
    "PolicyGradientVariance",
    "PolicyVideo",
    "RunCheckpoint",
    "RunSummary",
    "TrainingProgress",
    "ZeroShotEvaluation",
]
