"""Lightning callbacks: cross-cutting concerns (evaluation, schedules, diagnostics)."""

from callbacks.zero_shot_eval import ZeroShotEvaluation

__all__ = ["ZeroShotEvaluation"]
