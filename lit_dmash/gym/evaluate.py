"""Our zero-shot evaluation protocol for any agent, run through the Gymnasium ids.

The protocol of `lit_dmash.experience.rollout.run_episodes` (what every arm here is scored
with): one sub-env per context of the split (20), and per episode a reset, a warm-up of K steps
with the deterministic policy (K = the task's context window; it only fills a context-inferring
agent's memory, but it also moves the episode streams, so it is kept for every agent; it starts
with a reset of its own, as ours does), a reset, then one scored episode with deterministic
actions. AER = mean over contexts of the per-context mean return. With the same seed an agent
here sees exactly the start states our arms see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np

from lit_dmash.envs.registry import task_window
from lit_dmash.errors import ConfigError, check_int
from lit_dmash.gym.ids import task_of

Policy = Callable[[np.ndarray, dict[str, Any]], np.ndarray]
"""`policy(observations [n, d], info) -> actions [n, a]`, deterministic. `info["context"]` `[n, c]`
holds the true contexts: only a context-aware agent may read it."""


@dataclass(frozen=True)
class ZeroShotResult:
    """Returns `[C, episodes]` (float32 sums, as ours) and the contexts `[C, c]` of one split."""

    env_id: str
    split: str
    returns: np.ndarray
    contexts: np.ndarray

    @property
    def aer(self) -> float:
        """Average episodic return: mean over contexts of the per-context mean return."""
        return float(self.returns.mean(axis=1).mean())


def evaluate_zero_shot(
    env_id: str,
    policy: Policy,
    split: str,
    *,
    episodes: int = 10,
    seed: int = 0,
    warm_up: bool = True,
    window: int | None = None,
    **env_kwargs: Any,
) -> ZeroShotResult:
    """Score `policy` on `split` of `env_id` by our protocol (see the module docstring).

    `env_kwargs` go to `gymnasium.make_vec` (`contexts_per_split`, `horizon`, ode_k's `k`);
    `window` overrides the task's K.
    """
    task = task_of(env_id)
    check_int("episodes", episodes)
    contexts_per_split = env_kwargs.get("contexts_per_split", 20)
    envs = gymnasium.make_vec(env_id, num_envs=contexts_per_split, split=split, **env_kwargs)
    try:
        k = task_window(task) if window is None else window
        if warm_up and (not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= envs.horizon):
            raise ConfigError("window", k, f"expected an integer in 0..{envs.horizon} (the horizon)")
        returns, contexts = [], None
        for episode in range(episodes):
            obs, info = envs.reset(seed=seed if episode == 0 else None)
            if warm_up:  # run_episodes' resets exactly: warm_up resets once more before its K steps
                obs, info = envs.reset()
                for _ in range(k):
                    obs, *_, info = envs.step(policy(obs, info))
            obs, info = envs.reset()
            contexts = info["context"] if contexts is None else contexts
            total = np.zeros(contexts_per_split, dtype=np.float32)
            for _ in range(envs.horizon):
                obs, reward, terminated, truncated, info = envs.step(policy(obs, info))
                total += reward.astype(np.float32)
                if (terminated | truncated).any():
                    break
            returns.append(total)
    finally:
        envs.close()
    return ZeroShotResult(env_id, split, np.stack(returns, axis=-1), contexts)
