"""DI-Signs (`di_signs`): a batched, pure-torch double integrator with per-axis signs and friction.

Our own extension, not the paper's DI / DI-Friction (those are `lit_dmash.envs.torch_tasks`):
per-axis sign patterns, a fresh context per episode, an `eval_pattern` split.

Each sub-env is a point in `dims` dimensions (position `x`, velocity `v`) pushed by an action
`a in [-1, 1]^dims`. Per episode a hidden context draws a sign `s_i in {+1, -1}` per axis
(actuator inversion) and a friction coefficient `mu`:

    v' = v + dt * (s * g * a - mu * v)
    x' = x + dt * v'

Constants (defaults): `dt = 0.1`, gain `g = 2.0`, horizon 50 steps (5 s), start `x ~ U[-1, 1]^dims`
and `v = 0`, walls at `|x_i| = 5` (clamped, the velocity into the wall zeroed, which keeps a
policy that pushes the wrong way from diverging). Reward per step
`-||x'||_2 - 0.01 * ||a||^2`: zero is the best possible step.

A good controller exists in every context the default splits use (`mu in [0, 3]`): knowing `s`
and `mu`, the bang-bang/PD law `a = clip(-s * (k_p x + k_d v), -1, 1)` brings the point from the
farthest start (`||x|| = 1.41`) to the origin in about 2 s, since the top speed `g / mu` is at
least 0.67 and the top acceleration `g = 2`. That gives returns of roughly -8 to -15 per episode;
the same controller with a wrong sign pushes to the wall and scores about -200.

The episode ends by truncation only (`terminated` is always False). Every tensordict carries
`"observation"` (`[x, v]`, `2 * dims` floats) and `"context"` (`[s_1..s_dims, mu]`): the context
is for logging, diagnostics and the oracle baseline only.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.envs import EnvBase

from lit_dmash.envs.extension.contexts import ContextSampler, ContextSpace
from lit_dmash.envs.specs import set_contextual_specs
from lit_dmash.errors import ConfigError, check_positive


class DISignsEnv(EnvBase):
    """Batched double integrator; one context per sub-env, re-drawn at each of its resets."""

    def __init__(
        self,
        context_space: ContextSpace,
        split: str = "train",
        num_envs: int = 1,
        seed: int = 0,
        device: torch.device | str = "cpu",
        *,
        dt: float = 0.1,
        gain: float = 2.0,
        horizon: int = 50,
        arena: float = 5.0,
        action_cost: float = 0.01,
    ) -> None:
        if context_space.param_names != ("friction",):
            raise ConfigError("di_signs.params", list(context_space.param_names), "expected ['friction']")
        if context_space.permutation:
            raise ConfigError("di_signs.permutation", True, "DI-Signs supports sign patterns only (false)")
        for field, value in [
            ("num_envs", num_envs),
            ("dt", dt),
            ("gain", gain),
            ("horizon", horizon),
            ("arena", arena),
        ]:
            check_positive(field, value)
        check_positive("action_cost", action_cost, allow_zero=True)
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.context_space = context_space
        self.split_name = split
        self._split = context_space.split(split)
        self.dims = context_space.num_actuators
        self.dt, self.gain, self.horizon, self.arena, self.action_cost = dt, gain, horizon, arena, action_cost
        set_contextual_specs(self, num_envs, self.context_space.dim, 2 * self.dims, self.dims)
        self._pos = torch.zeros(num_envs, self.dims, device=self.device)
        self._vel = torch.zeros_like(self._pos)
        self._context = torch.zeros(num_envs, context_space.dim, device=self.device)
        self._t = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self._set_seed(seed)

    @property
    def split_names(self) -> list[str]:
        """The context space's splits (train, eval_in, eval_out, eval_pattern by default)."""
        return self.context_space.split_names

    def _set_seed(self, seed: int | None) -> None:
        # One generator per env drives both start states and contexts: same seed, same episodes.
        seed = 0 if seed is None else int(seed)
        self._sampler = ContextSampler(self._split, seed, self.device)
        self.generator = self._sampler.generator

    @property
    def context(self) -> torch.Tensor:
        """The current (true) context of every sub-env, `[num_envs, dims + 1]`."""
        return self._context

    def env_state(self) -> dict[str, torch.Tensor]:
        """Everything needed to continue the current episodes exactly (for checkpoints)."""
        return {
            "pos": self._pos.clone(),
            "vel": self._vel.clone(),
            "t": self._t.clone(),
            "context": self._context.clone(),
            "generator": self.generator.get_state(),
        }

    def load_env_state(self, state: dict[str, torch.Tensor]) -> None:
        self._pos, self._vel = state["pos"].to(self.device), state["vel"].to(self.device)
        self._t, self._context = state["t"].to(self.device), state["context"].to(self.device)
        self.generator.set_state(state["generator"])

    def _observation(self) -> torch.Tensor:
        return torch.cat([self._pos, self._vel], dim=-1)

    def _reset(self, tensordict: TensorDictBase | None, **kwargs) -> TensorDictBase:
        reset = tensordict.get("_reset", None) if tensordict is not None else None
        if reset is None:
            idx = torch.arange(self.batch_size[0], device=self.device)
        else:
            idx = reset.reshape(-1).nonzero().squeeze(-1)
        n = idx.numel()
        if n:
            self._pos[idx] = 2 * torch.rand(n, self.dims, generator=self.generator, device=self.device) - 1
            self._vel[idx] = 0.0
            self._t[idx] = 0
            self._context[idx] = self._sampler.sample(n)
        not_done = torch.zeros(*self.batch_size, 1, dtype=torch.bool, device=self.device)
        return TensorDict(
            observation=self._observation(),
            context=self._context.clone(),
            done=not_done,
            terminated=not_done.clone(),
            truncated=not_done.clone(),
            batch_size=self.batch_size,
            device=self.device,
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get("action").clamp(-1.0, 1.0)
        signs = self._context[:, : self.dims]
        friction = self._context[:, self.dims :]
        self._vel = self._vel + self.dt * (signs * self.gain * action - friction * self._vel)
        pos = self._pos + self.dt * self._vel
        hit_wall = pos.abs() > self.arena
        self._pos = pos.clamp(-self.arena, self.arena)
        self._vel = torch.where(hit_wall, torch.zeros_like(self._vel), self._vel)
        self._t += 1
        reward = -self._pos.norm(dim=-1, keepdim=True) - self.action_cost * action.pow(2).sum(-1, keepdim=True)
        truncated = (self._t >= self.horizon).unsqueeze(-1)
        return TensorDict(
            observation=self._observation(),
            context=self._context.clone(),
            reward=reward,
            done=truncated,
            terminated=torch.zeros_like(truncated),
            truncated=truncated,
            batch_size=self.batch_size,
            device=self.device,
        )
