"""The env registry: one name, one factory, one context space.

`make_env` is the single entry point that training, evaluation and outside scripts use. A new
environment registers a factory with `@register_env("name")`, ships `conf/envs/<name>.yaml` with
its context space, and is then reachable by name from every config.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torchrl.envs import EnvBase

from lit_dmash.envs.contexts import ContextSpace, load_context_space
from lit_dmash.errors import ConfigError

EnvFactory = Callable[..., EnvBase]
"""`factory(context_space, split, num_envs, seed, device[, horizon]) -> EnvBase`."""

_REGISTRY: dict[str, EnvFactory] = {}


def register_env(name: str) -> Callable[[EnvFactory], EnvFactory]:
    """Decorator: make `factory` reachable as `make_env(name, ...)`."""

    def decorator(factory: EnvFactory) -> EnvFactory:
        if name in _REGISTRY:
            raise ValueError(f"env {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return decorator


def env_names() -> list[str]:
    """Names `make_env` accepts."""
    return sorted(_REGISTRY)


def check_env_name(name: str) -> None:
    if name not in _REGISTRY:
        raise ConfigError("env", name, f"expected one of {env_names()}")


def context_space(name: str, context_file: str | Path | None = None) -> ContextSpace:
    """The validated context space of env `name` (its default YAML unless `context_file`)."""
    check_env_name(name)
    return load_context_space(name, context_file)


def make_env(
    name: str,
    split: str = "train",
    num_envs: int = 1,
    seed: int = 0,
    device: torch.device | str = "cpu",
    *,
    context_file: str | Path | None = None,
    horizon: int | None = None,
) -> EnvBase:
    """Build env `name` drawing its per-episode contexts from `split`, batched over `num_envs`.

    Every reset/step tensordict carries `"observation"` and the true `"context"`. `horizon`
    overrides the env's default episode length (steps). All arguments are validated before
    anything is built; errors name the field and what is allowed.
    """
    space = context_space(name, context_file)
    space.split(split)
    for field, value in [("num_envs", num_envs), ("horizon", horizon)]:
        if value is None and field == "horizon":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(field, value, "expected an integer > 0")
    options = {} if horizon is None else {"horizon": horizon}
    return _REGISTRY[name](space, split=split, num_envs=num_envs, seed=seed, device=device, **options)
