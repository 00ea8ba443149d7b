"""The hypernetwork: context embedding `z` -> the parameters of one adapter on a hidden layer.

An adapter of width `d` acts on a hidden activation `h` as `h' = A(z) h + b(z)`:
- `scale_shift` (default): `h * (1 + g(z)) + b(z)`, diagonal `A`, `2d` parameters;
- `lowrank`: `h + U(z) (V(z)^T h) + b(z)`, `2dr + d` parameters;
- `full`: `h + W(z) h + b(z)`, `d^2 + d` parameters.
Each starts exactly at the identity (`h' = h` for every `z`) yet receives gradient from the first
update: the output layer is zero, except the `V` block of `lowrank`, whose random bias keeps
`U`'s gradient non-zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchrl.modules import MLP

ADAPTER_KINDS = ("scale_shift", "lowrank", "full")


@dataclass(frozen=True)
class AdapterShape:
    """Which adapter, on a hidden layer of which width."""

    kind: str
    width: int
    rank: int = 4

    def __post_init__(self) -> None:
        if self.kind not in ADAPTER_KINDS:
            raise ValueError(f"adapter kind must be one of {ADAPTER_KINDS}, got {self.kind!r}")

    @property
    def num_params(self) -> int:
        d, r = self.width, self.rank
        return {"scale_shift": 2 * d, "lowrank": 2 * d * r + d, "full": d * d + d}[self.kind]

    def apply(self, h: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """`h' = A h + b` for a batch of hidden activations `h` `[..., d]` and adapters `[..., P]`."""
        d, r = self.width, self.rank
        if self.kind == "scale_shift":
            gain, shift = params.split([d, d], dim=-1)
            return torch.addcmul(shift, h, 1 + gain)  # h * (1 + gain) + shift, one op on the large h
        if self.kind == "lowrank":
            u, v, shift = params.split([d * r, d * r, d], dim=-1)
            u, v = u.unflatten(-1, (d, r)), v.unflatten(-1, (d, r))
            projected = torch.einsum("...d,...dr->...r", h, v)
            return h + torch.einsum("...r,...dr->...d", projected, u) + shift
        weight, shift = params.split([d * d, d], dim=-1)
        return h + torch.einsum("...ij,...j->...i", weight.unflatten(-1, (d, d)), h) + shift


class HyperNetwork(nn.Module):
    """MLP from `z` to a flat vector of adapter parameters (see `AdapterShape.apply`)."""

    def __init__(self, z_dim: int, shape: AdapterShape, hidden_dims: Sequence[int]) -> None:
        super().__init__()
        self.shape = shape
        self.net = MLP(
            in_features=z_dim, out_features=shape.num_params, num_cells=list(hidden_dims), activation_class=nn.ReLU
        )
        last = self.net[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        if shape.kind == "lowrank":
            d, r = shape.width, shape.rank
            with torch.no_grad():
                last.bias[d * r : 2 * d * r].normal_(0.0, d**-0.5)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
