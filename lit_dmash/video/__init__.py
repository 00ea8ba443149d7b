"""Videos of the deterministic policy, recorded with the authors' evaluation protocol.

Why not TorchRL's `VideoRecorder` and loggers: `VideoRecorder` is a transform that grabs a
`"pixels"` entry inside a TorchRL rollout, while our evaluation is `run_episodes` over
`SeedEnvs` (one batched env per seed, the K-step warm-up, then the scored episode), which no
TorchRL rollout wraps; and its writers need moviepy (TensorBoard) or PyAV (mp4). So a
`FrameRecorder` (a `SeedEnvs`) renders inside `run_episodes` (`recording`), Pillow tiles and
labels the frames (`frames`) and encodes a GIF, and the TensorBoard image summary (what
`add_video` writes) is built from those GIF bytes (`gif`). No mp4: imageio needs imageio-ffmpeg
or PyAV (extra binaries) to write one.

The `callbacks.PolicyVideo` callback decides when to film; everything it films with is here, so
scripts and notebooks (`record_video`) film without a Trainer or a callback.
"""

from lit_dmash.video.frames import LINE_HEIGHT, compose, grid, label
from lit_dmash.video.gif import encode_gif, log_gif, record_video, write_video
from lit_dmash.video.recording import (
    BINARY_WORDS,
    FrameRecorder,
    Recording,
    check_renders,
    choose_contexts,
    context_names,
    describe_context,
    record_split,
)

__all__ = [
    "BINARY_WORDS",
    "LINE_HEIGHT",
    "FrameRecorder",
    "Recording",
    "check_renders",
    "choose_contexts",
    "compose",
    "context_names",
    "describe_context",
    "encode_gif",
    "grid",
    "label",
    "log_gif",
    "record_split",
    "record_video",
    "write_video",
]
