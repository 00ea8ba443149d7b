"""The paper's benchmark tasks under the paper's names, registered for `make_env`.

| name | authors' env id | simulator | obs / act | horizon | contexts |
|---|---|---|---|---|---|
| `di` | dmash/DI-sparse-v0 | torch double integrator | 4 / 2 | 100 | mass, action_factor |
| `di_perm` | (paper v2 only) | torch double integrator | 4 / 2 | 100 | mass, action_order |
| `di_friction` | dmash/DI-friction-sparse-v0 | torch double integrator | 4 / 2 | 100 | mass, friction |
| `ode` | dmash/ODE-v0 | torch complex ODE | 1 / 2 | 200 | parameter_0, parameter_1 |
| `ode_k` (option `k`) | dmash/ODE-{k}-v0 | torch complex ODE | 1 / 2 | 200 | parameter_0..k-1 |
| `cartpole` | dm_control/cartpole-balance-v0 | dm_control | 5 / 1 | 1000 | length, action_factor |
| `ball_in_cup` | dm_control/ball_in_cup-catch-v0 | dm_control | 8 / 2 | 1000 | gravity, distance |
| `walker` | dm_control/walker-walk-v0 | dm_control | 24 / 6 | 1000 | gravity, actuator_strength |
| `cheetah` | dm_control/cheetah-run_morph-v0 | dm_control | 17 / 6 | 1000 | length, action_factor |
| `reacher_easy` | dm_control/reacher-easy_morph-v0 | dm_control | 6 / 2 | 1000 | length, action_factor |
| `reacher_hard` | dm_control/reacher-hard_morph-v0 | dm_control | 6 / 2 | 1000 | length, action_factor |
| `reacher_perm` | (paper v2 only) | dm_control reacher easy | 6 / 2 | 1000 | length, action_order |
| `walker_gym` | dmash/Walker2d-v5 | gymnasium Walker2d-v5 | 17 / 6 | 1000 | gravity, actuator_strength |
| `hopper_gym` | dmash/Hopper-v5 | gymnasium Hopper-v5 | 11 / 3 | 1000 | gravity, actuator_strength |

`di_perm` and `reacher_perm` are the paper's v2 tasks, absent from the authors' code and defined
here from the paper's text: `di` / `reacher_easy` whose binary factor swaps the two action
dimensions instead of flipping their sign (`action_order` +1 = identity, -1 = swapped; selected
exactly as the sign is, so 11 swapped / 9 identity per split).

Each env exposes `task` (the `TaskSpec`), `contexts` (`[C, n_keys]` float64, its split's
contexts; sub-env i runs in row i % C for the whole run), `context_names`, `split_names`,
`horizon`, `split`, `seed`, `reset_streams`, and `env_state()` / `load_env_state()` (plain tensors
and ints) for exact resumption. Tensordicts carry `"observation"` (float32, never the context)
and `"context"` (the raw values of the varied keys, float32, in the authors' key order).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torchrl.envs import EnvBase

from lit_dmash.envs.registry import register_env
from lit_dmash.envs.task_contexts import (
    RESET_STREAMS,
    TASK_OPTIONS,
    TaskSpec,
    check_split,
    split_contexts,
    task_spec,
)
from lit_dmash.errors import ConfigError

TORCH_TASKS = {"di": "di", "di_perm": "di", "di_friction": "di", "ode": "ode", "ode_k": "ode"}
MUJOCO_TASKS = (
    "cartpole",
    "ball_in_cup",
    "walker",
    "cheetah",
    "reacher_easy",
    "reacher_hard",
    "reacher_perm",
    "walker_gym",
    "hopper_gym",
)
PAPER_TASKS = (*TORCH_TASKS, *MUJOCO_TASKS)


def make_paper_env(
    name: str,
    *,
    split: str,
    num_envs: int,
    seed: int,
    device: torch.device | str,
    contexts_per_split: int,
    horizon: int | None,
    **task_options: Any,
) -> EnvBase:
    """Validate the task options and split, select the split's contexts, then build the env."""
    context_file = task_options.pop("context_file", None)  # callers may pass it for every task
    if context_file is not None:
        raise ConfigError(
            "context_file", str(context_file), f"task {name!r} has fixed contexts (only *_signs envs take one)"
        )
    allowed = [opt for opt in TASK_OPTIONS if opt != "k" or name == "ode_k"]
    for option in task_options:
        if option not in allowed:
            raise ConfigError("task option", option, f"task {name!r} accepts {allowed}")
    reset_streams = task_options.pop("reset_streams", "shared")
    if reset_streams not in RESET_STREAMS:
        raise ConfigError("reset_streams", reset_streams, f"expected one of {list(RESET_STREAMS)}")
    spec = task_spec(name, **task_options)
    check_split(spec, split)
    contexts = split_contexts(name, split, contexts_per_split, seed, **task_options)
    return build_paper_env(
        spec, contexts, split, num_envs, seed, device=device, horizon=horizon, reset_streams=reset_streams
    )


def build_paper_env(
    spec: TaskSpec,
    contexts: torch.Tensor,
    split: str,
    num_envs: int,
    seed: int,
    *,
    device: torch.device | str = "cpu",
    horizon: int | None = None,
    reset_streams: str = "shared",
) -> EnvBase:
    """The env of paper task `spec` on the given `contexts` rows (sub-env i in row i % len), unchecked.

    `make_env` validates and passes all the split's contexts; `lit_dmash.gym` passes one row to get
    one sub-env of a `make_env` batch on its own.
    """
    kwargs = {"device": device, "horizon": horizon, "reset_streams": reset_streams}
    if spec.name in TORCH_TASKS:
        from lit_dmash.envs.torch_tasks import ComplexODEEnv, DoubleIntegratorEnv

        cls = DoubleIntegratorEnv if TORCH_TASKS[spec.name] == "di" else ComplexODEEnv
        return cls(spec, contexts, split, num_envs, seed, **kwargs)
    from lit_dmash.envs.paper_mujoco import PaperMujocoEnv  # MuJoCo is imported only when needed

    return PaperMujocoEnv(spec, contexts, split, num_envs, seed, **kwargs)


for _name in PAPER_TASKS:
    register_env(_name)(partial(make_paper_env, _name))
