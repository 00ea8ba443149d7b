"""Thin adapters over one MuJoCo simulation (dm_control suite task or gymnasium env).

`BatchedMujocoEnv` steps several of these inside one TorchRL `_step`. Each adapter exposes the
compiled `mujoco.MjModel` (to change physical parameters per episode), `reset()` and `step()`
returning flat float64 observations. They are deliberately not TorchRL envs: TorchRL's
per-call overhead (~0.2 ms) is larger than a MuJoCo step, so batching happens one level up.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Protocol

import mujoco
import numpy as np


class SimulatorError(RuntimeError):
    """The simulation became unstable (dm_control's `PhysicsError`, or a non-finite state)."""


class Simulator(Protocol):
    model: mujoco.MjModel  # the compiled model this simulation steps: parameters are writable arrays
    data: mujoco.MjData
    obs_dim: int
    action_dim: int

    def reset(self) -> np.ndarray: ...

    def step(self, action: np.ndarray, obs_out: np.ndarray) -> tuple[float, bool]:
        """Write the next observation into `obs_out`; `(reward, terminated)`.

        Raises `SimulatorError` on instability (non-finite values are the caller's check).
        """
        ...

    def reseed(self, seed: int) -> None: ...

    def recompute_constants(self) -> None:
        """Re-derive the model's constants (`mj_setConst`) after its parameters changed."""
        ...


@contextlib.contextmanager
def _quiet_absl() -> Iterator[None]:
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


_INSTABILITY = (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL, mujoco.mjtWarning.mjWARN_BADQACC)


def _instability_warnings(data: mujoco.MjData) -> int:
    """How many times MuJoCo flagged this simulation as diverged (what dm_control checks too)."""
    return sum(data.warning[w].number for w in _INSTABILITY)


def set_const_keep_state(model: mujoco.MjModel, data: mujoco.MjData) -> None:
    """`mj_setConst` (model constants after a parameter change) without losing the current state.

    `mj_setConst` uses `data` as scratch at `qpos0`; dm_control's next `mj_step2` would then
    integrate from those stale quantities. So the full integration state is saved, restored and
    the derived quantities recomputed with `mj_forward`.
    """
    kind = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(model, kind))
    mujoco.mj_getState(model, data, state, kind)
    mujoco.mj_setConst(model, data)
    mujoco.mj_setState(model, data, state, kind)
    mujoco.mj_forward(model, data)


def child_seed(seed: int, index: int) -> int:
    """Independent, reproducible seed of sub-env `index` of a batch seeded `seed`."""
    return int(np.random.SeedSequence([int(seed) % 2**32, index]).generate_state(1)[0])


class DMControlSimulator:
    """A dm_control suite task (`suite.load(domain, task)`) with no time limit of its own."""

    def __init__(self, domain: str, task: str, seed: int) -> None:
        from dm_control import suite
        from dm_control.rl.control import PhysicsError

        self._physics_error = PhysicsError
        # The batched env owns the horizon, so the suite's own time limit is switched off.
        with _quiet_absl():  # walker's XML uses `settotalmass`: MuJoCo 3.17 warns on every load
            self.env = suite.load(domain, task, task_kwargs={"random": seed, "time_limit": float("inf")})
        self.physics = self.env.physics
        self.model, self.data = self.physics.model.ptr, self.physics.data.ptr
        self._slices: list[tuple[str, slice]] = []
        start = 0
        for key, spec in self.env.observation_spec().items():
            size = int(np.prod(spec.shape))
            self._slices.append((key, slice(start, start + size)))
            start += size
        self.obs_dim = start
        self.action_dim = int(self.env.action_spec().shape[0])

    def _flatten(self, observation: dict[str, np.ndarray], out: np.ndarray) -> None:
        for key, where in self._slices:
            out[where] = observation[key]

    def reset(self) -> np.ndarray:
        obs = np.empty(self.obs_dim)
        self._flatten(self.env.reset().observation, obs)
        return obs

    def step(self, action: np.ndarray, obs_out: np.ndarray) -> tuple[float, bool]:
        try:
            time_step = self.env.step(action)
        except self._physics_error as error:
            raise SimulatorError(str(error)) from error
        self._flatten(time_step.observation, obs_out)
        return time_step.reward, False

    def reseed(self, seed: int) -> None:
        # dm_control offers no public re-seed of a built task; its RandomState lives in `_random`.
        self.env.task._random = np.random.RandomState(seed)

    def recompute_constants(self) -> None:
        set_const_keep_state(self.model, self.data)


class GymSimulator:
    """A gymnasium MuJoCo env, unwrapped: the batched env owns the horizon and the checks."""

    def __init__(self, env_id: str, seed: int) -> None:
        import gymnasium

        self.env = gymnasium.make(env_id).unwrapped
        self.model, self.data = self.env.model, self.env.data
        self.obs_dim = int(self.env.observation_space.shape[0])
        self.action_dim = int(self.env.action_space.shape[0])
        self._next_seed: int | None = seed

    def reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=self._next_seed)
        self._next_seed = None  # seed once; later resets continue the env's own generator
        return obs

    def step(self, action: np.ndarray, obs_out: np.ndarray) -> tuple[float, bool]:
        warnings_before = _instability_warnings(self.data)
        obs, reward, terminated, _, _ = self.env.step(action)
        # MuJoCo silently resets a diverged simulation (and warns); gymnasium does not tell.
        if _instability_warnings(self.data) != warnings_before:
            raise SimulatorError("MuJoCo reported a non-finite or huge qpos/qvel/qacc")
        obs_out[:] = obs
        return reward, terminated

    def reseed(self, seed: int) -> None:
        self._next_seed = seed

    def recompute_constants(self) -> None:
        set_const_keep_state(self.model, self.data)
