"""Running mean/std normalisation, updated explicitly from collected data.

Never updated inside `forward`: statistics change only when training calls `update`, so they are
frozen in evaluation by construction and saved in checkpoints as buffers. Under DDP the batch
statistics are summed over ranks first, so every rank holds the same normaliser.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class RunningNorm(nn.Module):
    """Per-feature running mean and variance (Chan et al.'s parallel update, in float64)."""

    def __init__(self, dim: int, eps: float = 1e-4, clip: float = 10.0) -> None:
        super().__init__()
        self.dim, self.eps, self.clip = dim, eps, clip
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, self.dim).to(torch.float64)
        stats = torch.cat([x.new_tensor([x.shape[0]]), x.sum(0), x.pow(2).sum(0)])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats)
        n, total, total_sq = stats[0], stats[1 : 1 + self.dim], stats[1 + self.dim :]
        if n == 0:
            return
        batch_mean = total / n
        batch_var = (total_sq / n - batch_mean.pow(2)).clamp_min(0.0)
        new_count = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / new_count
        self.var.copy_((self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / new_count) / new_count)
        self.count.copy_(new_count)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.mean.to(x.dtype), (self.var + self.eps).sqrt().to(x.dtype)
        return ((x - mean) / std).clamp(-self.clip, self.clip)
