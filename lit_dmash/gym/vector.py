"""`AIBVectorEnv`: `gymnasium.make_vec(id, num_envs=n, split=)`, our natively batched env behind gymnasium's vector API.

Sub-env i runs in the split's context i mod `contexts_per_split` for the whole run, exactly as
in `make_env(task, split, num_envs=n, seed=seed)`: one TorchRL call steps all sub-envs. Seeds
are per batch (`reset(seed=s)` is `make_env(..., seed=s)`), not per sub-env. Autoreset is
gymnasium's default `NEXT_STEP`: a sub-env that ended an episode starts the next one on the
following `step` (its action ignored, reward 0). All sub-envs share the horizon and never
terminate, so they end together; calling `reset()` then is the same thing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from lit_dmash.gym.batch import RENDER_MODES, SeededBatch, check_arguments, check_seed
from lit_dmash.gym.env import RENDER_FPS, action_space, check_no_options, observation_space

ARGUMENTS = ("num_envs", "split", "contexts_per_split", "horizon", "render_mode")


class AIBVectorEnv(VectorEnv):
    """`num_envs` sub-envs of a paper task on `split`; `info["context"]` `[n, c]` has their raw contexts."""

    metadata: dict[str, Any] = {  # noqa: RUF012
        "autoreset_mode": AutoresetMode.NEXT_STEP,
        "render_modes": list(RENDER_MODES),
        "render_fps": RENDER_FPS,
    }

    def __init__(
        self,
        task: str,
        num_envs: int = 20,
        split: str = "train",
        *,
        contexts_per_split: int = 20,
        horizon: int | None = None,
        render_mode: str | None = None,
        **task_options: Any,
    ) -> None:
        options = check_arguments(
            task,
            ARGUMENTS,
            split=split,
            contexts_per_split=contexts_per_split,
            horizon=horizon,
            render_mode=render_mode,
            options=task_options,
            num_envs=num_envs,
        )
        self.task, self.split, self.num_envs, self.render_mode = task, split, num_envs, render_mode
        self._batch = SeededBatch(task, split, num_envs, None, contexts_per_split, horizon, options)
        self._seeded = False
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self.context_names: list[str] = self._batch.spec.context_names
        self.horizon: int = self._batch.torchrl_env.horizon
        self.single_observation_space = observation_space(self._batch)
        self.single_action_space = action_space(self._batch)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    def _info(self, context: np.ndarray) -> dict[str, Any]:
        return {"context": context, "_context": np.ones(self.num_envs, dtype=bool)}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env; `seed` restarts the batch as `make_env(..., seed=seed)` would."""
        check_no_options(options)
        if seed is not None:
            seed = check_seed(seed)
        super().reset(seed=seed)
        if seed is not None or not self._seeded:
            self._batch.seed(seed if seed is not None else int(self.np_random.integers(2**31)))
            self._seeded = True
        obs, context = self._batch.reset()
        self._autoreset[:] = False
        return obs, self._info(context)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        pending = self._autoreset.copy()
        if pending.all():  # the common case: every episode ended together
            obs, context = self._batch.reset()
            reward = np.zeros(self.num_envs, dtype=np.float32)
            terminated, truncated = np.zeros(self.num_envs, dtype=bool), np.zeros(self.num_envs, dtype=bool)
        else:
            obs, reward, terminated, truncated, context = self._batch.step(actions)
            if pending.any():  # our envs step all sub-envs; the pending ones are then restarted
                obs[pending], context[pending] = self._batch.reset(pending)
                reward[pending] = 0.0
                terminated[pending] = truncated[pending] = False
        self._autoreset = terminated | truncated
        return obs, reward.astype(np.float64), terminated, truncated, self._info(context)

    def render(self) -> tuple[np.ndarray, ...] | None:
        """One frame `[H, W, 3]` uint8 per sub-env with `render_mode="rgb_array"`."""
        if self.render_mode is None:
            return None
        return tuple(self._batch.render())

    def close_extras(self, **kwargs: Any) -> None:
        self._batch.close()
