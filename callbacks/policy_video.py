"""Videos of the deterministic policy, recorded with the authors' evaluation protocol.

Why not TorchRL's `VideoRecorder` and loggers: `VideoRecorder` is a transform that grabs a
`"pixels"` entry inside a TorchRL rollout, while our evaluation is `run_episodes` over
`SeedEnvs` (one batched env per seed, the K-step warm-up, then the scored episode), which no
TorchRL rollout wraps; and its writers need moviepy (TensorBoard) or PyAV (mp4). So a
`FrameRecorder` (a `SeedEnvs`) renders inside `run_episodes`, Pillow tiles and labels the
frames and encodes a GIF, and the TensorBoard image summary (what `add_video` writes) is built
from those GIF bytes. No mp4: imageio needs imageio-ffmpeg or PyAV (extra binaries) to write one.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image, ImageDraw

from callbacks.periodic import EveryNUpdates
from lit_dmash.errors import ConfigError
from lit_dmash.experience.rollout import SeedEnvs, StepResult, run_episodes
from lit_dmash.io import atomic_open
from lit_dmash.render import BACKGROUND, TEXT, RenderError, font

BINARY_WORDS = {"action_factor": ("inverted", "normal"), "action_order": ("swapped", "identity")}
LINE_HEIGHT = 13


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

    Cost (2-core CPU, `python -m lit_dmash fit -c conf/quickstart.yaml` with and without
    `--trainer.callbacks+=callbacks.PolicyVideo`): measured in bench/README.md (Videos); off unless added.

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


# ---------------------------------------------------------------------- recording
@dataclass
class Recording:
    """One split's scored episode, seed 0, the chosen sub-envs."""

    split: str
    seed: int
    indices: list[int]
    frames: np.ndarray  # [T, n, H, W, 3] uint8, after each kept scored step
    returns: np.ndarray  # [T, n] running return after that step
    steps: list[int]  # [T] the step (1-based) each frame follows
    labels: list[str]  # [n] the contexts, in words


class FrameRecorder(SeedEnvs):
    """`SeedEnvs` that renders seed 0's sub-envs `indices` after each step, keeping the episode since the last reset.

    `run_episodes` resets right before its scored episode, so when it returns (one episode)
    the frames are exactly that episode's; the warm-up's frames were drawn and dropped (simpler
    than knowing the protocol's reset pattern here; ~K / horizon extra drawing).
    """

    def __init__(self, envs: SeedEnvs, indices: Sequence[int], width: int, height: int, frame_skip: int = 1) -> None:
        super().__init__(envs.envs)
        self.indices, self.width, self.height, self.frame_skip = list(indices), width, height, frame_skip
        self._clear()

    def _clear(self) -> None:
        self.frames: list[np.ndarray] = []
        self.returns: list[np.ndarray] = []
        self.steps: list[int] = []
        self._total = np.zeros(len(self.indices))
        self._t = 0
        self.contexts: torch.Tensor | None = None  # [n, c] of the filmed sub-envs, as the last step reported

    def reset(self) -> tuple[torch.Tensor, torch.Tensor]:
        self._clear()
        return super().reset()

    def step(self, action: torch.Tensor) -> StepResult:
        result = super().step(action)
        self._total += result.reward[0, self.indices].double().cpu().numpy()
        self._t += 1
        self.contexts = result.context[0, self.indices].cpu()
        if (self._t - 1) % self.frame_skip == 0 or result.done[0].any():
            self.frames.append(self.envs[0].render(self.indices, width=self.width, height=self.height))
            self.returns.append(self._total.copy())
            self.steps.append(self._t)
        return result


def record_split(
    pl_module: L.LightningModule, split: str, count: int, width: int, height: int, frame_skip: int = 1
) -> Recording:
    """Run the authors' evaluation on `split` and keep seed 0's scored episode in `count` contexts."""
    envs = pl_module.make_envs(split, num_envs=pl_module.env_cfg.contexts_per_split)
    try:
        env = envs.envs[0]
        indices = choose_contexts(env, count, pl_module.task_spec)
        recorder = FrameRecorder(envs, indices, width, height, frame_skip)
        run_episodes(pl_module.agent, recorder, pl_module.spec.window, 1, pl_module.protocol.warm_up)
    finally:
        envs.close()
    names = context_names(env, recorder.contexts.shape[-1])
    return Recording(
        split=split,
        seed=pl_module.seeds[0],
        indices=indices,
        frames=np.stack(recorder.frames),
        returns=np.stack(recorder.returns),
        steps=recorder.steps,
        labels=[describe_context(row.tolist(), names) for row in recorder.contexts],
    )


def check_renders(pl_module: L.LightningModule, width: int, height: int) -> None:
    """Draw one frame of a 1-sub-env env of the task, or raise a one-line `ConfigError` saying why not."""
    envs = pl_module.make_envs(pl_module.split_names[0], num_envs=1)
    try:
        env = envs.envs[0]
        if not callable(getattr(env, "render", None)):
            raise ConfigError("PolicyVideo", pl_module.env_cfg.name, "this env cannot render (no render method)")
        env.reset()
        try:
            env.render([0], width=width, height=height)
        except (RenderError, ValueError) as err:  # no OpenGL backend, or a frame bigger than the model allows
            raise ConfigError("PolicyVideo", pl_module.env_cfg.name, str(err)) from err
    finally:
        envs.close()


def choose_contexts(env, count: int, task_spec=None) -> list[int]:
    """`count` sub-envs to film: binary-key groups in turn (inverted first), evenly spread inside each.

    A paper env's sub-env i runs context i (its `contexts`, sorted); an env that draws contexts
    per episode (the `*_signs` envs) gets its first `count` sub-envs.
    """
    num_envs = int(env.batch_size[0])
    contexts = getattr(env, "contexts", None)
    if contexts is None:
        return list(range(min(count, num_envs)))
    contexts = contexts[: min(num_envs, contexts.shape[0])]
    names = list(getattr(env, "context_names", []))
    binary = [names.index(key) for key in (task_spec.binary_keys if task_spec is not None else []) if key in names]
    groups: dict[tuple[float, ...], list[int]] = {}
    for i, row in enumerate(contexts.tolist()):
        groups.setdefault(tuple(row[j] for j in binary), []).append(i)
    ordered = [groups[key] for key in sorted(groups)]  # -1 (inverted, swapped) before +1
    quotas = [len(range(g, count, len(ordered))) for g in range(len(ordered))]
    chosen = []
    for rows, quota in zip(ordered, quotas, strict=True):
        picks = np.linspace(0, len(rows) - 1, min(quota, len(rows))).round().astype(int)
        chosen += [rows[p] for p in sorted(set(picks.tolist()))]
    return sorted(chosen)


def context_names(env, dim: int) -> list[str]:
    names = list(getattr(env, "context_names", []) or [])
    return names if len(names) == dim else [f"c{j}" for j in range(dim)]


def describe_context(values: Sequence[float], names: Sequence[str]) -> str:
    """A context in words: `mass=0.5, inverted`; binary keys by what they do."""
    parts = []
    for name, value in zip(names, values, strict=True):
        if name in BINARY_WORDS:
            parts.append(BINARY_WORDS[name][0 if value < 0 else 1])
        else:
            parts.append(f"{name}={value:.3g}")
    return ", ".join(parts)


# ---------------------------------------------------------------------- pictures
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
