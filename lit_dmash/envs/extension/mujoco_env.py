"""The sign-pattern extension's batched MuJoCo env: a fresh context per episode.

The context of each sub-env is re-drawn at each of its resets and acts in two places:
- actuator signs and permutation: simulated actuator `i` receives `sign[i] * action[perm[i]]`;
  all these domains use plain motors with `ctrlrange [-1, 1]`, so this equals inverting the gear.
- continuous parameters: written into that sub-env's compiled `MjModel` (`MODEL_PARAMETERS`),
  then `mj_setConst` re-derives the dependent constants. The observation is never touched.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from lit_dmash.envs.batched_sims import BatchedSimEnv
from lit_dmash.envs.extension.contexts import ContextSampler, ContextSpace
from lit_dmash.envs.simulators import Simulator, child_seed
from lit_dmash.errors import ConfigError, check_int

MODEL_PARAMETERS: dict[str, tuple[tuple[str, int | None], ...]] = {
    # name -> the MjModel arrays (and column; None = all) it scales, relative to the XML defaults
    "mass_scale": (("body_mass", None), ("body_inertia", None)),
    "friction_scale": (("geom_friction", 0),),
    "gear_scale": (("actuator_gear", 0),),
}
"""Continuous context parameters a MuJoCo env may declare in its context space, as scales."""


class BatchedMujocoEnv(BatchedSimEnv):
    """`num_envs` MuJoCo simulations stepped in one TorchRL call; a context per sub-env and episode."""

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
        check_int("horizon", horizon)
        self.context_space = context_space
        self.task_name = context_space.env
        actuators = range(context_space.num_actuators)
        perm = [f"perm_{i}" for i in actuators] if context_space.permutation else []
        self.context_names = [*(f"sign_{i}" for i in actuators), *perm, *context_space.param_names]
        self.split_name = split
        self._split = context_space.split(split)
        sims = [make_simulator(child_seed(seed, i)) for i in range(num_envs)]
        if sims[0].action_dim != context_space.num_actuators:
            raise ConfigError(
                f"{context_space.env}.num_actuators",
                context_space.num_actuators,
                f"the simulator has {sims[0].action_dim}",
            )
        super().__init__(sims, context_space.dim, horizon, device)
        self._defaults = [
            {attr: np.array(getattr(sim.model, attr)) for attr, _ in self._param_fields()} for sim in self._sims
        ]
        self._signs = np.ones((num_envs, self.action_dim))
        self._perm = np.tile(np.arange(self.action_dim), (num_envs, 1))
        self._rows = np.arange(num_envs)[:, None]
        self._set_seed(seed)

    def _param_fields(self) -> list[tuple[str, int | None]]:
        return [field for name in self.context_space.param_names for field in MODEL_PARAMETERS[name]]

    @property
    def split_names(self) -> list[str]:
        """The context space's splits (train, eval_in, eval_out, eval_pattern by default)."""
        return self.context_space.split_names

    def _set_seed(self, seed: int | None) -> None:
        seed = 0 if seed is None else int(seed)
        self._sampler = ContextSampler(self._split, seed)
        for i, sim in enumerate(self._sims):
            sim.reseed(child_seed(seed, i))

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

    def _before_reset(self, idx: list[int]) -> None:
        contexts = self._sampler.sample(len(idx))
        for j, i in enumerate(idx):
            self._context[i] = contexts[j]
            self._apply_context(i, contexts[j])

    def _sim_actions(self, action: np.ndarray) -> np.ndarray:
        # Per-sub-env routing in numpy (a few us; torch ops cost ~10 us each at these sizes).
        if self.context_space.permutation:
            action = action[self._rows, self._perm]
        return np.clip(self._signs * action, -1.0, 1.0, dtype=np.float64)
