"""A natively batched TorchRL env over several MuJoCo simulations, with AIB contexts.

Why not `DMControlEnv`/`GymEnv` inside a `SerialEnv`: TorchRL's per-call overhead (~0.2 ms per
sub-env step, tensordict building and spec checks) costs more than a MuJoCo step (30-140 us
here), so the stock wrappers run at 3-7x the raw simulator cost (`bench/env_throughput.py`).
This env keeps one `Simulator` per sub-env and steps them all inside a single `_step`, so the
TorchRL overhead is paid once per batch. `ParallelEnv` is slower still on 2 cores.

The context of each sub-env is re-drawn at each of its resets and acts in two places:
- actuator signs and permutation: simulated actuator `i` receives `sign[i] * action[perm[i]]`;
  all AIB domains use plain motors with `ctrlrange [-1, 1]`, so this equals inverting the gear.
- continuous parameters: written into that sub-env's compiled `MjModel` (`MODEL_PARAMETERS`),
  then `mj_setConst` re-derives the dependent constants. The observation is never touched.

A simulation that becomes unstable (`PhysicsError`, non-finite observation or reward) ends its
episode (truncated; the last finite observation is kept) and is counted in `sim_failures`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from lit_dmash.envs.contexts import ContextSampler, ContextSpace
from lit_dmash.envs.simulators import Simulator, SimulatorError, child_seed
from lit_dmash.errors import ConfigError

MODEL_PARAMETERS: dict[str, tuple[tuple[str, int | None], ...]] = {
    # name -> the MjModel arrays (and column; None = all) it scales, relative to the XML defaults
    "mass_scale": (("body_mass", None), ("body_inertia", None)),
    "friction_scale": (("geom_friction", 0),),
    "gear_scale": (("actuator_gear", 0),),
}
"""Continuous context parameters a MuJoCo env may declare in its context space, as scales."""


class BatchedMujocoEnv(EnvBase):
    """`num_envs` MuJoCo simulations stepped in one TorchRL call; one context per sub-env."""

    def __init__(
        self,
        context_space: ContextSpace,
        make_simulator: Callable[[int], Simulator],
        split: str = "train",
        num_envs: int = 1,
        seed: int = 0,
        device: torch.device | str = "cpu",
        *,
        horizon: int = 1000,
    ) -> None:
        unknown = [p for p in context_space.param_names if p not in MODEL_PARAMETERS]
        if unknown:
            raise ConfigError(
                f"{context_space.env}.params", unknown[0], f"expected names from {list(MODEL_PARAMETERS)}"
            )
        if not isinstance(horizon, int) or horizon < 1:
            raise ConfigError("horizon", horizon, "expected an integer > 0")
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.context_space = context_space
        self.split_name = split
        self._split = context_space.split(split)
        self.horizon = horizon
        self._sims = [make_simulator(child_seed(seed, i)) for i in range(num_envs)]
        first = self._sims[0]
        if first.action_dim != context_space.num_actuators:
            raise ConfigError(
                f"{context_space.env}.num_actuators",
                context_space.num_actuators,
                f"the simulator has {first.action_dim}",
            )
        self.obs_dim, self.action_dim = first.obs_dim, first.action_dim
        self._defaults = [
            {attr: np.array(getattr(sim.model, attr)) for attr, _ in self._param_fields()} for sim in self._sims
        ]
        self._make_specs(num_envs)
        self._obs = np.zeros((num_envs, self.obs_dim))
        self._next_obs = np.zeros_like(self._obs)  # written by the simulators, then swapped in
        self._context = torch.zeros(num_envs, context_space.dim)
        self._signs = np.ones((num_envs, self.action_dim))
        self._perm = np.tile(np.arange(self.action_dim), (num_envs, 1))
        self._rows = np.arange(num_envs)[:, None]
        self._t = np.zeros(num_envs, dtype=np.int64)
        self.sim_failures = 0
        self._set_seed(seed)

    def _param_fields(self) -> list[tuple[str, int | None]]:
        return [field for name in self.context_space.param_names for field in MODEL_PARAMETERS[name]]

    def _make_specs(self, n: int) -> None:
        self.observation_spec = Composite(
            observation=Unbounded(shape=(n, self.obs_dim), device=self.device),
            context=Unbounded(shape=(n, self.context_space.dim), device=self.device),
            shape=(n,),
            device=self.device,
        )
        self.action_spec = Bounded(low=-1.0, high=1.0, shape=(n, self.action_dim), device=self.device)
        self.reward_spec = Unbounded(shape=(n, 1), device=self.device)
        done = Categorical(2, shape=(n, 1), dtype=torch.bool, device=self.device)
        self.done_spec = Composite(
            done=done, terminated=done.clone(), truncated=done.clone(), shape=(n,), device=self.device
        )

    def _set_seed(self, seed: int | None) -> None:
        seed = 0 if seed is None else int(seed)
        self._sampler = ContextSampler(self._split, seed)
        for i, sim in enumerate(self._sims):
            sim.reseed(child_seed(seed, i))

    @property
    def context(self) -> torch.Tensor:
        """The current (true) context of every sub-env, `[num_envs, context_dim]`."""
        return self._context

    @property
    def simulators(self) -> list[Simulator]:
        """The per-sub-env simulations (for tests and diagnostics; do not step them directly)."""
        return self._sims

    def set_contexts(self, contexts: torch.Tensor) -> None:
        """Impose `contexts` `[num_envs, context_dim]` now, without resetting the simulations.

        For tests and diagnostics (e.g. the same state under two sign patterns); training draws
        contexts at resets only.
        """
        if contexts.shape != self._context.shape:
            raise ValueError(f"expected contexts of shape {tuple(self._context.shape)}, got {tuple(contexts.shape)}")
        self._context = contexts.to("cpu", torch.float32, copy=True)
        for i, context in enumerate(self._context):
            self._apply_context(i, context)

    def _apply_context(self, i: int, context: torch.Tensor) -> None:
        num_act, offset = self.action_dim, self.context_space.param_offset
        self._signs[i] = context[:num_act].numpy()
        if self.context_space.permutation:
            self._perm[i] = context[num_act : 2 * num_act].long().numpy()
        if not self.context_space.param_names:
            return
        sim, defaults = self._sims[i], self._defaults[i]
        for k, name in enumerate(self.context_space.param_names):
            scale = float(context[offset + k])
            for attr, column in MODEL_PARAMETERS[name]:
                target = getattr(sim.model, attr)
                if column is None:
                    target[...] = defaults[attr] * scale
                else:
                    target[:, column] = defaults[attr][:, column] * scale
        sim.recompute_constants()

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
            contexts = self._sampler.sample(len(idx))
            for j, i in enumerate(idx):
                self._context[i] = contexts[j]
                self._apply_context(i, contexts[j])
                self._obs[i] = self._sims[i].reset()
                self._t[i] = 0
        not_done = torch.zeros(*self.batch_size, 1, dtype=torch.bool)
        return self._tensordict(done=not_done, terminated=not_done.clone(), truncated=not_done.clone())

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get("action").detach().cpu().numpy()
        # Per-sub-env routing in numpy (a few us; torch ops cost ~10 us each at these sizes).
        if self.context_space.permutation:
            action = action[self._rows, self._perm]
        sim_action = np.clip(self._signs * action, -1.0, 1.0, dtype=np.float64)
        obs, raised = self._next_obs, []
        reward, terminated = np.zeros((self.batch_size[0], 1)), np.zeros((self.batch_size[0], 1), dtype=bool)
        for i, sim in enumerate(self._sims):
            try:
                reward[i, 0], terminated[i, 0] = sim.step(sim_action[i], obs[i])
            except SimulatorError:
                raised.append(i)
        # One finiteness check for the whole batch; a failed sub-env keeps its last finite observation.
        failed = ~(np.isfinite(obs).all(axis=1, keepdims=True) & np.isfinite(reward))
        failed[raised] = True
        if failed.any():
            rows = failed[:, 0]
            obs[rows] = self._obs[rows]
            reward[failed], terminated[failed] = 0.0, False
            self.sim_failures += int(failed.sum())
        self._obs, self._next_obs = obs, self._obs
        self._t += 1
        truncated = ((self._t >= self.horizon)[:, None] | failed) & ~terminated
        return self._tensordict(
            reward=torch.from_numpy(reward.astype(np.float32)),
            done=torch.from_numpy(terminated | truncated),
            terminated=torch.from_numpy(terminated),
            truncated=torch.from_numpy(truncated),
        )
