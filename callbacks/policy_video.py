"""`PolicyVideo`: when to film the deterministic policy during `fit` and `test`.

The filming itself (recording with the authors' evaluation protocol, labelling, tiling, GIF
encoding, TensorBoard logging, and why not TorchRL's `VideoRecorder`) is `lit_dmash.video`;
`record_video` stays importable from here, where the README has long pointed.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch.utilities import rank_zero_only

from callbacks.periodic import EveryNUpdates
from lit_dmash.errors import ConfigError
from lit_dmash.video import check_renders, log_gif, record_video, write_video

__all__ = ["PolicyVideo", "record_video"]


class PolicyVideo(EveryNUpdates):
    """One scored episode of the deterministic policy per chosen context, tiled into a GIF per split.

    Per split, `contexts_per_split` of the split's contexts (with a binary key such as
    `action_factor`: inverted and normal ones alternately, spread over the continuous keys; else
    spread over the sorted contexts), seed 0 of the module's seeds, the authors' protocol
    (`run_episodes`: warm-up, reset, one deterministic episode): one frame per scored step (every
    `frame_skip`-th), each tile labelled with its context and running return. Written to
    `<default_root_dir>/videos/<split>_<updates>.gif` and, with a `TensorBoardLogger`, as the
    animated image `video/<split>` (Images tab) at the env-frame step; other loggers get the file
    only. Runs at the end of training, every `every_n_updates` if > 0, and at the end of `test`;
    on global rank 0 only. The other seeds' envs are stepped too (the agent acts for all seeds at
    once) but not drawn.

    Cost: `python bench/quickstart.py --variants plain video` times the main job with and without
    it; off unless added.

    Args:
        every_n_updates: Updates between videos (0: only at the end of training).
        contexts_per_split: Tiles per split.
        splits: Splits to record; default every split of the task.
        width: Tile width in pixels (before the label strip).
        height: Tile height in pixels.
        fps: Frames per second of the GIF.
        frame_skip: Keep every `frame_skip`-th scored step (long MuJoCo episodes make big GIFs).
    """

    def __init__(
        self,
        every_n_updates: NonNegativeInt = 0,
        contexts_per_split: PositiveInt = 4,
        splits: list[str] | None = None,
        width: PositiveInt = 192,
        height: PositiveInt = 144,
        fps: PositiveInt = 25,
        frame_skip: PositiveInt = 1,
    ) -> None:
        if not isinstance(every_n_updates, int) or every_n_updates < 0:
            raise ConfigError("PolicyVideo.every_n_updates", every_n_updates, "expected an integer >= 0")
        for name, value in (
            ("contexts_per_split", contexts_per_split),
            ("width", width),
            ("height", height),
            ("fps", fps),
            ("frame_skip", frame_skip),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"PolicyVideo.{name}", value, "expected an integer >= 1")
        super().__init__(every_n_updates)
        self.contexts_per_split, self.splits = contexts_per_split, splits
        self.width, self.height, self.fps, self.frame_skip = width, height, fps, frame_skip
        self.saved: list[Path] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for split in self.splits or []:
            if split not in pl_module.split_names:
                raise ConfigError("PolicyVideo.splits", split, f"the task defines splits {pl_module.split_names}")
        check_renders(pl_module, self.width, self.height)  # fail now, not after training

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.run(trainer, pl_module)

    @rank_zero_only
    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for split in self.splits or pl_module.split_names:
            self.save(trainer, pl_module, split)

    def save(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> Path:
        """Record `split`, write its GIF, log it to TensorBoard; the file's path."""
        path, gif, size = write_video(
            pl_module,
            split,
            Path(trainer.default_root_dir) / "videos",
            self.contexts_per_split,
            (self.width, self.height),
            self.fps,
            self.frame_skip,
        )
        self.saved.append(path)
        log_gif(trainer, f"video/{split}", gif, size, pl_module.env_frames)
        return path
