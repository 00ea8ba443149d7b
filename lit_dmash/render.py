"""Pictures of sub-envs: MuJoCo's offscreen renderer with a backend we pick, and drawings of the torch tasks.

MuJoCo tasks render with MuJoCo's own renderer (`MjvScene` + `MjrContext`, the calls
`mujoco.Renderer` makes), one `MujocoCamera` per simulation, reused every frame. It needs an
OpenGL context without a display: EGL (GPU drivers, and Mesa's software device on a CPU) or
OSMesa (`apt-get install libosmesa6`). `gl_backend()` picks it once per process:

- `MUJOCO_GL=egl|osmesa|glfw` is obeyed; `disable` (and its synonyms) is refused with one line.
- Unset: EGL if a context can be made, else OSMesa, each tried in a child process. EGL first
  because it renders on the GPU where there is one (and Mesa's EGL also has a software device
  on CPU machines); OSMesa is CPU-only and needs no driver, the fallback. The child process is
  needed because PyOpenGL binds one platform per process: a failed EGL attempt here would rule
  out OSMesa for good. The choice is written to `MUJOCO_GL` for any later reader (dm_control,
  `mujoco` imported afterwards), so call `gl_backend()` before building MuJoCo envs when you can.

Why not set `MUJOCO_GL` before `mujoco` is imported and use `mujoco.Renderer` or dm_control's
`physics.render`: both read it once, at import, and our envs import MuJoCo as soon as a module
or env is built (before any callback exists; pytest's conftest even disables it). So the GL
context is ours (`mujoco.egl` / `mujoco.osmesa`, made explicitly) and works whatever was
imported first.

DI / DI-Perm / DI-Friction and ODE are drawn with Pillow (`draw_double_integrator`,
`draw_ode`): the DI arena `[-1, 1]^2`, the goal disc, the point, arrows for the policy's action
and the force it became, and the context's sign or swap; the ODE's x line with its reward bands.
"""

from __future__ import annotations

import atexit
import functools
import math
import os
import subprocess
import sys
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKENDS = ("egl", "osmesa")  # tried in this order when MUJOCO_GL is unset
_DISABLED = ("disable", "disabled", "off", "false", "0")
_PROBE = (
    "import os, sys; os.environ['MUJOCO_GL'] = sys.argv[1]; os.environ.pop('PYOPENGL_PLATFORM', None)\n"
    "import mujoco\n"
    "context = mujoco.GLContext(64, 64); context.make_current(); context.free()\n"
)
_INSTALL_HINT = {
    "egl": "libegl1 (apt-get install libegl1) and a GPU driver or Mesa",
    "osmesa": "libosmesa6 (apt-get install libosmesa6)",
}


class RenderError(RuntimeError):
    """No OpenGL backend can render MuJoCo here; the message says what to install or set."""


# ---------------------------------------------------------------------- backend
def _probe(backend: str) -> str | None:
    """None if a `backend` context can be made in a fresh process, else its last error line."""
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, backend], env=env, capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.SubprocessError) as err:
        return str(err)
    if proc.returncode == 0:
        return None
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {proc.returncode}"


@functools.cache
def gl_backend() -> str:
    """The OpenGL backend MuJoCo renders with in this process (see the module docstring)."""
    requested = os.environ.get("MUJOCO_GL", "").strip().lower()
    if requested in _DISABLED:
        raise RenderError(f"MUJOCO_GL={requested} turns rendering off: unset it or set MUJOCO_GL=egl or osmesa")
    if requested:
        if requested not in (*BACKENDS, "glfw"):
            raise RenderError(f"MUJOCO_GL={requested} is not a backend lit_dmash renders with: use egl or osmesa")
        return requested
    failures = {}
    for backend in BACKENDS:
        failures[backend] = _probe(backend)
        if failures[backend] is None:
            os.environ["MUJOCO_GL"] = backend
            return backend
    tried = "; ".join(f"{b}: {why}" for b, why in failures.items())
    raise RenderError(
        f"no OpenGL backend for MuJoCo rendering ({tried}): install {_INSTALL_HINT['osmesa']} on a CPU machine, "
        f"or {_INSTALL_HINT['egl']}"
    )


def _context_class(backend: str) -> Any:
    try:
        if backend == "egl":
            from mujoco.egl import GLContext
        elif backend == "osmesa":
            from mujoco.osmesa import GLContext
        else:
            from mujoco.glfw import GLContext
    except (ImportError, OSError, AttributeError) as err:
        hint = _INSTALL_HINT.get(backend, "a display for glfw")
        raise RenderError(f"MUJOCO_GL={backend} cannot be used ({err}): install {hint}") from err
    return GLContext


