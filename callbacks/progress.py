"""A progress bar that knows the run's length: random steps + updates, with an ETA and the last AER."""

from __future__ import annotations

import math
import sys
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

from callbacks.zero_shot_eval import ZeroShotEvaluation


class TrainingProgress(TQDMProgressBar):
    """Lightning's tqdm bar over the run's vector steps (the random phase, then one update each).

    The epoch is endless (data comes from the collector), so Lightning's own bar has no total and
    no ETA; this one counts `(random_steps + total_steps + 1) / steps_per_batch` training steps,
    resumes at the checkpoint's position, and shows updates, env frames and the last evaluation's
    seed-mean AER per split. The CLI adds it unless `--trainer.enable_progress_bar false`.

    Args:
        refresh_rate: Training steps between redraws (a redraw costs more than a small update).
    """

    def __init__(self, refresh_rate: int = 20) -> None:
        super().__init__(refresh_rate=refresh_rate)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Make the bar here with its total, name and resume position, so that its first frame has them.

        Lightning's bar is drawn as soon as it is made ("Training: 0/?") and again when the epoch
        starts ("Epoch 0: 0/?"); in a log file or a notebook those frames stay. Its own keyword
        arguments are repeated below because `init_train_tqdm` cannot be given a total.
        """
        protocol = pl_module.protocol
        self.train_progress_bar = Tqdm(
            desc=f"{pl_module.method.name} on {pl_module.env_cfg.name}",
            total=math.ceil((protocol.random_steps + protocol.total_steps + 1) / protocol.steps_per_batch),
            initial=self._position(pl_module),
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stdout,
            smoothing=0,
            bar_format=self.BAR_FORMAT,
        )

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: Any) -> None:
        pass  # one endless epoch: Lightning's reset here would drop the total and rename the bar "Epoch 0"

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        bar = self.train_progress_bar
        n = self._position(pl_module)
        if bar is not None and (n % self.refresh_rate == 0 or n >= bar.total):
            bar.n = n
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            bar.refresh()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The final evaluation runs in ZeroShotEvaluation.on_train_end, before this hook (the CLI
        # puts the bar after the user's callbacks): the bar's last frame shows its AER, not the
        # previous evaluation's.
        bar = self.train_progress_bar
        if bar is not None:
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
        super().on_train_end(trainer, pl_module)

    @staticmethod
    def _position(pl_module: L.LightningModule) -> int:
        collector = pl_module.collector
        steps = collector.vector_steps if collector is not None else 0
        return math.ceil(steps / pl_module.protocol.steps_per_batch)  # a last, shorter step ends on the total

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items: dict[str, Any] = {"updates": f"{pl_module.updates:,}", "frames": f"{pl_module.env_frames:,}"}
        evaluation = next((c for c in trainer.callbacks if isinstance(c, ZeroShotEvaluation)), None)
        if evaluation is not None and evaluation.history:
            items["AER"] = ", ".join(f"{split} {aer:.1f}" for split, aer in evaluation.final_aer().items())
        return items
