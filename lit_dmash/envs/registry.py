"""The env registry: one name, one factory; `make_env` is the single entry point.

Training, evaluation and outside scripts build every env through `make_env`. Two families are
registered: the paper's tasks (`lit_dmash.envs.paper`: fixed contexts chosen by the authors'
rule, `lit_dmash/envs/tasks/*.yaml`) and our sign-pattern extension (`*_signs`, a fresh context
per episode from a YAML context space, `lit_dmash.envs.extension`). A factory is called as
`factory(split=, num_envs=, seed=, device=, contexts_per_split=, horizon=, **task_options)` after
the arguments common to all envs are checked, and checks its own options before building.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torchrl.envs import EnvBase

from lit_dmash.envs.extension.contexts import ContextSpace, load_context_space
from lit_dmash.errors import ConfigError, check_int

EnvFactory = Callable[..., EnvBase]
ExtensionBuilder = Callable[..., EnvBase]
"""`builder(context_space, split=, num_envs=, seed=, device=[, horizon=]) -> EnvBase`."""

_REGISTRY: dict[str, EnvFactory] = {}
_EXTENSION: dict[str, int] = {}  # extension env name -> its context window K


def register_env(name: str) -> Callable[[EnvFactory], EnvFactory]:
    """Decorator: make `factory` reachable as `make_env(name, ...)`."""

    def decorator(factory: EnvFactory) -> EnvFactory:
        if name in _REGISTRY:
            raise ValueError(f"env {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return decorator


def register_extension_env(name: str, builder: ExtensionBuilder, window: int = 128) -> None:
    """Register a sign-pattern env: its context space is `extension/<name>.yaml` or `context_file`.

    `window` is the context window K methods use by default on it (the authors' 24 for point
    tasks, 128 for MuJoCo tasks).
    """

    def factory(
        *,
        split: str,
        num_envs: int,
        seed: int,
        device: torch.device | str,
        contexts_per_split: int,
        horizon: int | None,
        context_file: str | Path | None = None,
        **options: Any,
    ) -> EnvBase:
        if options:
            raise ConfigError("task option", sorted(options)[0], f"env {name!r} accepts only context_file")
        space = load_context_space(name, context_file)
        space.split(split)
        extra = {} if horizon is None else {"horizon": horizon}
        return builder(space, split=split, num_envs=num_envs, seed=seed, device=device, **extra)

    register_env(name)(factory)
    _EXTENSION[name] = window


def unregister_env(name: str) -> None:
    """Remove `name` (tests register throw-away envs)."""
    _REGISTRY.pop(name, None)
    _EXTENSION.pop(name, None)


def task_window(name: str, **task_options: Any) -> int:
    """The context window K of env `name`: the authors' for a paper task (24 or 128).

    The window does not depend on task options (ode_k's `k`), so they may be left out.
    """
    check_env_name(name)
    if name in _EXTENSION:
        return _EXTENSION[name]
    from lit_dmash.envs.task_contexts import paper_task_window

    return paper_task_window(name, **task_options)


def env_names() -> list[str]:
    """Names `make_env` accepts."""
    return sorted(_REGISTRY)


def check_env_name(name: str) -> None:
    if name not in _REGISTRY:
        raise ConfigError("env", name, f"expected one of {env_names()}")


def context_space(name: str, context_file: str | Path | None = None) -> ContextSpace:
    """The validated context space of extension env `name` (its packaged YAML unless `context_file`)."""
    check_env_name(name)
    if name not in _EXTENSION:
        raise ConfigError(
            "env",
            name,
            f"a paper task (fixed contexts, see split_contexts); context spaces exist for {sorted(_EXTENSION)}",
        )
    return load_context_space(name, context_file)


def make_env(
    name: str,
    split: str = "train",
    num_envs: int = 20,
    seed: int = 0,
    device: torch.device | str = "cpu",
    *,
    contexts_per_split: int = 20,
    horizon: int | None = None,
    **task_options: Any,
) -> EnvBase:
    """Build env `name` on context split `split`, batched over `num_envs` sub-envs.

    Every reset/step tensordict carries `"observation"` and the true `"context"`. Paper tasks
    give sub-env i context `i % contexts_per_split` of the split for the whole run; `horizon`
    overrides the episode length. Task options: `k` (ode_k), `reset_streams` (paper tasks),
    `context_file` (extension envs). All arguments are validated before anything is built;
    errors name the field and what is allowed.
    """
    check_env_name(name)
    check_int("num_envs", num_envs)
    check_int("contexts_per_split", contexts_per_split)
    if horizon is not None:
        check_int("horizon", horizon)
    check_int("seed", seed, minimum=None)
    return _REGISTRY[name](
        split=split,
        num_envs=num_envs,
        seed=seed,
        device=device,
        contexts_per_split=contexts_per_split,
        horizon=horizon,
        **task_options,
    )
