"""Rollout videos: the renderers, the `PolicyVideo` callback on real envs and a real tiny module."""

from __future__ import annotations

import ctypes.util

import lightning as L
import numpy as np
import pytest
from conftest import quiet_trainer, tiny_module
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks import PolicyVideo
from lit_dmash import render
from lit_dmash.envs import make_env, task_spec
from lit_dmash.video import LINE_HEIGHT, choose_contexts, record_split

WIDTH, HEIGHT = 96, 48
LABEL_STRIP = 3 * LINE_HEIGHT + 4  # three lines of text above each tile


@pytest.fixture
def gl(monkeypatch):
    """Let the renderer pick its backend (conftest sets MUJOCO_GL=disable for the other tests).

    Picked before the env is built, so a dm_control imported here sees the choice, not glfw.
    """
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    render.gl_backend.cache_clear()
    render.gl_backend()
    yield
    render.gl_backend.cache_clear()


def fit(module, root, logger, **video) -> tuple[L.Trainer, PolicyVideo]:
    callback = PolicyVideo(width=WIDTH, height=HEIGHT, **video)
    trainer = quiet_trainer(root, logger=logger, callbacks=[callback])
    trainer.fit(module)
    return trainer, callback


def check_gif(path, frames: int, tiles: int) -> None:
    """`frames` frames of `tiles` labelled tiles side by side (2 px apart)."""
    with Image.open(path) as gif:
        assert gif.n_frames == frames
        assert gif.size == (tiles * WIDTH + 2 * (tiles - 1), HEIGHT + LABEL_STRIP)


@pytest.mark.integration
def test_di_video_file_and_tensorboard(tmp_path):
    module = tiny_module(task="di")
    trainer, callback = fit(module, tmp_path, TensorBoardLogger(tmp_path, name="tb"), splits=["train", "eval_out"])
    videos = sorted((tmp_path / "videos").iterdir())
    assert [p.name for p in videos] == [f"eval_out_{module.updates}.gif", f"train_{module.updates}.gif"]
    assert callback.saved and set(callback.saved) == set(videos)
    for path in videos:  # one frame per scored step (the warm-up is not filmed), both contexts
        check_gif(path, frames=module.horizon, tiles=2)
    (run,) = (tmp_path / "tb").iterdir()
    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    assert {"video/train", "video/eval_out"} <= set(events.Tags()["images"])
    image = events.Images("video/eval_out")[-1]
    assert image.step == module.env_frames
    assert image.encoded_image_string == videos[0].read_bytes()

    module.test_episodes = 1
    trainer.test(module, verbose=False)  # `python -m lit_dmash test`: filmed again at its end
    assert len(callback.saved) == 4 and set(callback.saved) == set(videos)


@pytest.mark.integration
def test_cheetah_video_with_csv_logger(tmp_path, gl):
    module = tiny_module(task="cheetah")
    fit(module, tmp_path, CSVLogger(tmp_path), splits=["eval_out"])
    check_gif(tmp_path / "videos" / f"eval_out_{module.updates}.gif", frames=module.horizon, tiles=2)


def test_recorded_return_is_the_evaluation_return():
    """The running return drawn on the tiles ends at what `evaluate` scores for those contexts."""
    module = tiny_module(task="di", seeds=(0, 1))
    recording = record_split(module, "eval_out", 2, WIDTH, HEIGHT)
    scored = module.evaluate("eval_out", 1)["returns"][0, recording.indices, 0]
    assert recording.frames.shape == (module.horizon, 2, HEIGHT, WIDTH, 3)
    np.testing.assert_allclose(recording.returns[-1], scored.numpy())
    assert recording.steps == list(range(1, module.horizon + 1))


def test_di_point_is_drawn_where_the_state_says():
    env = make_env("di", "train", num_envs=3, contexts_per_split=3)
    positions = env.reset()["observation"][:, :2].tolist()
    frames = env.render(width=120, height=100)
    assert frames.shape == (3, 100, 120, 3) and frames.dtype == np.uint8
    for frame, (x, y) in zip(frames, positions, strict=True):
        column, row = render.di_pixel((x, y), 120, 100)
        assert tuple(frame[round(row), round(column)]) == render.POINT
        mirrored = render.di_pixel((-x, -y), 120, 100)  # nothing blue where the point is not
        assert tuple(frame[round(mirrored[1]), round(mirrored[0])]) != render.POINT


def test_contexts_chosen_cover_inverted_and_normal():
    env = make_env("di", "eval_out", num_envs=20, contexts_per_split=20)
    chosen = choose_contexts(env, 4, task_spec("di"))
    factors = env.contexts[chosen, 1].tolist()
    assert len(chosen) == 4 and sorted(factors) == [-1.0, -1.0, 1.0, 1.0]
    masses = env.contexts[chosen, 0]
    assert masses.max() - masses.min() > 1.0  # spread over the mass range, not neighbours


def test_disabled_gl_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "disable")
    render.gl_backend.cache_clear()
    try:
        with pytest.raises(render.RenderError, match="MUJOCO_GL=disable turns rendering off") as err:
            render.gl_backend()
        assert "\n" not in str(err.value)
    finally:
        render.gl_backend.cache_clear()


@pytest.mark.integration
@pytest.mark.skipif(
    ctypes.util.find_library("OSMesa") is None, reason="no libOSMesa on this machine: apt-get install libosmesa6"
)
def test_backend_falls_back_to_osmesa_when_egl_fails(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setenv("MUJOCO_EGL_DEVICE_ID", "999")  # no such device: the EGL probe fails
    render.gl_backend.cache_clear()
    try:
        assert render.gl_backend() == "osmesa"
    finally:
        render.gl_backend.cache_clear()


def test_no_backend_names_the_package_in_one_line(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(render, "_probe", lambda backend: f"{backend} library not found")
    render.gl_backend.cache_clear()
    try:
        with pytest.raises(render.RenderError, match="install libosmesa6") as err:
            render.gl_backend()
        assert "\n" not in str(err.value) and "egl: egl library not found" in str(err.value)
    finally:
        render.gl_backend.cache_clear()
