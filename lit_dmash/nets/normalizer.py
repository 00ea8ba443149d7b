"""Running mean/std normalisation per seed, updated explicitly from collected data.

Our earlier input normalisation of the encoder's window (`context.input_norm: running`); the
authors use none on raw inputs. Never updated inside `forward`: statistics change only when
training calls `update`, so they are frozen in evaluation by construction and saved in
checkpoints as buffers. Under DDP the batch statistics are summed over ranks first, so every
rank holds the same normaliser.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn


class RunningNorm(nn.Module):
    """Per-feature running mean and variance for `prefix` stacked seeds (Chan et al., in float64)."""

    def __init__(self, prefix: Sequence[int], dim: int, eps: float = 1e-4, clip: float = 10.0) -> None:
        super().__init__()
        self.prefix, self.dim, self.eps, self.clip = tuple(prefix), dim, eps, clip
        self.register_buffer("count", torch.zeros(*self.prefix, 1, dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(*self.prefix, dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(*self.prefix, dim, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold `x [*prefix, ..., dim]` into the statistics of each seed."""
        x = x.reshape(*self.prefix, -1, self.dim).to(torch.float64)
        n = torch.full((*self.prefix, 1), float(x.shape[-2]), dtype=torch.float64, device=x.device)
        stats = torch.cat([n, x.sum(-2), x.pow(2).sum(-2)], dim=-1)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats)
        n, total, total_sq = stats.split([1, self.dim, self.dim], dim=-1)
        if (n == 0).all():
            return
        batch_mean = total / n
        batch_var = (total_sq / n - batch_mean.pow(2)).clamp_min(0.0)
        new_count = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / new_count
        self.var.copy_((self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / new_count) / new_count)
        self.count.copy_(new_count)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise `x [*prefix, ..., dim]` with each seed's statistics."""
        shape = (*self.prefix, *([1] * (x.dim() - len(self.prefix) - 1)), self.dim)
        mean = self.mean.reshape(shape).to(x.dtype)
        std = (self.var + self.eps).sqrt().reshape(shape).to(x.dtype)
        return ((x - mean) / std).clamp(-self.clip, self.clip)
