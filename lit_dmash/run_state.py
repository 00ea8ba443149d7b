"""What a checkpoint holds beyond Lightning's weights, optimiser and loop state, and its checks.

An exact resume needs the replay buffer, our counters, the RNG states (torch, numpy, python:
policy sampling, buffer sampling and masking all draw from them), and the episodes in flight:
the collector's carried tensordict (observations, transition windows, running returns) and the
env's own state (DI-Friction: positions, velocities, step counts, contexts, its generator).
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch

from lit_dmash.checkpointing import CheckpointError


def architecture(module: L.LightningModule) -> dict[str, Any]:
    """What a checkpoint must agree on to be loaded into `module`."""
    arch = {
        "method": module.method.name,
        "env.name": module.env_cfg.name,
        "sac.hidden_dims": list(module.sac_cfg.hidden_dims),
    }
    if module.context_model is not None:
        cfg = module.context_cfg
        arch.update(
            {
                "context.history_len": cfg.history_len,
                "context.z_dim": cfg.z_dim,
                "context.encoder_hidden": list(cfg.encoder_hidden),
                "context.adapter_kind": cfg.adapter_kind,
                "context.adapter_rank": cfg.adapter_rank,
                "context.hypernet_hidden": list(cfg.hypernet_hidden),
                "context.dynamics_hidden": cfg.dynamics_widths(module.sac_cfg.hidden_dims),
            }
        )
    return arch


def _stored_tensors(buffer_state: dict[str, Any]) -> dict[str, Any]:
    """The storage's flat `{key: tensor}` of a replay buffer `state_dict` ({} before its first write).

    Edited in place by the two functions below: the OrderedDict carries TensorDict metadata.
    """
    storage = buffer_state["_storage"]
    if storage.get("initialized") and isinstance(storage.get("_storage"), dict):
        return storage["_storage"]
    return {}


def _filled_rows_only(buffer_state: dict[str, Any]) -> dict[str, Any]:
    """A replay buffer `state_dict` whose storage keeps only its filled rows.

    TorchRL saves the whole preallocated storage: a 1M-capacity Cheetah buffer holding 20k
    transitions made a 253 MB checkpoint. Rows are cloned: saving a slice would save its base.
    """
    rows = buffer_state["_storage"].get("_len", 0)
    tensors = _stored_tensors(buffer_state)
    for key, value in tensors.items():
        if torch.is_tensor(value):
            tensors[key] = value[:rows].clone()
    return buffer_state


def _to_capacity(buffer_state: dict[str, Any], capacity: int) -> dict[str, Any]:
    """Undo `_filled_rows_only`: zero rows up to `capacity`, so the storage can keep growing in place."""
    tensors = _stored_tensors(buffer_state)
    for key, value in tensors.items():
        if torch.is_tensor(value) and value.shape[:1] != (capacity,):
            full = torch.zeros((capacity, *value.shape[1:]), dtype=value.dtype)
            full[: value.shape[0]] = value
            tensors[key] = full
    return buffer_state


def training_state(module: L.LightningModule) -> dict[str, Any]:
    """The `"lit_dmash"` entry of a checkpoint."""
    state: dict[str, Any] = {
        "architecture": architecture(module),
        "env_frames": module.env_frames,
        "updates": module.updates,
        "episodes": module.episodes,
        "nonfinite_skipped": module.nonfinite_skipped,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
    }
    if module.replay_buffer is not None:
        state["replay_buffer"] = _filled_rows_only(module.replay_buffer.state_dict())
    if module.collector is not None and not module.env_poisoned:
        # `_carrier` is TorchRL-internal (0.14): there is no public API to checkpoint a collector
        # mid-rollout, and without it a resume would restart every episode in flight.
        carrier = getattr(module.collector, "_carrier", None)
        if carrier is not None:
            state["carrier"] = carrier.clone()
        base_env = getattr(module.collector.env, "base_env", module.collector.env)
        if hasattr(base_env, "env_state"):
            state["env"] = base_env.env_state()
    return state


def check_compatible(module: L.LightningModule, state: dict[str, Any] | None) -> None:
    """Raise a `CheckpointError` naming the first field where the checkpoint and `module` differ."""
    if state is None:
        raise CheckpointError("not a lit-dmash checkpoint (no 'lit_dmash' entry)")
    mine = architecture(module)
    for field, saved in state["architecture"].items():
        if mine.get(field) != saved:
            raise CheckpointError(
                f"checkpoint does not match this run: it has {field}={saved!r}, this run has {mine.get(field)!r}"
            )


def apply_training_state(module: L.LightningModule, state: dict[str, Any]) -> None:
    """Buffer, episodes in flight and RNG states, once the collector and buffer exist.

    Exact only in a single process: under DDP rank 0 writes the checkpoint, so every rank
    restores rank 0's buffer but keeps its own env seed and RNG streams.
    """
    if "replay_buffer" in state:
        capacity = module.replay_buffer.storage.max_size
        module.replay_buffer.load_state_dict(_to_capacity(state["replay_buffer"], capacity))
    if module.trainer.world_size > 1:
        return
    if "carrier" in state:
        module.collector._carrier = state["carrier"].to(module.device)
        base_env = getattr(module.collector.env, "base_env", module.collector.env)
        if "env" in state and hasattr(base_env, "load_env_state"):
            base_env.load_env_state(state["env"])
    torch.set_rng_state(state["rng"]["torch"])
    np.random.set_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])
