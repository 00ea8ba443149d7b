"""Environments with latent contexts, all built through `make_env(name, split, num_envs, seed)`.

- The paper's tasks (`lit_dmash.envs.paper`): `di`, `di_perm`, `di_friction`, `ode`, `ode_k`,
  `cartpole`, `ball_in_cup`, `walker`, `cheetah`, `reacher_easy`, `reacher_hard`, `reacher_perm`,
  `walker_gym`, `hopper_gym`; fixed contexts per split chosen by the authors' rule
  (`task_spec`, `split_contexts`, `context_names`, `task_window`; data in
  `lit_dmash/envs/tasks/*.yaml`).
- Our sign-pattern extension (`lit_dmash.envs.extension`): `di_signs`, `ball_in_cup_signs`,
  `cheetah_signs`, `walker_signs`, `walker_gym_signs`; a fresh context per episode from a YAML
  context space (`context_space`, `context_file`).
"""

from lit_dmash.envs import paper  # noqa: F401  (registers the paper's tasks)
from lit_dmash.envs.extension import registration  # noqa: F401  (registers the extension envs)
from lit_dmash.envs.extension.contexts import (
    ContextSampler,
    ContextSpace,
    Split,
    default_context_file,
    load_context_space,
    variant_file,
)
from lit_dmash.envs.extension.di_signs import DISignsEnv
from lit_dmash.envs.registry import (
    context_space,
    env_names,
    make_env,
    register_env,
    register_extension_env,
    task_window,
)
from lit_dmash.envs.task_contexts import TaskSpec, context_names, split_contexts, task_names, task_spec

__all__ = [
    "ContextSampler",
    "ContextSpace",
    "DISignsEnv",
    "Split",
    "TaskSpec",
    "context_names",
    "context_space",
    "default_context_file",
    "env_names",
    "load_context_space",
    "make_env",
    "register_env",
    "register_extension_env",
    "split_contexts",
    "task_names",
    "task_spec",
    "task_window",
    "variant_file",
]
