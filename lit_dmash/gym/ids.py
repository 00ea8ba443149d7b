"""The Gymnasium id of every paper task, defined once here, and their registration with gymnasium.

Each id has two entry points: `AIBEnv` (`gymnasium.make`, one context) and `AIBVectorEnv`
(`gymnasium.make_vec`, our natively batched env: sub-env i in the split's context i mod C).
"""

from __future__ import annotations

import gymnasium

from lit_dmash.errors import ConfigError

GYM_IDS: dict[str, str] = {
    "di": "lit_dmash/DI-v0",
    "di_perm": "lit_dmash/DI-Perm-v0",
    "di_friction": "lit_dmash/DI-Friction-v0",
    "ode": "lit_dmash/ODE-v0",
    "ode_k": "lit_dmash/ODE-k-v0",
    "cartpole": "lit_dmash/Cartpole-v0",
    "ball_in_cup": "lit_dmash/BallInCup-v0",
    "walker": "lit_dmash/Walker-v0",
    "cheetah": "lit_dmash/Cheetah-v0",
    "reacher_easy": "lit_dmash/Reacher-Easy-v0",
    "reacher_hard": "lit_dmash/Reacher-Hard-v0",
    "reacher_perm": "lit_dmash/Reacher-Perm-v0",
    "walker_gym": "lit_dmash/Walker2d-v0",
    "hopper_gym": "lit_dmash/Hopper-v0",
}
"""Paper task name (`make_env`'s) -> Gymnasium id."""


def gym_id(task: str) -> str:
    """The Gymnasium id of paper task `task`."""
    if task not in GYM_IDS:
        raise ConfigError("task", task, f"expected one of the paper tasks {sorted(GYM_IDS)}")
    return GYM_IDS[task]


def task_of(env_id: str) -> str:
    """The paper task behind Gymnasium id `env_id`."""
    for task, known in GYM_IDS.items():
        if known == env_id:
            return task
    raise ConfigError("env_id", env_id, f"expected one of {list(GYM_IDS.values())}")


def register_ids() -> None:
    """Register every id with gymnasium (idempotent: ids already registered are left alone)."""
    for task, env_id in GYM_IDS.items():
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            env_id,
            entry_point="lit_dmash.gym.env:AIBEnv",
            vector_entry_point="lit_dmash.gym.vector:AIBVectorEnv",
            kwargs={"task": task},
        )
