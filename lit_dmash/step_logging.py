"""The training step's metrics: what the module logs after each update, and against what.

Kept out of `compat` (which holds only the Lightning internals we touch) and out of the module's
training loop, so that the list of logged quantities reads in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lit_dmash.compat import should_log

if TYPE_CHECKING:
    from lit_dmash.module import ContextualSAC


def log_step(module: ContextualSAC) -> None:
    """Write the step's metrics on the steps Lightning writes, against env frames (per seed).

    Episode returns go straight to the loggers (once per batch of finished episodes): a value in
    Lightning's result collection is re-written at every later log step of an endless epoch.
    """
    if not should_log(module):
        return
    collector = module.collector
    log: dict[str, float] = {
        "step": float(module.env_frames),  # x-axis of every logged metric: env frames (per seed)
        "train/env_frames": float(module.env_frames),
        "train/updates": float(module.updates),
        "train/episodes": float(collector.episodes),
        "train/nonfinite_skipped": float(module.nonfinite_skipped),
        "train/sim_failures": float(module.sim_failures),
        "train/p_mask": float(module.spec.p_mask),
    }
    timing = module.timing
    if timing["update_s"] > 0:
        log["time/updates_per_s"] = module.updates / timing["update_s"]
    if timing["collect_s"] > 0:
        log["time/env_steps_per_s"] = collector.vector_steps * collector.envs.num_envs / timing["collect_s"]
    returns = collector.pop_finished_returns()
    if returns is not None:
        for logger in module.loggers:
            logger.log_metrics({"train/episode_return": returns.mean().item()}, step=module.env_frames)
    log.update({f"train/{k}": float(v) for k, v in module.last_metrics.items()})
    module.log_dict(log, on_step=True, on_epoch=False, batch_size=1)
    module.log("env_steps", float(module.env_frames), prog_bar=True, logger=False, batch_size=1)
