"""The paper's pure-torch tasks, natively batched: DI, DI-Perm, DI-Friction, ODE and ODE-k.

One `EnvBase` steps all sub-envs with a handful of tensor ops, so TorchRL's per-call overhead is
paid once per batch (>= 1M steps/s at 1024 envs on one CPU thread, `bench/env_throughput.py`).
Sub-env i keeps its context (row i % C of its split) for the whole run.

The arithmetic follows the authors' numpy code operation by operation, in the same precision
(DI in float32 with float32 constants, ODE in float64), so a transition equals theirs for the
same state, action and context:

- DI (`dmash/DI-sparse-v0`, friction 0) / DI-Friction (`dmash/DI-friction-sparse-v0`): dt = 0.1,
  force = clip(a * action_factor, -1, 1); position += velocity * dt (the old velocity); velocity =
  velocity * (1 - dt * friction / mass) + force / mass * dt; both clipped to [-1, 1]; reward 1 iff
  ||position|| <= 0.1 after the step. A reset puts the point at rest, each coordinate uniform on
  |c| > 0.8 (the authors redraw a uniform [-1, 1)^2 point until both |c| > 0.8; drawing each
  coordinate directly from that set is the same distribution). DI-Perm (the paper's v2 task,
  absent from the authors' code, defined from the paper's text): DI whose binary key
  `action_order` (+1 identity, -1 swapped) swaps the two action dimensions instead of a sign.
- ODE (`dmash/ODE-v0`) / ODE-k (`dmash/ODE-{k}-v0`): alpha = a0 + i a1, xdot = Re(sum_j c_j
  alpha^(j+1)) (powers multiplied as CPython's complex power does), x += 0.01 xdot clipped to
  +-20; reward by bands of |x| after the step; a reset draws x ~ U[-1, 1).

Reset streams: with `"shared"` (the authors' setting: every sub-env is reset with the run seed)
the k-th episode of every sub-env starts from the k-th draw of one stream, partial resets
included; `"independent"` draws a fresh start per sub-env and reset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.envs import EnvBase

from lit_dmash.envs.specs import set_contextual_specs
from lit_dmash.envs.task_contexts import SPLITS, TaskSpec

_DT32 = torch.tensor(0.1, dtype=torch.float32)  # the authors' dt as float32 arrays see it
_GOAL32 = torch.tensor(0.1, dtype=torch.float32)  # goal_threshold, compared in float32 as numpy does
_ABOVE_08 = torch.nextafter(torch.tensor(0.8), torch.tensor(1.0)).item()  # smallest float32 start coordinate
_ODE_BANDS = torch.tensor([0.05, 0.1, 0.2, 0.5, 2.0], dtype=torch.float64)
_ODE_BAND_REWARDS = torch.tensor([1.0, 0.5, 1.0 / 3.0, 0.25, 0.05, 0.0], dtype=torch.float32)


class TorchTaskEnv(EnvBase):
    """Shared by the torch tasks: fixed contexts, reset streams, specs, tensordicts, state."""

    obs_dim: int
    action_dim: int
    start_dim: int
    start_dtype: torch.dtype

    def __init__(
        self,
        task: TaskSpec,
        contexts: torch.Tensor,
        split: str,
        num_envs: int,
        seed: int,
        device: torch.device | str = "cpu",
        *,
        horizon: int | None = None,
        reset_streams: str = "shared",
    ) -> None:
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.task, self.split, self.seed, self.reset_streams = task, split, seed, reset_streams
        self.context_names, self.split_names = task.context_names, list(SPLITS)
        self.horizon = task.horizon if horizon is None else horizon
        self.contexts = contexts.to(torch.float64)
        rows = torch.arange(num_envs) % contexts.shape[0]
        self._ctx64 = self.contexts[rows].to(self.device)
        self._ctx32 = self._ctx64.float()
        self._t = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self._episode = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self._bank = torch.zeros(0, self.start_dim, dtype=self.start_dtype, device=self.device)
        self._bank_first = 0  # episode index of the bank's first row
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        set_contextual_specs(self, num_envs, len(self.context_names))
        self._setup()

    # ----------------------------------------------------------------- task hooks
    def _setup(self) -> None:
        """Per-sub-env constants from `self._ctx64`, and the state tensors."""
        raise NotImplementedError

    def _draw_starts(self, n: int) -> torch.Tensor:
        """`n` start states `[n, start_dim]` from `self.generator`."""
        raise NotImplementedError

    def _apply_starts(self, idx: torch.Tensor | slice, starts: torch.Tensor) -> None:
        raise NotImplementedError

    def _observation(self) -> torch.Tensor:
        raise NotImplementedError

    def _advance(self, action: torch.Tensor) -> torch.Tensor:
        """One transition of every sub-env; the reward `[num_envs, 1]` (float32)."""
        raise NotImplementedError

    def _state_tensors(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # ----------------------------------------------------------------- EnvBase
    def _set_seed(self, seed: int | None) -> None:  # seeded at construction, like the authors' envs
        pass

    def _starts(self, idx: torch.Tensor | slice) -> torch.Tensor:
        episodes = self._episode[idx]
        if self.reset_streams == "independent":
            starts = self._draw_starts(episodes.numel())
        else:  # the k-th episode of every sub-env starts from draw k of one stream
            need = int(episodes.max()) + 1 - self._bank_first
            while self._bank.shape[0] < need:  # one draw per episode index, in order
                self._bank = torch.cat([self._bank, self._draw_starts(1)])
            starts = self._bank[episodes - self._bank_first]
        self._episode[idx] += 1
        lowest = int(self._episode.min())
        if lowest > self._bank_first:  # no sub-env will ask for these draws again
            self._bank = self._bank[lowest - self._bank_first :]
            self._bank_first = lowest
        return starts

    def _tensordict(self, **extra: torch.Tensor) -> TensorDictBase:
        source = {"observation": self._observation(), "context": self._ctx32, **extra}
        return TensorDict._new_unsafe(source, batch_size=self.batch_size, device=self.device)

    def _reset(self, tensordict: TensorDictBase | None, **kwargs) -> TensorDictBase:
        reset = tensordict.get("_reset", None) if tensordict is not None else None
        idx: torch.Tensor | slice = slice(None)
        if reset is not None and not bool(reset.all()):
            idx = reset.reshape(-1).nonzero().squeeze(-1)
        if isinstance(idx, slice) or idx.numel():
            self._apply_starts(idx, self._starts(idx))
            self._t[idx] = 0
        not_done = torch.zeros(*self.batch_size, 1, dtype=torch.bool, device=self.device)
        return self._tensordict(done=not_done, terminated=not_done.clone(), truncated=not_done.clone())

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        reward = self._advance(tensordict.get("action"))
        self._t += 1
        truncated = (self._t >= self.horizon).unsqueeze(-1)
        return self._tensordict(
            reward=reward, done=truncated, terminated=torch.zeros_like(truncated), truncated=truncated
        )

    # ----------------------------------------------------------------- checkpoints
    def env_state(self) -> dict[str, Any]:
        """Everything needed to continue the running episodes exactly (plain tensors and ints)."""
        return {
            **{key: value.clone() for key, value in self._state_tensors().items()},
            "t": self._t.clone(),
            "episode": self._episode.clone(),
            "bank": self._bank.clone(),
            "bank_first": self._bank_first,
            "generator": self.generator.get_state(),
        }

    def load_env_state(self, state: dict[str, Any]) -> None:
        for key, value in self._state_tensors().items():
            value.copy_(state[key])
        self._t.copy_(state["t"])
        self._episode.copy_(state["episode"])
        self._bank = state["bank"].to(self.device, self.start_dtype, copy=True)
        self._bank_first = int(state["bank_first"])
        self.generator.set_state(state["generator"])


class DoubleIntegratorEnv(TorchTaskEnv):
    """DI, DI-Perm and DI-Friction: a 2-D point with sparse goal reward (see the module docstring)."""

    obs_dim, action_dim, start_dim, start_dtype = 4, 2, 2, torch.float32

    def _setup(self) -> None:
        ctx = {name: self._ctx64[:, j : j + 1] for j, name in enumerate(self.context_names)}
        mass = ctx["mass"]
        friction = ctx.get("friction", torch.zeros_like(mass))
        self._mass32 = mass.float()
        self._damping32 = (1 - 0.1 * friction / mass).float()  # a float64 scalar per env, as in numpy
        self._sign32 = ctx["action_factor"].float() if "action_factor" in ctx else None
        self._swap = (ctx["action_order"] < 0) if "action_order" in ctx else None
        n = self.batch_size[0]
        self._pos = torch.zeros(n, 2, device=self.device)
        self._vel = torch.zeros(n, 2, device=self.device)
        self._last_action = self._last_force = torch.zeros(n, 2, device=self.device)  # for `render` only

    def _draw_starts(self, n: int) -> torch.Tensor:
        u = torch.rand(n, 2, generator=self.generator, device=self.device)  # sign from u < 0.5, size from the rest
        magnitude = 1.0 - 0.2 * torch.where(u < 0.5, 2 * u, 2 * u - 1)  # uniform on (0.8, 1]
        magnitude = magnitude.clamp_min(_ABOVE_08)  # |c| > 0.8 also after float32 rounding
        return torch.where(u < 0.5, -magnitude, magnitude)

    def _apply_starts(self, idx: torch.Tensor | slice, starts: torch.Tensor) -> None:
        self._pos[idx] = starts
        self._vel[idx] = 0.0

    def _observation(self) -> torch.Tensor:
        return torch.cat([self._pos, self._vel], dim=-1)

    def _advance(self, action: torch.Tensor) -> torch.Tensor:
        self._last_action = action
        if self._swap is not None:
            action = torch.where(self._swap, action.flip(-1), action)
        if self._sign32 is not None:
            action = action * self._sign32
        force = action.clamp(-1.0, 1.0)
        self._last_force = force
        pos = self._pos + self._vel * _DT32
        vel = self._vel * self._damping32 + force / self._mass32 * _DT32
        self._pos, self._vel = pos.clamp(-1.0, 1.0), vel.clamp(-1.0, 1.0)
        p = self._pos
        distance = (p[:, :1] * p[:, :1] + p[:, 1:] * p[:, 1:]).sqrt()
        return (distance <= _GOAL32).float()

    def _state_tensors(self) -> dict[str, torch.Tensor]:
        return {"position": self._pos, "velocity": self._vel}

    def render(self, indices: Sequence[int] | None = None, width: int = 192, height: int = 144) -> np.ndarray:
        """RGB frames `[n, H, W, 3]` uint8 of sub-envs `indices` (all by default): `render.draw_double_integrator`.

        The arrows are the last step's action and force (none right after a reset).
        """
        from lit_dmash.render import draw_double_integrator, sub_env_rows

        rows = sub_env_rows(indices, self.batch_size[0])
        moved = (self._t[rows] > 0).unsqueeze(-1).cpu()
        pos = self._pos[rows].cpu()
        action = (self._last_action[rows].cpu() * moved).tolist()
        force = (self._last_force[rows].cpu() * moved).tolist()
        notes = [self._context_note(i) for i in rows]
        frames = [
            draw_double_integrator(p, a, f, width, height, note)
            for p, a, f, note in zip(pos.tolist(), action, force, notes, strict=True)
        ]
        return np.stack(frames)

    def _context_note(self, i: int) -> str:
        """What sub-env `i`'s binary key does to the action: "inverted", "swapped" or nothing."""
        if self._sign32 is not None and float(self._sign32[i]) < 0:
            return "inverted"
        if self._swap is not None and bool(self._swap[i]):
            return "swapped"
        return ""


