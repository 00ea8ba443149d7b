"""The context encoder: a set function of the recent transitions, and its input masking."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchrl.modules import MLP

OUTPUT_NORMS = ("l2", "layernorm", "none")


class SetEncoder(nn.Module):
    """Per-transition MLP, mean over the valid entries, then output normalisation.

    The mean makes `z` invariant to the order of the window. An empty window (an episode's
    first step, or every entry masked) pools to zeros: "no evidence yet". With `output_norm="l2"`
    `z` lies on the unit sphere, so its information is in its direction.
    """

    def __init__(self, entry_dim: int, hidden_dims: Sequence[int], z_dim: int, output_norm: str = "l2") -> None:
        super().__init__()
        if output_norm not in OUTPUT_NORMS:
            raise ValueError(f"output_norm must be one of {OUTPUT_NORMS}, got {output_norm!r}")
        self.phi = MLP(in_features=entry_dim, out_features=z_dim, num_cells=list(hidden_dims), activation_class=nn.ReLU)
        self.output_norm = output_norm
        self.layer_norm = nn.LayerNorm(z_dim, elementwise_affine=False) if output_norm == "layernorm" else None

    def forward(self, window: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.pool(self.phi(window), mask)

    def pool(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Masked mean of per-entry features `[..., K, z]`, then output normalisation.

        Split from `forward` so that overlapping windows (t and t+1 share K-1 entries) can run
        `phi` once per distinct entry and pool each window from the same features.
        """
        weights = mask.to(features.dtype).unsqueeze(-1)
        pooled = (features * weights).sum(-2) / weights.sum(-2).clamp_min(1.0)
        if self.output_norm == "l2":
            return F.normalize(pooled, dim=-1, eps=1e-6)
        if self.layer_norm is not None:
            return self.layer_norm(pooled)
        return pooled


def drop_entries(mask: torch.Tensor, p: float) -> torch.Tensor:
    """Randomly drop each valid window entry with probability `p` (training only)."""
    if p <= 0:
        return mask
    return mask & (torch.rand(mask.shape, device=mask.device) >= p)


def drop_features(window: torch.Tensor, p: float) -> torch.Tensor:
    """Randomly zero individual features of the (normalised) window entries with probability `p`."""
    if p <= 0:
        return window
    return window * (torch.rand(window.shape, device=window.device) >= p).to(window.dtype)
