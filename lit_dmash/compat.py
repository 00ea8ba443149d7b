"""Every use of a Lightning internal in one place, with the version it was checked against.

Checked against lightning 2.6.6 and torch 2.13. If an upgrade breaks one of these, this file is
the only one to change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    import lightning as L


def should_log(module: L.LightningModule) -> bool:
    """Lightning's own rule for "this step is written" (`log_every_n_steps`).

    Protected connector (no public accessor in 2.6). `LightningModule.log` costs ~1 ms a call (its
    result collection is moved and updated per call), more than an update at small sizes, and
    values logged on a step Lightning does not write are dropped anyway: so we log only then.
    """
    return module.trainer._logger_connector.should_update_logs


def fitting(module: L.LightningModule) -> bool:
    """Whether `module` is attached to a Trainer that is fitting (not testing or validating).

    `_trainer`: `LightningModule.trainer` raises when no Trainer is attached (e.g. `load_agent`).
    """
    from lightning.pytorch.trainer.states import TrainerFn

    trainer = module._trainer
    return trainer is not None and trainer.state.fn == TrainerFn.FITTING


@contextlib.contextmanager
def no_backward_sync(module: L.LightningModule) -> Iterator[None]:
    """Run a backward without DDP's reducer: we all-reduce each optimiser's gradients ourselves.

    One update makes several backward passes (dynamics, critic, actor twice, alpha) on different
    parameters, which DDP's reducer (one backward per forward, all parameters) does not allow.
    `block_backward_sync` is public on Lightning's DDP strategy; other strategies have no reducer.
    """
    strategy = module.trainer.strategy
    block = getattr(strategy, "block_backward_sync", None)
    if block is None or module.trainer.world_size == 1:
        yield
        return
    with block():
        yield


def all_reduce_grads(module: L.LightningModule, optimizer: torch.optim.Optimizer) -> None:
    """Average the gradients of `optimizer`'s parameters over ranks (one flat all-reduce)."""
    if module.trainer.world_size == 1 or not (dist.is_available() and dist.is_initialized()):
        return
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= module.trainer.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
