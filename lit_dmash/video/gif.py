"""GIFs: encode a video, write it next to a run, log it to TensorBoard; `record_video` films a module in one call."""

from __future__ import annotations

import io
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image

from lit_dmash.errors import ConfigError
from lit_dmash.io import atomic_open
from lit_dmash.video.frames import compose
from lit_dmash.video.recording import check_renders, record_split


def record_video(
    pl_module: L.LightningModule,
    split: str = "eval_out",
    out_dir: Path = Path("videos"),
    contexts: int = 4,
    width: int = 192,
    height: int = 144,
    fps: int = 25,
    frame_skip: int = 1,
) -> Path:
    """Film a module (trained, or from `load_agent(...).module`) without a Trainer: the GIF's path.

    The same recording as `PolicyVideo`: `<out_dir>/<split>_<updates>.gif`.
    """
    if split not in pl_module.split_names:
        raise ConfigError("record_video.split", split, f"the task defines splits {pl_module.split_names}")
    check_renders(pl_module, width, height)
    return write_video(pl_module, split, Path(out_dir), contexts, (width, height), fps, frame_skip)[0]


def write_video(
    pl_module: L.LightningModule,
    split: str,
    out_dir: Path,
    contexts: int,
    size: tuple[int, int],
    fps: int,
    frame_skip: int,
) -> tuple[Path, bytes, tuple[int, int]]:
    """Record `split`, write its GIF atomically: (path, GIF bytes, (height, width) of a frame)."""
    recording = record_split(pl_module, split, contexts, *size, frame_skip)
    frames = compose(recording)
    gif = encode_gif(frames, fps)
    path = out_dir / f"{split}_{pl_module.updates}.gif"
    with atomic_open(path, "wb") as f:
        f.write(gif)
    return path, gif, frames.shape[1:3]


def encode_gif(frames: np.ndarray, fps: int) -> bytes:
    """An endlessly looping GIF of `frames [T, H, W, 3]` (Pillow; adaptive palette per frame).

    Pillow stores identical consecutive frames once, with their durations summed (same playback).
    """
    images = [Image.fromarray(frame) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="GIF", save_all=True, append_images=images[1:], duration=max(20, round(1000 / fps)), loop=0
    )
    return buffer.getvalue()


def log_gif(trainer: L.Trainer, tag: str, gif: bytes, size: tuple[int, int], step: int) -> None:
    """The GIF as an animated TensorBoard image (what `SummaryWriter.add_video` writes, minus moviepy)."""
    loggers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
    if not loggers:
        return
    from tensorboard.compat.proto.summary_pb2 import Summary

    image = Summary.Image(height=size[0], width=size[1], colorspace=3, encoded_image_string=gif)
    summary = Summary(value=[Summary.Value(tag=tag, image=image)])
    for logger in loggers:
        writer = logger.experiment
        # SummaryWriter has no public way to add a prebuilt summary; its add_* methods all go here.
        writer._get_file_writer().add_summary(summary, step)
        writer.flush()
