"""The dynamics model's error on a fresh replay sample, unmasked: is the context inference learning?

Also the worked example of "add a callback" in the README: a periodic callback in a dozen lines.
"""

from __future__ import annotations

import lightning as L
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch.utilities import rank_zero_only

from callbacks.periodic import EveryNFrames


class DynamicsProbe(EveryNFrames):
    """Every `every_n_frames` env frames (and at the end), log `diag/dynamics_probe`.

    The dynamics loss (normalised one-step error) on `samples` transitions drawn from the replay
    buffer with masking off, i.e. what the encoder infers from complete windows. Training logs
    the masked loss on the update batches (`train/loss_dynamics`); this is its clean twin.
    Methods without an encoder are skipped.

    Args:
        every_n_frames: Env frames between probes (0: only at the end).
        samples: Transitions per probe.
    """

    def __init__(self, every_n_frames: NonNegativeInt = 5_000, samples: PositiveInt = 1024) -> None:
        super().__init__(every_n_frames)
        self.samples = samples

    @rank_zero_only
    @torch.no_grad()
    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        buffer = pl_module.replay_buffer
        if pl_module.context_model is None or buffer is None or len(buffer) == 0:
            return
        batch = buffer[torch.randint(len(buffer), (self.samples,))].to(pl_module.device)
        loss = pl_module.context_model.prepare_batch(batch, 0.0, 0.0)[0]
        for logger in trainer.loggers:
            logger.log_metrics({"diag/dynamics_probe": loss.item()}, step=pl_module.env_frames)
