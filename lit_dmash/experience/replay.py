"""The replay: whole episodes per sub-env (context) and seed, each stored with its window prefix.

As the authors' `MemoryEfficientContextReplayBuffer` (one FIFO of episodes per training
context), each stored episode begins with the K transitions that were in the context window
before its first step (from the warm-up, or carried over from the previous episode), so any
sampled transition comes with the K transitions before it. A batch takes `batch // num_envs`
samples from every sub-env (their 12 per context at 20 contexts and batch 256), each a window of
K + 1 consecutive slots ending at a uniformly drawn transition of a uniformly drawn complete
episode. Every seed samples from its own episodes with its own random stream.

Written by hand rather than with TorchRL's `ReplayBuffer`: the sample is a stratified, per-seed
gather of windows from a dense `[S, envs, episodes, K + T, d]` tensor that lives on the training
device (no host round trip, capturable in a CUDA graph); TorchRL's `SliceSampler` finds
trajectory boundaries in Python per call and has no stratification over sub-buffers per seed.
Deviations from the authors', both harmless: their 20 per-context buffers share one seed, so
contexts 1..19 draw identical (episode, t) indices in every batch (ours are independent); and
after their FIFO wraps they also sample the episode being overwritten (ours never do). Batch
order is not shuffled: every loss is a mean over the batch.
"""

from __future__ import annotations

import torch

from lit_dmash.agent.update import Batch
from lit_dmash.nets.rng import SeedRandom

_FIELDS = ("obs", "action", "next_obs")


class EpisodeReplay:
    """FIFO of `capacity` episodes for each of `num_envs` sub-envs of `seeds` stacked seeds.

    Episodes of all sub-envs and seeds start and end together (the training loop resets every
    sub-env when any episode ends), so the episode bookkeeping is shared.
    """

    def __init__(
        self,
        seeds: list[int],
        num_envs: int,
        capacity: int,
        window: int,
        horizon: int,
        obs_dim: int,
        action_dim: int,
        context_dim: int,
        device: torch.device | str = "cpu",
    ) -> None:
        if capacity < 2:
            raise ValueError(f"the replay needs room for at least 2 episodes per sub-env, got {capacity}")
        self.window, self.horizon, self.capacity = window, horizon, capacity
        shape = (len(seeds), num_envs, capacity, window + horizon)
        self.data = {
            "obs": torch.zeros(*shape, obs_dim, device=device),
            "action": torch.zeros(*shape, action_dim, device=device),
            "next_obs": torch.zeros(*shape, obs_dim, device=device),
            "reward": torch.zeros(*shape, device=device),
            "terminated": torch.zeros(*shape, dtype=torch.bool, device=device),
            "done": torch.zeros(*shape, dtype=torch.bool, device=device),
            "context": torch.zeros(*shape[:3], context_dim, device=device),
        }
        self.lengths = torch.zeros(capacity, dtype=torch.int64, device=device)
        self.current, self.position, self.complete = 0, window, 0
        self.rng = SeedRandom(seeds, stream=2).to(device)

    @property
    def device(self) -> torch.device:
        return self.lengths.device

    @property
    def num_episodes(self) -> int:
        """Complete episodes that can be sampled (the one being overwritten excluded)."""
        return self.complete if self.complete < self.capacity else self.capacity - 1

    def start_episode(self, window: tuple[torch.Tensor, ...], context: torch.Tensor) -> None:
        """Write the K-transition prefix `(obs, action, next_obs)` `[S, n, K, d]` of a new episode."""
        slot = self.current
        for name, value in zip(_FIELDS, window, strict=True):
            self.data[name][:, :, slot, : self.window] = value.to(self.device)
        self.data["context"][:, :, slot] = context.to(self.device)
        self.position = self.window

    def add(self, **step: torch.Tensor) -> None:
        """Append one transition per sub-env: obs, action, next_obs, reward, terminated, done `[S, n, ...]`."""
        if self.position >= self.window + self.horizon:
            raise RuntimeError(f"episode longer than the horizon {self.horizon}")
        for name, value in step.items():
            self.data[name][:, :, self.current, self.position] = value.to(self.device)
        self.position += 1

    def end_episode(self) -> None:
        self.lengths[self.current] = self.position - self.window
        self.complete = min(self.complete + 1, self.capacity)
        self.current = (self.current + 1) % self.capacity
        self.position = self.window

    def sample(self, per_env: int, windows: bool = True) -> Batch:
        """`per_env` windows from every sub-env of every seed: `Batch` of `[S, n * per_env, ...]`.

        `windows=False` (an agent without an encoder): only the sampled transition itself, a
        window of one slot, so no K-slot window is copied out of the replay for nothing.
        """
        count = self.num_episodes
        if count == 0:
            raise RuntimeError("no complete episode to sample from yet")
        seeds, envs = self.data["reward"].shape[:2]
        pick = self.rng.integers(count, (envs, per_env))  # [S, n, m]
        slot = pick if self.complete < self.capacity else (self.current + 1 + pick) % self.capacity
        last = self.window + self.rng.integers(self.lengths[slot], (envs, per_env))
        offsets = torch.arange(-self.window if windows else 0, 1, device=self.device)
        s = torch.arange(seeds, device=self.device).view(seeds, 1, 1, 1)
        c = torch.arange(envs, device=self.device).view(1, envs, 1, 1)
        e, t = slot.unsqueeze(-1), last.unsqueeze(-1) + offsets
        window = {name: self.data[name][s, c, e, t].flatten(1, 2) for name in _FIELDS}
        at = (s[..., 0], c[..., 0], slot, last)
        return Batch(
            **window,
            reward=self.data["reward"][at].flatten(1),
            terminated=self.data["terminated"][at].flatten(1),
            done=self.data["done"][at].flatten(1),
            context=self.data["context"][s[..., 0], c[..., 0], slot].flatten(1, 2),
        )

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.data.values())

    # -- checkpoints: only the filled episodes are saved (a 100-episode buffer is mostly zeros early on)
    def state_dict(self) -> dict:
        # Before the FIFO wraps, slots 0..current hold data (current: the episode in progress, its
        # prefix written at its start); after, every slot does.
        filled = self.current + 1 if self.complete < self.capacity else self.capacity
        index = torch.arange(filled, device=self.device)
        return {
            "capacity": self.capacity,
            "slots": index.cpu(),
            "data": {k: v.index_select(2, index).cpu() for k, v in self.data.items()},
            "lengths": self.lengths.cpu(),
            "current": self.current,
            "position": self.position,
            "complete": self.complete,
            "rng": self.rng.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        index = state["slots"].to(self.device)
        for name, value in state["data"].items():
            self.data[name].index_copy_(2, index, value.to(self.device))
        self.lengths.copy_(state["lengths"])
        self.current, self.position, self.complete = state["current"], state["position"], state["complete"]
        self.rng.load_state_dict(state["rng"])
