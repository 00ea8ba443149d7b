"""The window of recent transitions a context encoder reads, kept as part of the observation.

`TransitionHistory` adds `"history"` (`[*batch, K, entry_dim]`, oldest first) and
`"history_mask"` (`[*batch, K]`, True where an entry exists) to every tensordict. An entry is
`(o_t, a_t, o_{t+1} - o_t)`. The window at time t holds the transitions *before* t of the current
episode: it never sees the future and is emptied at every (partial) reset, so it never crosses
an episode boundary.

It is stateless (the window travels in the tensordict, like any observation), so batched envs,
partial resets and the collector's auto-reset need nothing special. The window is stored with
each transition in the replay buffer; the window at t+1 is not stored but derived with
`shift_window`, which is exactly what this transform computes at the next step.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torchrl.data import Categorical, Composite, Unbounded
from torchrl.envs import Transform


def transition_entry(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """One window entry `(o, a, o' - o)`."""
    return torch.cat([obs, action, next_obs - obs], dim=-1)


def shift_window(window: torch.Tensor, mask: torch.Tensor, entry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the oldest entry, append `entry` as the newest: the window one step later."""
    window = torch.cat([window[..., 1:, :], entry.unsqueeze(-2)], dim=-2)
    mask = torch.cat([mask[..., 1:], torch.ones_like(mask[..., :1])], dim=-1)
    return window, mask


class TransitionHistory(Transform):
    """Keeps the last `length` transitions of the current episode in the observation."""

    def __init__(self, length: int, obs_dim: int, action_dim: int) -> None:
        super().__init__(in_keys=[], out_keys=["history", "history_mask"])
        self.length = length
        self.entry_dim = 2 * obs_dim + action_dim

    def _empty(self, batch_size: torch.Size, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        window = torch.zeros(*batch_size, self.length, self.entry_dim, device=device)
        mask = torch.zeros(*batch_size, self.length, dtype=torch.bool, device=device)
        return window, mask

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        # Every sub-env gets an empty window here; for a partial reset, EnvBase.reset keeps the
        # old window of the sub-envs that were not reset.
        window, mask = self._empty(tensordict_reset.batch_size, tensordict_reset.device)
        tensordict_reset.set("history", window)
        tensordict_reset.set("history_mask", mask)
        return tensordict_reset

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        entry = transition_entry(tensordict["observation"], tensordict["action"], next_tensordict["observation"])
        window, mask = shift_window(tensordict["history"], tensordict["history_mask"], entry)
        next_tensordict.set("history", window)
        next_tensordict.set("history_mask", mask)
        return next_tensordict

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        batch = observation_spec.shape
        device = observation_spec.device
        observation_spec["history"] = Unbounded(shape=(*batch, self.length, self.entry_dim), device=device)
        observation_spec["history_mask"] = Categorical(2, shape=(*batch, self.length), dtype=torch.bool, device=device)
        return observation_spec
