"""What a checkpoint holds beyond Lightning's weights, optimisers and loop state, and its checks.

An exact resume needs our counters, the collector (episodes in flight, the context window, the
replay with its random stream, each env's own state) and the agent's random streams, which are
buffers of the agent and so already in the state dict. Everything here is tensors and plain
Python values, so checkpoints load with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import lightning as L

from lit_dmash.checkpointing import CheckpointError
from lit_dmash.config import ContextConfig, EnvConfig, ProtocolConfig, SACConfig

FORMAT = 2  # 1: session-3 checkpoints (pickled objects); 2: tensors and plain values only


def architecture(module: L.LightningModule) -> dict[str, Any]:
    """What a checkpoint must agree on to be loaded into `module`."""
    return {
        "format": FORMAT,
        "env.name": module.env_cfg.name,
        "seeds": list(module.seeds),
        **module.spec.architecture(),
    }


def training_state(module: L.LightningModule) -> dict[str, Any]:
    """The `"lit_dmash"` entry of a checkpoint."""
    return {
        "architecture": architecture(module),
        "env_frames": module.env_frames,
        "updates": module.updates,
        "nonfinite_skipped": module.nonfinite_skipped,
        "sim_failures": module.sim_failures,
        "collector": module.collector.state_dict() if module.collector is not None else None,
    }


GROUPS = {"env": EnvConfig, "protocol": ProtocolConfig, "sac": SACConfig, "context": ContextConfig}
FREE_ON_RESUME = ("protocol.total_steps", "protocol.steps_per_batch", "protocol.compile")
"""What a resumed run may change silently: the budget, and how the same steps are executed."""
FIXED_ON_RESUME = ("env.num_envs", "env.horizon")
"""What no resume can change: the replay and the episodes in flight have their shape."""
ALLOW_FLAG = "--model.allow_protocol_change=true"


def protocol(hparams: dict[str, Any]) -> dict[str, Any]:
    """Every `env.* / protocol.* / sac.* / context.*` hyper-parameter, flattened; a field missing
    from an older checkpoint counts as its default."""
    flat = {}
    for group, cls in GROUPS.items():
        values = hparams.get(group) or {}
        for field in dataclasses.fields(cls):
            default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
            flat[f"{group}.{field.name}"] = values.get(field.name, default)
    return flat


def protocol_changes(mine: dict[str, Any], saved: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """`{field: (checkpoint's, this run's)}` for every protocol field that differs (the budget aside)."""
    a, b = protocol(saved), protocol(mine)
    return {k: (a[k], b[k]) for k in b if k not in FREE_ON_RESUME and _plain(a[k]) != _plain(b[k])}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def check_compatible(
    module: L.LightningModule,
    state: dict[str, Any] | None,
    saved_hparams: dict[str, Any] | None = None,
    resuming: bool = False,
) -> None:
    """Raise a `CheckpointError` naming the first field where the checkpoint and `module` differ.

    When `resuming` a fit, also every protocol field that changed (gamma, learning rates,
    `bootstrap_timeouts`, `contexts_per_split`, ...; the budget may change): a resume continues
    *that* run, so a change is refused unless `module.allow_protocol_change` says it is meant.
    """
    if state is None:
        raise CheckpointError("not a lit-dmash checkpoint (no 'lit_dmash' entry)")
    mine = architecture(module)
    saved_arch = state.get("architecture", {})
    if saved_arch.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint format {saved_arch.get('format')!r} is not this version's {FORMAT}: it was written by an "
            "older lit-dmash whose agent and run state have another layout, which this version cannot resume or "
            "load (converting it only changes how its values are stored); start a new run"
        )
    for field in mine:
        if mine[field] != saved_arch.get(field):
            raise CheckpointError(
                f"checkpoint does not match this run: it has {field}={saved_arch.get(field)!r}, "
                f"this run has {mine[field]!r}"
            )
    if not resuming:
        return
    if saved_hparams is None:
        raise CheckpointError(f"checkpoint has no hyper_parameters to check this run's protocol against; {ALLOW_FLAG}")
    changes = protocol_changes(dict(module.hparams), dict(saved_hparams))
    fixed = [k for k in changes if k in FIXED_ON_RESUME]
    if fixed:
        was, now = changes[fixed[0]]
        raise CheckpointError(
            f"checkpoint does not match this run: it has {fixed[0]}={was!r}, this run has {now!r} "
            "(the replay and the episodes in flight have its shape)"
        )
    if changes and not getattr(module, "allow_protocol_change", False):
        listed = ", ".join(f"{k} {was!r} -> {now!r}" for k, (was, now) in changes.items())
        raise CheckpointError(
            f"resuming under a changed protocol ({listed}); the checkpoint's run would continue under "
            f"other settings than it started with. Resume with the checkpoint's values, start a new run, "
            f"or pass {ALLOW_FLAG} if the change is meant"
        )
