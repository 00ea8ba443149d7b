"""Adapters whose weights a hypernetwork generates per sample, and that hypernetwork.

The paper's adapter (`bottleneck`, the default) is a residual two-layer MLP inserted before the
last ReLU of a network's trunk: `h <- relu(h + W2 relu(W1 h + b1) + b2)` with `W1: r x d`,
`W2: d x r`, `r = d / 8` (256 -> 32 -> 256: 16,672 weights). The authors apply it per sample in
a Python loop over a weightless target network; a batched product over the per-sample weights
is the same function (tested against that explicit loop).

Our earlier adapters act at the same slot and are kept as options: `scale_shift`
(`h * (1 + g) + b`), `lowrank` (`h + U V^T h + b`) and `full` (`h + W h + b`); their
hypernetwork's output layer starts at zero, so they start as the identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lit_dmash.nets.ensemble import EnsembleLinear, EnsembleModule

ADAPTER_KINDS = ("bottleneck", "scale_shift", "lowrank", "full")


@dataclass(frozen=True)
class AdapterSpec:
    """Which adapter, on a trunk of width `width`; `rank` is the bottleneck / low rank."""

    kind: str
    width: int
    rank: int

    def __post_init__(self) -> None:
        if self.kind not in ADAPTER_KINDS:
            raise ValueError(f"adapter kind must be one of {ADAPTER_KINDS}, got {self.kind!r}")

    @property
    def num_params(self) -> int:
        d, r = self.width, self.rank
        return {
            "bottleneck": 2 * d * r + r + d,
            "scale_shift": 2 * d,
            "lowrank": 2 * d * r + d,
            "full": d * d + d,
        }[self.kind]

    @property
    def starts_at_identity(self) -> bool:
        """Ours start as the identity (zero output layer); the paper's uses PyTorch's default init."""
        return self.kind != "bottleneck"

    def apply(self, h: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """The adapted pre-activation for hidden `h [..., B, d]` and per-sample `params [..., B, P]`.

        `params` may lack dims that `h` has right after the seed dim (the twin critics share
        one adapter): `params [S, B, P]` with `h [S, 2, B, d]`.
        """
        if params.dim() < h.dim():
            params = params.unsqueeze(1)
        d, r = self.width, self.rank
        if self.kind == "bottleneck":
            w1, b1, w2, b2 = params.split([r * d, r, d * r, d], dim=-1)
            hidden = torch.relu(_matvec(w1.unflatten(-1, (r, d)), h) + b1)
            return h + _matvec(w2.unflatten(-1, (d, r)), hidden) + b2
        if self.kind == "scale_shift":
            gain, shift = params.split([d, d], dim=-1)
            return torch.addcmul(shift, h, 1 + gain)
        if self.kind == "lowrank":
            u, v, shift = params.split([d * r, d * r, d], dim=-1)
            projected = _matvec(v.unflatten(-1, (d, r)).mT, h)
            return h + _matvec(u.unflatten(-1, (d, r)), projected) + shift
        weight, shift = params.split([d * d, d], dim=-1)
        return h + _matvec(weight.unflatten(-1, (d, d)), h) + shift


def _matvec(matrices: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """`matrices [..., B, o, i] @ vectors [..., B, i]`, broadcasting leading dims without copies."""
    if matrices.shape[:-2] == vectors.shape[:-1]:
        return torch.matmul(matrices, vectors.unsqueeze(-1)).squeeze(-1)
    return torch.einsum("...boi,...bi->...bo", matrices, vectors)


class HyperNetwork(EnsembleModule):
    """Context -> adapter weights: an MLP (the authors' `HMLP`: 64 -> ReLU -> 64 -> ReLU -> linear).

    `prefix` stacks members (seeds, and twins for per-critic hypernetworks). Inputs `[*prefix, B, in]`
    (size-1 dims broadcast) give `[*prefix, B, spec.num_params]`.
    """

    def __init__(self, prefix: Sequence[int], in_features: int, hidden: Sequence[int], spec: AdapterSpec) -> None:
        super().__init__()
        self.prefix, self.spec = tuple(prefix), spec
        widths = [in_features, *hidden]
        self.layers = nn.ModuleList(EnsembleLinear(self.prefix, a, b) for a, b in zip(widths, widths[1:], strict=False))
        self.out = EnsembleLinear(self.prefix, widths[-1], spec.num_params)

    def init_member(self, index: int, generator: torch.Generator) -> None:
        # The layers init themselves (they are EnsembleModules too); only our adapters start at zero.
        if self.spec.starts_at_identity:
            with torch.no_grad():
                self.out.weight[index].zero_()
                self.out.bias[index].zero_()

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        x = context
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.out(x)
