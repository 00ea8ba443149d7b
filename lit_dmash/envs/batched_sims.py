"""A natively batched TorchRL env over several MuJoCo simulations.

Why not `DMControlEnv`/`GymEnv` inside a `SerialEnv`: TorchRL's per-call overhead (~0.2 ms per
sub-env step, tensordict building and spec checks) costs more than a MuJoCo step (30-140 us
here), so the stock wrappers run at 3-7x the raw simulator cost (`bench/env_throughput.py`).
This env keeps one `Simulator` per sub-env and steps them all inside a single `_step`, so the
TorchRL overhead is paid once per batch. `ParallelEnv` is slower still on 2 cores.

Subclasses decide what a context does: `_sim_actions` maps the policy's actions to the
simulators' (signs, permutations), `_before_reset` runs before sub-envs restart (e.g. a fresh
context). A simulation that becomes unstable (`PhysicsError`, MuJoCo's divergence warning, a
non-finite observation or reward) raises `SimulationFailure` naming the task, the sub-env, its
context and the episode step, and is counted in `sim_failures`: no transition is returned for
that step (there is no true next state), and the env must be reset before it steps again. The
module applies `on_nonfinite` to it (stop, or skip the step and log `train/sim_failures`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.envs import EnvBase

from lit_dmash.envs.simulators import SimulationFailure, Simulator, SimulatorError
from lit_dmash.envs.specs import set_contextual_specs

if TYPE_CHECKING:
    from lit_dmash.render import MujocoCamera


class BatchedSimEnv(EnvBase):
    """`len(sims)` MuJoCo simulations stepped in one TorchRL call; a context row per sub-env."""

    task_name = "mujoco"  # subclasses: the task's name, for `SimulationFailure` messages
    context_names: list[str] | None = None  # subclasses: names of the context columns, if known

    def __init__(
        self, sims: Sequence[Simulator], context_dim: int, horizon: int, device: torch.device | str = "cpu"
    ) -> None:
        num_envs = len(sims)
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self._sims = list(sims)
        self.horizon = horizon
        self.obs_dim, self.action_dim = sims[0].obs_dim, sims[0].action_dim
        set_contextual_specs(self, num_envs, context_dim)
        self._obs = np.zeros((num_envs, self.obs_dim))
        self._next_obs = np.zeros_like(self._obs)  # written by the simulators, then swapped in
        self._context = torch.zeros(num_envs, context_dim)
        self._t = np.zeros(num_envs, dtype=np.int64)
        self.sim_failures = 0
        self._cameras: dict[tuple[int, int, int, int], MujocoCamera] = {}  # built by `render` on first use

    @property
    def context(self) -> torch.Tensor:
        """The current (true) context of every sub-env, `[num_envs, context_dim]`."""
        return self._context

    @property
    def simulators(self) -> list[Simulator]:
        """The per-sub-env simulations (for tests and diagnostics; do not step them directly)."""
        return self._sims

    def _sim_actions(self, action: np.ndarray) -> np.ndarray:
        """The simulators' actions `[num_envs, action_dim]` for the policy's `action`."""
        return action

    def _before_reset(self, idx: list[int]) -> None:
        """Called with the sub-envs about to restart, before their simulators reset."""

    def _set_seed(self, seed: int | None) -> None:  # seeding happens at construction
        pass

    def _tensordict(self, **extra: torch.Tensor) -> TensorDictBase:
        source = {"observation": torch.from_numpy(self._obs).float(), "context": self._context.clone(), **extra}
        if self.device.type != "cpu":
            source = {key: value.to(self.device) for key, value in source.items()}
        # `_new_unsafe` skips per-entry validation (~60 us a call, half a cheetah step): every
        # entry here is built above with the batch size and device the specs declare.
        return TensorDict._new_unsafe(source, batch_size=self.batch_size, device=self.device)

    def _reset(self, tensordict: TensorDictBase | None, **kwargs) -> TensorDictBase:
        reset = tensordict.get("_reset", None) if tensordict is not None else None
        n = self.batch_size[0]
        idx = list(range(n)) if reset is None else reset.reshape(-1).nonzero().squeeze(-1).tolist()
        if idx:
            self._before_reset(idx)
            for i in idx:
                self._obs[i] = self._sims[i].reset()
                self._t[i] = 0
        not_done = torch.zeros(*self.batch_size, 1, dtype=torch.bool)
        return self._tensordict(done=not_done, terminated=not_done.clone(), truncated=not_done.clone())

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        sim_action = self._sim_actions(tensordict.get("action").detach().cpu().numpy())
        obs, raised, rewards, terminals = self._next_obs, {}, [], []
        # Python lists, not per-element numpy writes: ~1 us per sub-env less (the loop is the hot path).
        for i, (sim, act, row) in enumerate(zip(self._sims, sim_action, obs, strict=True)):
            try:
                r, term = sim.step(act, row)
            except SimulatorError as error:
                r, term = 0.0, False
                raised[i] = str(error).strip().splitlines()[0] if str(error).strip() else "unstable"
            rewards.append(r)
            terminals.append(term)
        reward = np.array(rewards, dtype=np.float64)
        self._t += 1
        if raised or not (np.isfinite(reward).all() and np.isfinite(obs).all()):
            self._fail(obs, reward, raised)
        if any(terminals):
            return self._step_tail(obs, reward, np.array(terminals, dtype=bool))
        # Common case, few ops: every small numpy/torch call costs ~10 us here, right after the
        # simulators have evicted the caches.
        self._obs, self._next_obs = obs, self._obs
        truncated = torch.from_numpy(self._t >= self.horizon).unsqueeze(-1)
        return self._tensordict(
            reward=torch.from_numpy(reward.astype(np.float32)).unsqueeze(-1),
            done=truncated.clone(),
            terminated=torch.zeros_like(truncated),
            truncated=truncated,
        )

    def _step_tail(self, obs: np.ndarray, reward: np.ndarray, terminated: np.ndarray) -> TensorDictBase:
        """A step where some sub-env terminated (the paper's tasks never do; gymnasium's may)."""
        reward, terminated = reward[:, None], terminated[:, None]
        self._obs, self._next_obs = obs, self._obs
        truncated = (self._t >= self.horizon)[:, None] & ~terminated
        return self._tensordict(
            reward=torch.from_numpy(reward.astype(np.float32)),
            done=torch.from_numpy(terminated | truncated),
            terminated=torch.from_numpy(terminated),
            truncated=torch.from_numpy(truncated),
        )

    def _fail(self, obs: np.ndarray, reward: np.ndarray, raised: dict[int, str]) -> None:
        """Raise `SimulationFailure` for the sub-envs that raised or produced non-finite values."""
        bad_obs = ~np.isfinite(obs).all(axis=1)
        bad_reward = ~np.isfinite(reward)
        why = dict(raised)
        for i in np.flatnonzero(bad_obs | bad_reward).tolist():
            why.setdefault(i, "non-finite observation" if bad_obs[i] else "non-finite reward")
        failed = sorted(why)
        self.sim_failures += len(failed)
        first = failed[0]
        more = f" (and sub-envs {failed[1:]})" if len(failed) > 1 else ""
        message = (
            f"simulation failed in task {self.task_name}, sub-env {first} (context {self.describe_context(first)})"
            f"{more}, episode step {int(self._t[first])}: {why[first]}"
        )
        raise SimulationFailure(message, failed)

    def describe_context(self, i: int) -> str:
        """Sub-env `i`'s context as `name=value, ...` (values alone when the columns have no names)."""
        values = [f"{v:.4g}" for v in self._context[i].tolist()]
        names = self.context_names
        if names is None or len(names) != len(values):
            return "[" + ", ".join(values) + "]"
        return ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True))

    def render(
        self, indices: Sequence[int] | None = None, width: int = 192, height: int = 144, camera: int = 0
    ) -> np.ndarray:
        """RGB frames `[n, H, W, 3]` uint8 of sub-envs `indices` (all by default), from the model's `camera`.

        MuJoCo's renderer, one `render.MujocoCamera` per sub-env and size, kept until `close`;
        the OpenGL backend is `render.gl_backend()`'s. Reads the simulations, never steps them.
        """
        from lit_dmash.render import MujocoCamera, sub_env_rows

        frames = []
        for i in sub_env_rows(indices, self.batch_size[0]):
            key = (i, width, height, camera)
            if key not in self._cameras:
                self._cameras[key] = MujocoCamera(self._sims[i].model, width, height, camera)
            frames.append(self._cameras[key].render(self._sims[i].data))
        return np.stack(frames)

    def close(self, *, raise_if_closed: bool = True) -> None:
        for camera in self._cameras.values():
            camera.close()
        self._cameras.clear()
        super().close(raise_if_closed=raise_if_closed)
