"""Environments with latent contexts: context spaces, splits, and the `make_env` registry."""

from lit_dmash.envs.contexts import ContextSampler, ContextSpace, Split, load_context_space
from lit_dmash.envs.di_friction import DIFrictionEnv
from lit_dmash.envs.registry import context_space, env_names, make_env, register_env

register_env("di_friction")(DIFrictionEnv)

from lit_dmash.envs import aib  # noqa: E402,F401  (registers the MuJoCo domains)

__all__ = [
    "ContextSampler",
    "ContextSpace",
    "DIFrictionEnv",
    "Split",
    "context_space",
    "env_names",
    "load_context_space",
    "make_env",
    "register_env",
]
