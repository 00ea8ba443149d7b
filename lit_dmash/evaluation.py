"""Deterministic zero-shot evaluation: one episode per sub-env, no learning, no context given."""

from __future__ import annotations

import zlib

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.envs import EnvBase, ExplorationType, set_exploration_type


def split_seed(seed: int, split: str) -> int:
    """A seed per (seed, split), stable across runs and Python processes (unlike `hash`)."""
    return (seed * 1_000_003 + zlib.crc32(split.encode())) % 2**31


def first_episode_returns(reward: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
    """Return of each sub-env's first episode in a `[num_envs, T, 1]` rollout.

    Steps after a sub-env's first `done` (its auto-reset successor episode) are not counted.
    """
    done = done.to(reward.dtype)
    before_first_done = (done.cumsum(dim=1) - done) == 0
    return (reward * before_first_done).sum(dim=(1, 2))


@torch.no_grad()
def deterministic_rollout(env: EnvBase, policy: TensorDictModuleBase, max_steps: int) -> TensorDictBase:
    """The policy's mode in every sub-env until all have finished an episode (or `max_steps`): `[num_envs, T]`."""
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        return env.rollout(max_steps, policy, break_when_any_done=False, break_when_all_done=True)


def evaluate_policy(env: EnvBase, policy: TensorDictModuleBase, max_steps: int) -> torch.Tensor:
    """Run the policy's mode (deterministic) for one episode in every sub-env; returns `[num_envs]`."""
    rollout = deterministic_rollout(env, policy, max_steps)
    done = rollout["next", "done"]
    if not done.any(dim=1).all():
        raise RuntimeError(f"an evaluation episode did not finish within {max_steps} steps; raise eval_max_steps")
    return first_episode_returns(rollout["next", "reward"], done)
