"""A test-only callback the DDP test adds on the CLI (`--trainer.callbacks+=tests.rank_probe.RankParameters`):
every rank saves its agent's parameters, so the test can check that the ranks trained one model."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch


class RankParameters(L.Callback):
    """Writes `<default_root_dir>/rank<r>_{start,end}.pt`: the agent's parameters before and after training."""

    def _save(self, trainer: L.Trainer, pl_module: L.LightningModule, when: str) -> None:
        params = {name: p.detach().cpu().clone() for name, p in pl_module.agent.named_parameters()}
        torch.save(params, Path(trainer.default_root_dir) / f"rank{trainer.global_rank}_{when}.pt")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer, pl_module, "start")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer, pl_module, "end")
