"""What a checkpoint holds beyond Lightning's weights, optimisers and loop state, and its checks.

An exact resume needs our counters, the collector (episodes in flight, the context window, the
replay with its random stream, each env's own state) and the agent's random streams, which are
buffers of the agent and so already in the state dict. Everything here is tensors and plain
Python values, so checkpoints load with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

from typing import Any

import lightning as L

from lit_dmash.checkpointing import CheckpointError

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


def check_compatible(module: L.LightningModule, state: dict[str, Any] | None) -> None:
    """Raise a `CheckpointError` naming the first field where the checkpoint and `module` differ."""
    if state is None:
        raise CheckpointError("not a lit-dmash checkpoint (no 'lit_dmash' entry)")
    mine = architecture(module)
    saved_arch = state.get("architecture", {})
    for field in mine:
        if mine[field] != saved_arch.get(field):
            raise CheckpointError(
                f"checkpoint does not match this run: it has {field}={saved_arch.get(field)!r}, "
                f"this run has {mine[field]!r}"
            )