def complex_power_real_parts(re: torch.Tensor, im: torch.Tensor, k: int) -> list[torch.Tensor]:
    """Re(alpha^n) for n = 1..k, alpha = re + i im, multiplied in CPython's order (binary powers)."""
    squares = [(re, im)]  # alpha^(2^b)
    while 2 ** len(squares) <= k:
        r, i = squares[-1]
        squares.append((r * r - i * i, r * i + i * r))
    parts = []
    for n in range(1, k + 1):
        acc = None
        for bit, (r, i) in enumerate(squares):
            if n >> bit & 1:
                acc = (r, i) if acc is None else (acc[0] * r - acc[1] * i, acc[0] * i + acc[1] * r)
        parts.append(acc[0])
    return parts


class ComplexODEEnv(TorchTaskEnv):
    """ODE and ODE-k: a scalar state driven by a complex polynomial of the action."""

    obs_dim, action_dim, start_dim, start_dtype = 1, 2, 1, torch.float64

    def _setup(self) -> None:
        self._x = torch.zeros(self.batch_size[0], 1, dtype=torch.float64, device=self.device)
        self._coefficients = self._ctx64.unbind(-1)
        self._bands, self._band_rewards = _ODE_BANDS.to(self.device), _ODE_BAND_REWARDS.to(self.device)

    def _draw_starts(self, n: int) -> torch.Tensor:
        return torch.rand(n, 1, dtype=torch.float64, generator=self.generator, device=self.device) * 2 - 1

    def _apply_starts(self, idx: torch.Tensor | slice, starts: torch.Tensor) -> None:
        self._x[idx] = starts

    def _observation(self) -> torch.Tensor:
        return self._x.float()

    def _advance(self, action: torch.Tensor) -> torch.Tensor:
        action = action.double()
        parts = complex_power_real_parts(action[:, 0], action[:, 1], len(self._coefficients))
        xdot = self._coefficients[0] * parts[0]
        for c, part in zip(self._coefficients[1:], parts[1:], strict=True):
            xdot = xdot + c * part
        self._x = (self._x + (xdot * 0.01).unsqueeze(-1)).clamp(-20.0, 20.0)
        return self._band_rewards[torch.bucketize(self._x.abs(), self._bands, right=True)]

    def _state_tensors(self) -> dict[str, torch.Tensor]:
        return {"x": self._x}

    def render(self, indices: Sequence[int] | None = None, width: int = 192, height: int = 144) -> np.ndarray:
        """RGB frames `[n, H, W, 3]` uint8 of sub-envs `indices` (all by default): `render.draw_ode`."""
        from lit_dmash.render import draw_ode, sub_env_rows

        rows = sub_env_rows(indices, self.batch_size[0])
        return np.stack([draw_ode(x, width, height) for x in self._x[rows, 0].tolist()])
