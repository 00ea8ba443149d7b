"""`AIBEnv`: one paper task in one fixed context of one split, as a plain `gymnasium.Env`.

What `gymnasium.make("lit_dmash/<Task>-v0", split=, context=)` builds. It wraps a one-sub-env
batch of our own env (`SeededBatch`), so its episodes are those of sub-env `context` of
`make_env(task, split, seed=seed)` (see `lit_dmash.gym` for the seeding rule).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from lit_dmash.errors import ConfigError
from lit_dmash.gym.batch import RENDER_MODES, SeededBatch, check_arguments, check_context, check_seed

ARGUMENTS = ("split", "context", "contexts_per_split", "horizon", "render_mode")
RENDER_FPS = 25  # the playback rate of our videos (`PolicyVideo`), not the simulators' control rate


def observation_space(batch: SeededBatch) -> spaces.Box:
    """One sub-env's observations: float32, unbounded, as our specs declare (`envs/specs.py`)."""
    dim = batch.torchrl_env.observation_spec["observation"].shape[-1]
    return spaces.Box(-np.inf, np.inf, (dim,), np.float32)


def action_space(batch: SeededBatch) -> spaces.Box:
    """One sub-env's actions: float32 in our spec's bounds ([-1, 1] on every paper task)."""
    box = batch.torchrl_env.action_spec.space
    low, high = box.low[0].numpy().astype(np.float32), box.high[0].numpy().astype(np.float32)
    return spaces.Box(low, high, low.shape, np.float32)


def check_no_options(options: dict[str, Any] | None) -> None:
    if options:
        raise ConfigError("options", options, "reset takes no options: split and context are set at make")


class AIBEnv(gymnasium.Env[np.ndarray, np.ndarray]):
    """A paper task in context `context` of `split`; `info["context"]` has the raw context values.

    Only context-aware agents (such as `concat`) may read `info["context"]`; a zero-shot agent
    must not. Episodes never terminate; they are truncated after `horizon` steps (the task's
    own by default). Actions are not clipped (as in `make_env`: the simulators clamp).
    """

    metadata: dict[str, Any] = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}  # noqa: RUF012

    def __init__(
        self,
        task: str,
        split: str = "train",
        context: int = 0,
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
        )
        check_context(context, contexts_per_split)
        self.task, self.split, self.context = task, split, int(context)
        self.render_mode = render_mode
        self._batch = SeededBatch(task, split, 1, self.context, contexts_per_split, horizon, options)
        self._seeded = False  # until the first reset: then seeded, by its seed or one drawn from np_random
        self.context_names: list[str] = self._batch.spec.context_names
        self.horizon: int = self._batch.torchrl_env.horizon
        self.observation_space = observation_space(self._batch)
        self.action_space = action_space(self._batch)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """A new episode; `seed` restarts the episode streams as `make_env(..., seed=seed)` would."""
        check_no_options(options)
        if seed is not None:
            seed = check_seed(seed)
        super().reset(seed=seed)
        if seed is not None or not self._seeded:
            self._batch.seed(seed if seed is not None else int(self.np_random.integers(2**31)))
            self._seeded = True
        obs, context = self._batch.reset()
        return obs[0], {"context": context[0]}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, context = self._batch.step(np.asarray(action)[None])
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), {"context": context[0]}

    def render(self) -> np.ndarray | None:
        """The current frame `[H, W, 3]` uint8 with `render_mode="rgb_array"` (MuJoCo tasks need OpenGL)."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() without a render_mode: pass render_mode='rgb_array' to gymnasium.make")
            return None
        return self._batch.render([0])[0]

    def close(self) -> None:
        self._batch.close()
