"""Pictures: a recording's frames labelled with context and running return, tiled into one video."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from lit_dmash.render import BACKGROUND, TEXT, font
from lit_dmash.video.recording import Recording

LINE_HEIGHT = 13


def label(frame: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """`frame` under a strip holding `lines` of text."""
    height, width = frame.shape[:2]
    strip = LINE_HEIGHT * len(lines) + 4
    image = Image.new("RGB", (width, height + strip), BACKGROUND)
    image.paste(Image.fromarray(frame), (0, strip))
    draw = ImageDraw.Draw(image)
    for k, line in enumerate(lines):
        draw.text((3, 2 + LINE_HEIGHT * k), line, fill=TEXT, font=font(11))
    return np.asarray(image)


def grid(tiles: Sequence[np.ndarray], columns: int | None = None, gap: int = 2) -> np.ndarray:
    """Equal-size tiles `[H, W, 3]` in rows of `columns` (default: as square as possible)."""
    columns = columns or math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    height, width = tiles[0].shape[:2]
    out = np.full(((height + gap) * rows - gap, (width + gap) * columns - gap, 3), 255, dtype=np.uint8)
    for k, tile in enumerate(tiles):
        top, left = (k // columns) * (height + gap), (k % columns) * (width + gap)
        out[top : top + height, left : left + width] = tile
    return out


def compose(recording: Recording) -> np.ndarray:
    """The video `[T, H, W, 3]`: each step's tiles, labelled with context and running return."""
    frames = []
    for t, step in enumerate(recording.steps):
        tiles = [
            label(
                recording.frames[t, j],
                [
                    f"{recording.split} #{index}  seed {recording.seed}",
                    recording.labels[j],
                    f"step {step}  return {recording.returns[t, j]:.2f}",
                ],
            )
            for j, index in enumerate(recording.indices)
        ]
        frames.append(grid(tiles))
    return np.stack(frames)
