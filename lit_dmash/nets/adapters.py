"""Adapters whose weights a hypernetwork generates per sample, and that hypernetwork.

The paper's adapter (`bottleneck`, the default) is a residual two-layer MLP inserted before the
last ReLU of a network's trunk: `h <- relu(h + W2 relu(W1 h + b1) + b2)` with `W1: r x d`,
`W2: d x r`, `r = d / 8` (256 -> 32 -> 256: 16,672 weights). The authors apply it per sample in
a Python loop over a weightless target network; batched products over the per-sample weights
are the same function (tested against that explicit loop).

Our earlier adapters act at the same slot and are kept as options: `scale_shift`
(`h * (1 + g) + b`), `lowrank` (`h + U V^T h + b`) and `full` (`h + W h + b`); their
hypernetwork's output layer starts at zero, so they start as the identity.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lit_dmash.names import ADAPTER_KINDS
from lit_dmash.nets.ensemble import EnsembleLinear, EnsembleModule


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
        """The adapted pre-activation for hidden `h [S, (T,) B, d]` and per-sample `params [S, B, P]`.

        `h` may carry a twin dim after the seed dim that `params` lacks (the twin critics share one
        adapter). Bottleneck params are laid out `[W1^T (d x r), b1, W2 (d x r), b2]`: the authors'
        16,672 outputs in another order (their initialisation is i.i.d., so the same distribution),
        chosen so that both products read each matrix as `[in, out]`, the fast orientation below.
        """
        d, r = self.width, self.rank
        if self.kind == "bottleneck":
            w1t, b1, w2, b2 = params.split([d * r, r, d * r, d], dim=-1)
            if params.dim() < h.dim():
                b1, b2 = b1.unsqueeze(1), b2.unsqueeze(1)
            hidden = torch.relu(_rowvec(h, w1t.unflatten(-1, (d, r))) + b1)
            return h + _rowvec(hidden, w2.unflatten(-1, (d, r)).mT) + b2
        if params.dim() < h.dim():
            params = params.unsqueeze(1)
        if self.kind == "scale_shift":
            gain, shift = params.split([d, d], dim=-1)
            return torch.addcmul(shift, h, 1 + gain)
        if self.kind == "lowrank":
            u, v, shift = params.split([d * r, d * r, d], dim=-1)
            projected = torch.matmul(v.unflatten(-1, (d, r)).mT, h.unsqueeze(-1)).squeeze(-1)
            return h + torch.matmul(u.unflatten(-1, (d, r)), projected.unsqueeze(-1)).squeeze(-1) + shift
        weight, shift = params.split([d * d, d], dim=-1)
        return h + torch.matmul(weight.unflatten(-1, (d, d)), h.unsqueeze(-1)).squeeze(-1) + shift

    def apply_grouped(self, h: torch.Tensor, params: torch.Tensor, group: int) -> torch.Tensor:
        """`apply` when consecutive blocks of `group` samples share their weights.

        `h [S, (T,) G * group, d]`, `params [S, (T,) G, P]`: one set of weights per block (a batch of
        12 samples from each of 20 contexts, each context's adapter generated once). Each block's
        matrices are read once for its `group` rows instead of being copied out per sample: the same
        function as `apply(h, params.repeat_interleave(group, -2))`, at a fraction of the memory
        traffic.
        """
        d, r = self.width, self.rank
        x = h.unflatten(-2, (-1, group))  # [..., G, group, d]
        if params.dim() < h.dim():
            params = params.unsqueeze(1)
        p = params.unsqueeze(-2)  # [..., G, 1, P]
        if self.kind == "bottleneck":
            w1t, b1, w2, b2 = params.split([d * r, r, d * r, d], dim=-1)
            hidden = torch.relu(torch.matmul(x, w1t.unflatten(-1, (d, r))) + b1.unsqueeze(-2))
            out = x + torch.matmul(hidden, w2.unflatten(-1, (d, r)).mT) + b2.unsqueeze(-2)
        elif self.kind == "scale_shift":
            gain, shift = p.split([d, d], dim=-1)
            out = torch.addcmul(shift, x, 1 + gain)
        elif self.kind == "lowrank":
            u, v, shift = params.split([d * r, d * r, d], dim=-1)
            projected = torch.matmul(x, v.unflatten(-1, (d, r)))
            out = x + torch.matmul(projected, u.unflatten(-1, (d, r)).mT) + shift.unsqueeze(-2)
        else:
            weight, shift = params.split([d * d, d], dim=-1)
            out = x + torch.matmul(x, weight.unflatten(-1, (d, d)).mT) + shift.unsqueeze(-2)
        return out.flatten(-3, -2)

    def apply_factorised(
        self, h: torch.Tensor, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
    ) -> torch.Tensor:
        """The bottleneck adapter from the hypernetwork's last hidden layer, never forming its output.

        The per-sample params are `weight @ hidden + bias` (16,672 numbers each); the adapter needs
        only `h W1^T`, `b1`, `u W2^T` and `b2`, each bilinear in `hidden` and `h` (or `u`), so they
        are a few dense products with views of the hypernetwork's output layer. Equal to
        `apply(h, hypernet(z))` up to rounding, and cheaper with gradient: the per-sample weights and
        their gradients (16 MB each at batch 240) are never written. For a trunk that owns its
        hypernetwork: `h [S, B, d]`, `hidden [S, B, H]`, `weight [S, P, H]`, `bias [S, P]`.
        """
        d, r = self.width, self.rank
        seeds, batch, width = hidden.shape[0], hidden.shape[-2], hidden.shape[-1]
        w1t, b1w, w2, b2w = weight.split([d * r, r, d * r, d], dim=1)
        c1t, b1c, c2, b2c = bias.split([d * r, r, d * r, d], dim=1)
        first = torch.bmm(h, w1t.reshape(seeds, d, r * width)).reshape(seeds, batch, r, width)
        pre = (first * hidden.unsqueeze(-2)).sum(-1) + torch.bmm(h, c1t.reshape(seeds, d, r))
        u = torch.relu(pre + torch.baddbmm(b1c.unsqueeze(1), hidden, b1w.mT))
        outer = (u.unsqueeze(-1) * hidden.unsqueeze(-2)).reshape(seeds, batch, r * width)
        second = torch.bmm(outer, w2.reshape(seeds, d, r * width).mT) + torch.bmm(u, c2.reshape(seeds, d, r).mT)
        return h + second + torch.baddbmm(b2c.unsqueeze(1), hidden, b2w.mT)


def _rowvec(vectors: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """`vectors [S, (T,) B, i] @ matrices [S, B, i, o]`: one batched product over the samples.

    Row vectors times `[i, o]` matrices: MKL's batched product is ~10x faster in this orientation
    than as `[o, i] @ [i, 1]` (0.29 vs 3.0 ms at batch 240, 256 -> 32, one thread). With a twin dim
    on `vectors` (two critics sharing one adapter), the twins are two rows of one product, so each
    sample's matrix is read once.
    """
    in_dim, out_dim = matrices.shape[-2:]
    if vectors.dim() == matrices.dim() - 1:  # one vector per matrix (any leading dims)
        lead = vectors.shape[:-1]
        out = torch.bmm(vectors.reshape(-1, 1, in_dim), matrices.reshape(-1, in_dim, out_dim))
        return out.reshape(*lead, out_dim)
    seeds, batch = matrices.shape[:2]
    twins = vectors.shape[1]
    rows = vectors.permute(0, 2, 1, 3).reshape(seeds * batch, twins, in_dim)
    out = torch.bmm(rows, matrices.reshape(seeds * batch, in_dim, out_dim))
    return out.reshape(seeds, batch, twins, out_dim).permute(0, 2, 1, 3)


class HyperNetwork(EnsembleModule):
    """Context -> adapter weights: an MLP (the authors' `HMLP`: 64 -> ReLU -> 64 -> ReLU -> linear).

    `prefix` stacks members (seeds, and twins for per-critic hypernetworks). Inputs `[*prefix, B, in]`
    (size-1 dims broadcast) give `[*prefix, B, spec.num_params]`.
    """

    def __init__(
        self,
        prefix: Sequence[int],
        in_features: int,
        hidden: Sequence[int],
        spec: AdapterSpec,
        few_inputs: bool = False,
    ) -> None:
        """`few_inputs`: the input repeats across the batch (a true context), so the output layer runs on a
        few distinct rows and is stored `[in, out]` (`EnsembleLinear(transposed=True)`)."""
        super().__init__()
        self.prefix, self.spec = tuple(prefix), spec
        widths = [in_features, *hidden]
        self.layers = nn.ModuleList(EnsembleLinear(self.prefix, a, b) for a, b in itertools.pairwise(widths))
        self.out = EnsembleLinear(self.prefix, widths[-1], spec.num_params, transposed=few_inputs)

    def init_member(self, index: int, generator: torch.Generator) -> None:
        # The layers init themselves (they are EnsembleModules too); only our adapters start at zero.
        if self.spec.starts_at_identity:
            with torch.no_grad():
                self.out.weight[index].zero_()
                self.out.bias[index].zero_()

    def hidden(self, context: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations (the output layer's input)."""
        x = context
        for layer in self.layers:
            x = torch.relu(layer(x))
        return x

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(context))
