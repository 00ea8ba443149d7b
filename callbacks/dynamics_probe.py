"""The dynamics model's error on a fresh replay sample, unmasked: is the context inference learning?

Also the worked example of "add a callback" in the README: a periodic callback in a dozen lines.
"""

from __future__ import annotations

import lightning as L
import torch
from jsonargparse.typing import NonNegativeInt
from lightning.pytorch.utilities import rank_zero_only

from callbacks.periodic import EveryNFrames
from lit_dmash.agent.update import dynamics_error


class DynamicsProbe(EveryNFrames):
    """Every `every_n_frames` env frames (and at the end), log `diag/dynamics_probe`.

    The dynamics model's MSE on a fresh training batch with the encoder in evaluation mode (fixed
    slots, no masking): what it infers from clean windows. Training logs the masked loss on the
    update batches (`train/loss_dynamics`); this is its clean twin. Methods without an encoder
    are skipped.

    Args:
        every_n_frames: Env frames between probes (0: only at the end).
    """

    def __init__(self, every_n_frames: NonNegativeInt = 5_000) -> None:
        super().__init__(every_n_frames)

    @rank_zero_only
    @torch.no_grad()
    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        agent, collector = pl_module.agent, pl_module.collector
        if agent.encoder is None or collector is None or collector.replay.num_episodes == 0:
            return
        with pl_module.untouched_randomness():
            batch = pl_module.sample_batch()
        z = agent.embed(batch.window(agent.spec.leak_free), training=False)
        loss = dynamics_error(agent, batch, z).mean()
        for logger in trainer.loggers:
            logger.log_metrics({"diag/dynamics_probe": loss.item()}, step=pl_module.env_frames)