_LIVE_CAMERAS: weakref.WeakSet = weakref.WeakSet()


@functools.cache
def gl_context() -> Any:
    """This process's one OpenGL context (every `MujocoCamera` renders in it), made current."""
    backend = gl_backend()
    try:
        context = _context_class(backend)(640, 480)
        context.make_current()
    except RenderError:
        raise
    except Exception as err:  # the backends raise RuntimeError, ImportError or PyOpenGL errors
        hint = _INSTALL_HINT.get(backend, "a display for glfw")
        raise RenderError(f"cannot make a MUJOCO_GL={backend} context ({err}): install {hint}") from err
    # Registered after the backend's own atexit (EGL's eglTerminate), so it runs first: every
    # MjrContext is freed while its GL context still exists, then the context itself.
    atexit.register(_free_all, context)
    return context


def _free_all(context: Any) -> None:
    for camera in list(_LIVE_CAMERAS):
        camera.close()
    context.free()


class MujocoCamera:
    """One simulation's offscreen view: a scene and a render context of its model, reused every frame.

    `camera`: a camera of the model (dm_control's `physics.render(camera_id=0)` is camera 0); a
    model without cameras gets MuJoCo's default free camera.
    """

    def __init__(self, model: Any, width: int, height: int, camera: int = 0) -> None:
        import mujoco

        buffer = (int(model.vis.global_.offwidth), int(model.vis.global_.offheight))
        if width > buffer[0] or height > buffer[1]:
            raise ValueError(f"frame {width}x{height} exceeds the model's offscreen buffer {buffer[0]}x{buffer[1]}")
        self._gl = gl_context()
        self._gl.make_current()
        self.model, self.width, self.height = model, width, height
        self.scene = mujoco.MjvScene(model, maxgeom=10_000)
        self.option = mujoco.MjvOption()
        self.camera = mujoco.MjvCamera()
        if camera < model.ncam:
            self.camera.type, self.camera.fixedcamid = mujoco.mjtCamera.mjCAMERA_FIXED, camera
        else:
            mujoco.mjv_defaultFreeCamera(model, self.camera)
        self.context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self.context)
        self.rect = mujoco.MjrRect(0, 0, width, height)
        _LIVE_CAMERAS.add(self)

    def render(self, data: Any) -> np.ndarray:
        """The current state of `data` as RGB `[H, W, 3]` uint8 (top row first)."""
        import mujoco

        self._gl.make_current()
        mujoco.mjv_updateScene(self.model, data, self.option, None, self.camera, mujoco.mjtCatBit.mjCAT_ALL, self.scene)
        mujoco.mjr_render(self.rect, self.scene, self.context)
        pixels = np.empty((self.height, self.width, 3), dtype=np.uint8)
        mujoco.mjr_readPixels(pixels, None, self.rect, self.context)
        return np.flipud(pixels)  # OpenGL's first row is the bottom one

    def close(self) -> None:
        """Free the render context now (GPU memory), rather than whenever Python collects it."""
        if self.context is not None:
            self._gl.make_current()
            self.context.free()
            self.context = None
        _LIVE_CAMERAS.discard(self)


# ---------------------------------------------------------------------- drawings
BACKGROUND = (250, 250, 247)
ARENA = (120, 120, 120)
GOAL = (150, 215, 150)
POINT = (31, 90, 200)
FORCE = (215, 45, 35)
ACTION = (150, 150, 150)
TEXT = (40, 40, 40)


