"""Thin adapters over one MuJoCo simulation (a dm_control task or a gymnasium env).

`BatchedSimEnv` steps several of these inside one TorchRL `_step`. Each adapter exposes the
compiled `mujoco.MjModel` (to change physical parameters), `reset()` and `step()` returning flat
float64 observations, and `get_state()`/`set_state()` (physics, RNG, and the model fields a task
changes per episode) so a checkpointed run continues bit-identically. They are deliberately not
TorchRL envs: TorchRL's per-call overhead (~0.2 ms) is larger than a MuJoCo step, so batching
happens one level up.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any, Protocol

import mujoco
import numpy as np


class SimulatorError(RuntimeError):
    """The simulation became unstable (dm_control's `PhysicsError`, or a non-finite state)."""


class SimulationFailure(RuntimeError):
    """A batched step met an unstable simulation; the message names the task, sub-env, context and step.

    Raised instead of returning a transition: there is no true next state to store, and a made-up
    one (reward 0, the last observation) would be learnt from as if the simulator had produced it.
    The collector turns it into `on_nonfinite` handling; the env must be reset before stepping again.
    """

    def __init__(self, message: str, sub_envs: list[int]) -> None:
        super().__init__(message)
        self.sub_envs = sub_envs
        self.seed_index: int | None = None  # set by `SeedEnvs.step`: which seed's env failed


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

    def get_state(self) -> dict[str, np.ndarray]: ...

    def set_state(self, state: dict[str, np.ndarray]) -> None: ...


@contextlib.contextmanager
def quiet_absl() -> Iterator[None]:
    """Silence absl warnings (walker's XML uses `settotalmass`: MuJoCo 3.17 warns on every load)."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


_BADQPOS = int(mujoco.mjtWarning.mjWARN_BADQPOS)
_BADQVEL = int(mujoco.mjtWarning.mjWARN_BADQVEL)
_BADQACC = int(mujoco.mjtWarning.mjWARN_BADQACC)
_INTEGRATION = mujoco.mjtState.mjSTATE_INTEGRATION


def _instability_warnings(data: mujoco.MjData) -> int:
    """How many times MuJoCo flagged this simulation as diverged (what dm_control checks too)."""
    counts = data.warning.number  # one array read: ~2 us, a third of indexing each warning
    return int(counts[_BADQPOS] + counts[_BADQVEL] + counts[_BADQACC])


def get_physics_state(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """The full integration state (qpos, qvel, act, warm start, ctrl, time, ...)."""
    state = np.empty(mujoco.mj_stateSize(model, _INTEGRATION))
    mujoco.mj_getState(model, data, state, _INTEGRATION)
    return state


def set_physics_state(model: mujoco.MjModel, data: mujoco.MjData, state: np.ndarray) -> None:
    """Restore an integration state and the quantities derived from it.

    `mj_forward` recomputes positions, velocities and contacts (what the next step and the
    observation read); the state is written again afterwards so the solver's warm start is
    exactly the saved one, whatever `mj_forward` left there.
    """
    mujoco.mj_setState(model, data, state, _INTEGRATION)
    mujoco.mj_forward(model, data)
    mujoco.mj_setState(model, data, state, _INTEGRATION)


def set_const_keep_state(model: mujoco.MjModel, data: mujoco.MjData) -> None:
    """`mj_setConst` (model constants after a parameter change) without losing the current state.

    `mj_setConst` uses `data` as scratch at `qpos0`; dm_control's next `mj_step2` would then
    integrate from those stale quantities. So the full integration state is saved, restored and
    the derived quantities recomputed with `mj_forward`.
    """
    state = get_physics_state(model, data)
    mujoco.mj_setConst(model, data)
    mujoco.mj_setState(model, data, state, _INTEGRATION)
    mujoco.mj_forward(model, data)


def child_seed(seed: int, index: int) -> int:
    """Independent, reproducible seed of sub-env `index` of a batch seeded `seed`."""
    return int(np.random.SeedSequence([int(seed) % 2**32, index]).generate_state(1)[0])


def random_state_arrays(rng: np.random.RandomState) -> dict[str, np.ndarray]:
    """A legacy numpy RandomState as plain arrays (MT19937 keys, position, cached Gaussian)."""
    _, keys, pos, has_gauss, gauss = rng.get_state()
    return {"mt_keys": keys.astype(np.int64), "mt_pos": np.array(pos), "gauss": np.array([has_gauss, gauss])}


def load_random_state(rng: np.random.RandomState, state: dict[str, np.ndarray]) -> None:
    has_gauss, gauss = state["gauss"]
    rng.set_state(("MT19937", state["mt_keys"].astype(np.uint32), int(state["mt_pos"]), int(has_gauss), float(gauss)))


def generator_arrays(rng: np.random.Generator) -> np.ndarray:
    """A PCG64 numpy Generator as 6 int64 words (128-bit state and increment as 32-bit chunks)."""
    state = rng.bit_generator.state
    words = [(state["state"][part] >> (32 * i)) & 0xFFFFFFFF for part in ("state", "inc") for i in range(4)]
    return np.array([*words, state["has_uint32"], state["uinteger"]], dtype=np.int64)


def load_generator(rng: np.random.Generator, words: np.ndarray) -> None:
    words = [int(w) for w in words]
    state, inc = (sum(words[4 * p + i] << (32 * i) for i in range(4)) for p in range(2))
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": state, "inc": inc},
        "has_uint32": words[8],
        "uinteger": words[9],
    }


class DMControlSimulator:
    """A dm_control `control.Environment` without a time limit of its own (the batch owns it).

    `sort_keys=True` flattens the observation dict in sorted key order (gymnasium's
    `FlattenObservation`, as the paper's tasks use); False keeps the task's own order.
    """

    def __init__(self, env: Any, *, sort_keys: bool = False) -> None:
        from dm_control.rl.control import PhysicsError

        self._physics_error = PhysicsError
        self.env = env
        self.physics = env.physics
        self.model, self.data = self.physics.model.ptr, self.physics.data.ptr
        spec = env.observation_spec()
        self._slices: list[tuple[str, slice]] = []
        start = 0
        for key in sorted(spec) if sort_keys else spec:
            size = int(np.prod(spec[key].shape))
            self._slices.append((key, slice(start, start + size)))
            start += size
        self.obs_dim = start
        self.action_dim = int(env.action_spec().shape[0])

    @classmethod
    def from_suite(cls, domain: str, task: str, seed: int) -> DMControlSimulator:
        """`suite.load(domain, task)` seeded `seed`, in the task's own observation order."""
        from dm_control import suite

        with quiet_absl():
            env = suite.load(domain, task, task_kwargs={"random": seed, "time_limit": float("inf")})
        return cls(env)

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
            raise SimulatorError(f"PhysicsError: {error}") from error
        self._flatten(time_step.observation, obs_out)
        return time_step.reward, False

    def reseed(self, seed: int) -> None:
        # dm_control offers no public re-seed of a built task; its RandomState lives in `_random`.
        self.env.task._random = np.random.RandomState(seed)

    def recompute_constants(self) -> None:
        set_const_keep_state(self.model, self.data)

    def get_state(self) -> dict[str, np.ndarray]:
        # geom_pos/geom_size: tasks may move geoms per episode (reacher's target).
        return {
            "physics": get_physics_state(self.model, self.data),
            "geom_pos": self.model.geom_pos.copy(),
            "geom_size": self.model.geom_size.copy(),
            **random_state_arrays(self.env.task.random),
        }

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.model.geom_pos[:] = state["geom_pos"]
        self.model.geom_size[:] = state["geom_size"]
        load_random_state(self.env.task.random, state)
        set_physics_state(self.model, self.data, state["physics"])


class GymSimulator:
    """A gymnasium MuJoCo env, unwrapped: the batched env owns the horizon and the checks.

    The first `reset()` after `reseed(seed)` seeds the env's generator; later resets continue it.
    """

    def __init__(self, env: Any, seed: int | None) -> None:
        self.env = env
        self.model, self.data = self.env.model, self.env.data
        self.obs_dim = int(self.env.observation_space.shape[0])
        self.action_dim = int(self.env.action_space.shape[0])
        self._next_seed: int | None = seed

    @classmethod
    def from_id(cls, env_id: str, seed: int, **kwargs: Any) -> GymSimulator:
        import gymnasium

        return cls(gymnasium.make(env_id, **kwargs).unwrapped, seed)

    def reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=self._next_seed)
        self._next_seed = None  # seed once; later resets continue the env's own generator
        return obs

    def step(self, action: np.ndarray, obs_out: np.ndarray) -> tuple[float, bool]:
        warnings_before = _instability_warnings(self.data)
        obs, reward, terminated, _, _ = self.env.step(action)
        # MuJoCo silently resets a diverged simulation (and warns); gymnasium does not tell.
        if _instability_warnings(self.data) != warnings_before:
            raise SimulatorError("MuJoCo warned of a non-finite or huge qpos/qvel/qacc (and reset the simulation)")
        obs_out[:] = obs
        return reward, terminated

    def reseed(self, seed: int) -> None:
        self._next_seed = seed

    def recompute_constants(self) -> None:
        set_const_keep_state(self.model, self.data)

    def get_state(self) -> dict[str, np.ndarray]:
        return {
            "physics": get_physics_state(self.model, self.data),
            "generator": generator_arrays(self.env.np_random),
            "next_seed": np.array(-1 if self._next_seed is None else self._next_seed),
        }

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        load_generator(self.env.np_random, state["generator"])
        next_seed = int(state["next_seed"])
        self._next_seed = None if next_seed < 0 else next_seed
        set_physics_state(self.model, self.data, state["physics"])
