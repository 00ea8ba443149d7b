"""What the Gymnasium envs share: one argument check, and our batched env seeded as `make_env` seeds it.

`SeededBatch` holds the TorchRL env and speaks numpy. A new seed puts it exactly where a fresh
`make_env(..., seed=seed)` batch starts: the env is rebuilt when the seed changes its contexts
(ode_k with k >= 3) or has no `reseed` (the torch tasks, which build in milliseconds), and a
MuJoCo env is reseeded in place (`PaperMujocoEnv.reseed`, no model recompiled).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict
from torchrl.envs import EnvBase

from lit_dmash.envs.paper import build_paper_env
from lit_dmash.envs.task_contexts import SPLITS, split_contexts, task_spec
from lit_dmash.errors import ConfigError, check_choice, check_int
from lit_dmash.gym.ids import GYM_IDS

RENDER_MODES = ("rgb_array",)
TASK_OPTIONS = {"ode_k": ("k",)}  # task -> the `make_env` options its id takes


def check_arguments(
    task: str,
    accepted: Sequence[str],
    *,
    split: Any,
    contexts_per_split: Any,
    horizon: Any,
    render_mode: Any,
    options: dict[str, Any],
    num_envs: Any = 1,
) -> dict[str, Any]:
    """Check what every id takes, before anything is built; the task's own options (ode_k's `k`).

    `accepted` are the caller's own argument names, listed when an unknown one is passed.
    """
    check_choice("task", task, list(GYM_IDS))
    own = TASK_OPTIONS.get(task, ())
    for name in options:
        if name not in own:
            raise ConfigError("option", name, f"{GYM_IDS[task]} accepts {[*accepted, *own]}")
    check_choice("split", split, list(SPLITS))
    check_int("num_envs", num_envs)
    check_int("contexts_per_split", contexts_per_split)
    if horizon is not None:
        check_int("horizon", horizon)
    check_choice("render_mode", render_mode, [None, *RENDER_MODES])
    task_spec(task, **options)  # ode_k's k: missing or out of range is one line too
    return dict(options)


def check_context(context: Any, contexts_per_split: int) -> None:
    ok = isinstance(context, (int, np.integer)) and not isinstance(context, bool)
    if not ok or not 0 <= context < contexts_per_split:
        raise ConfigError(
            "context", context, f"expected an integer in 0..{contexts_per_split - 1} (contexts_per_split)"
        )


def check_seed(seed: Any) -> int:
    """A reset seed: one non-negative integer (the run seed of the whole batch, as `make_env`'s)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError("seed", seed, "expected None or an integer >= 0 (one seed for the whole batch)")
    return int(seed)


class SeededBatch:
    """Our batched env of one task and split, (re)seeded as `make_env(seed=...)` builds it.

    `row=None`: `num_envs` sub-envs, sub-env i in the split's context i % C (make_env's batch);
    `row=r`: one sub-env in context r, which behaves exactly as sub-env r of that batch.
    """

    def __init__(
        self,
        task: str,
        split: str,
        num_envs: int,
        row: int | None,
        contexts_per_split: int,
        horizon: int | None,
        options: dict[str, Any],
    ) -> None:
        self.task, self.split, self.num_envs, self.row = task, split, num_envs, row
        self.contexts_per_split, self.horizon, self.options = contexts_per_split, horizon, options
        self.spec = task_spec(task, **options)
        self.env: EnvBase | None = None
        self.seed(0)

    @property
    def torchrl_env(self) -> EnvBase:
        assert self.env is not None
        return self.env

    def seed(self, seed: int) -> None:
        """Start over as a fresh batch seeded `seed` (episode streams from their first draw)."""
        contexts = split_contexts(self.task, self.split, self.contexts_per_split, seed, **self.options)
        if self.row is not None:
            contexts = contexts[[self.row]]
        env = self.env
        if env is not None and hasattr(env, "reseed") and torch.equal(contexts, env.contexts):
            env.reseed(seed)
            return
        if env is not None:
            env.close()
        self.env = build_paper_env(self.spec, contexts, self.split, self.num_envs, seed, horizon=self.horizon)

    def reset(self, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Reset all sub-envs: fresh `(observation [n, d], context [n, c])` float32.

        With a bool `mask [n]` only those sub-envs restart and only their rows are returned
        (TorchRL fills the rows of the others with zeros).
        """
        env = self.torchrl_env
        request = None
        if mask is not None:
            request = TensorDict(_reset=torch.from_numpy(mask.copy()).unsqueeze(-1), batch_size=env.batch_size)
        out = env.reset(request)
        obs, context = out["observation"].numpy().copy(), out["context"].numpy().copy()
        return (obs, context) if mask is None else (obs[mask], context[mask])

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One step of every sub-env: observation, reward (float32), terminated, truncated, context."""
        env = self.torchrl_env
        action = torch.tensor(np.asarray(actions, dtype=np.float32).reshape(env.action_spec.shape))
        out = env.step(TensorDict(action=action, batch_size=env.batch_size))["next"]
        return (
            out["observation"].numpy().copy(),
            out["reward"].numpy().reshape(-1).copy(),
            out["terminated"].numpy().reshape(-1).copy(),
            out["truncated"].numpy().reshape(-1).copy(),
            out["context"].numpy().copy(),
        )

    def render(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """RGB frames `[n, H, W, 3]` uint8 from the env's own renderer (Pillow or MuJoCo's)."""
        return self.torchrl_env.render(indices)

    def close(self) -> None:
        if self.env is not None:
            self.env.close(raise_if_closed=False)
            self.env = None
