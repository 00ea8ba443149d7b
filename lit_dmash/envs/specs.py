"""The TorchRL specs every paper env shares: `observation` and `context` side by side, actions in [-1, 1]."""

from __future__ import annotations

import torch
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase


def set_contextual_specs(
    env: EnvBase, n: int, context_dim: int, obs_dim: int | None = None, action_dim: int | None = None
) -> None:
    """Specs of `n` sub-envs: `observation [n, obs_dim]`, `context [n, context_dim]` (what only the
    context-aware arms read), a normalised action, a reward and done / terminated / truncated."""
    device = env.device
    obs_dim = env.obs_dim if obs_dim is None else obs_dim
    action_dim = env.action_dim if action_dim is None else action_dim
    env.observation_spec = Composite(
        observation=Unbounded(shape=(n, obs_dim), device=device),
        context=Unbounded(shape=(n, context_dim), device=device),
        shape=(n,),
        device=device,
    )
    env.action_spec = Bounded(low=-1.0, high=1.0, shape=(n, action_dim), device=device)
    env.reward_spec = Unbounded(shape=(n, 1), device=device)
    done = Categorical(2, shape=(n, 1), dtype=torch.bool, device=device)
    env.done_spec = Composite(done=done, terminated=done.clone(), truncated=done.clone(), shape=(n,), device=device)