@functools.cache
def font(size: int = 11) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at `size` pixels (a bitmap font where Pillow lacks FreeType)."""
    return ImageFont.load_default(size=size)


def di_square(width: int, height: int) -> tuple[float, float, float]:
    """`(left, top, side)` in pixels of the DI arena `[-1, 1]^2` inside a `width x height` frame."""
    margin = 0.06 * min(width, height)
    side = min(width, height) - 2 * margin
    return (width - side) / 2, (height - side) / 2, side


def di_pixel(position: Sequence[float], width: int, height: int) -> tuple[float, float]:
    """`(column, row)` in pixels of an arena point `(x, y)`; y points up."""
    left, top, side = di_square(width, height)
    return left + (position[0] + 1) / 2 * side, top + (1 - position[1]) / 2 * side


def _arrow(draw: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float], color, width: int) -> None:
    draw.line([start, end], fill=color, width=width)
    dx, dy = end[0] - start[0], end[1] - start[1]
    length = math.hypot(dx, dy)
    if length < 1e-6:
        return
    ux, uy = dx / length, dy / length
    head = min(6.0, 0.5 * length) + width
    left = (end[0] - head * ux + 0.5 * head * uy, end[1] - head * uy - 0.5 * head * ux)
    right = (end[0] - head * ux - 0.5 * head * uy, end[1] - head * uy + 0.5 * head * ux)
    draw.polygon([end, left, right], fill=color)


def draw_double_integrator(
    position: Sequence[float],
    action: Sequence[float],
    force: Sequence[float],
    width: int,
    height: int,
    note: str = "",
    goal_radius: float = 0.1,
) -> np.ndarray:
    """One DI frame: arena, goal disc, the point, the policy's action (grey) and the force it became (red).

    The two arrows differ exactly when the context inverts (`action_factor -1`) or swaps
    (`action_order -1`) the action; `note` (e.g. "inverted") is written in the corner.
    """
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    left, top, side = di_square(width, height)
    draw.rectangle([left, top, left + side, top + side], outline=ARENA, width=1)
    radius = goal_radius / 2 * side
    cx, cy = di_pixel((0.0, 0.0), width, height)
    draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=GOAL)
    px, py = di_pixel(position, width, height)
    scale = 0.3 * side / 2  # a unit action is 0.3 arena units long
    _arrow(draw, (px, py), (px + scale * action[0], py - scale * action[1]), ACTION, 1)
    _arrow(draw, (px, py), (px + scale * force[0], py - scale * force[1]), FORCE, 2)
    dot = max(2.0, 0.025 * side)
    draw.ellipse([px - dot, py - dot, px + dot, py + dot], fill=POINT)
    if note:
        draw.text((left + 3, top + side - 14), note, fill=TEXT, font=font(10))
    return np.asarray(image)


ODE_BANDS = (0.05, 0.1, 0.2, 0.5, 2.0)  # |x| bounds of the reward bands, innermost first
ODE_BAND_REWARDS = (1.0, 0.5, 1.0 / 3.0, 0.25, 0.05)
ODE_LIMIT = 20.0  # x is clipped to +-20


def ode_axis(x: float, width: int) -> float:
    """Column of `x` on a symmetric log axis: the 0.05-wide inner band and the +-20 ends both visible."""
    margin = 0.06 * width
    half = (width - 2 * margin) / 2
    scaled = math.log1p(abs(x) / ODE_BANDS[0]) / math.log1p(ODE_LIMIT / ODE_BANDS[0])
    return margin + half + math.copysign(min(scaled, 1.0), x) * half


def draw_ode(x: float, width: int, height: int) -> np.ndarray:
    """One ODE frame: the x line (symlog), its reward bands (darker = more reward), the point."""
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    mid = height / 2
    for bound, reward in reversed(list(zip(ODE_BANDS, ODE_BAND_REWARDS, strict=True))):
        shade = int(235 - 120 * reward)
        draw.rectangle([ode_axis(-bound, width), mid - 10, ode_axis(bound, width), mid + 10], fill=(shade, 225, shade))
    draw.line([(ode_axis(-ODE_LIMIT, width), mid), (ode_axis(ODE_LIMIT, width), mid)], fill=ARENA, width=1)
    for tick in (-ODE_LIMIT, -2.0, -0.2, 0.0, 0.2, 2.0, ODE_LIMIT):
        column = ode_axis(tick, width)
        draw.line([(column, mid + 10), (column, mid + 14)], fill=ARENA)
        draw.text((column, mid + 16), f"{tick:g}", fill=TEXT, font=font(9), anchor="ma")
    column, dot = ode_axis(x, width), max(3.0, 0.02 * width)
    draw.ellipse([column - dot, mid - dot, column + dot, mid + dot], fill=POINT)
    draw.text((4, 4), f"x = {x:+.3f}", fill=TEXT, font=font(10))
    return np.asarray(image)


def sub_env_rows(indices: Sequence[int] | None, num_envs: int) -> list[int]:
    """The sub-envs a `render(indices)` call draws: all by default; out-of-range indices refused."""
    rows = list(range(num_envs)) if indices is None else [int(i) for i in indices]
    bad = [i for i in rows if not 0 <= i < num_envs]
    if bad:
        raise IndexError(f"sub-env indices {bad} out of range for {num_envs} sub-envs")
    return rows
