"""Layers whose parameters carry leading ensemble dims: seeds, and twin critics within a seed.

Every network of the agent is built from these, so S independent seeds (and a critic's two
twins) run as one batched matrix product per layer instead of a Python loop over networks or
`vmap(functional_call)`. A layer with `prefix=(S,)` holds S independent layers; with
`prefix=(S, 2)` it holds two per seed. Inputs carry the same leading dims (size-1 dims
broadcast, e.g. one observation batch for both twins).

Initialisation is per member from a generator (`init_member`), so member `i` of a stack built
from seeds `[s_0, ..., s_n]` is initialised exactly as a one-member stack built from `[s_i]`:
that is what makes seed `s` of a batched run equal a single run of seed `s`. Each layer draws as
its PyTorch counterpart does (`nn.Linear`, `nn.LSTM`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class EnsembleModule(nn.Module):
    """A module with stacked parameters; `init_member(i, generator)` initialises seed slice `i`."""

    prefix: tuple[int, ...]

    def init_member(self, index: int, generator: torch.Generator) -> None:
        raise NotImplementedError


def _flat(x: torch.Tensor, prefix: tuple[int, ...]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """`x [*prefix (broadcastable), *mid, d]` -> `[prod(prefix), N, d]` and the `mid` shape."""
    lead = len(prefix)
    x = x.expand(*prefix, *x.shape[lead:])
    mid = tuple(x.shape[lead:-1])
    return x.reshape(math.prod(prefix), -1, x.shape[-1]), mid


class EnsembleLinear(EnsembleModule):
    """`prod(prefix)` independent `nn.Linear(in_features, out_features)` layers, one `baddbmm`."""

    def __init__(self, prefix: Sequence[int], in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.prefix = tuple(prefix)
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(*self.prefix, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(*self.prefix, out_features)) if bias else None

    def init_member(self, index: int, generator: torch.Generator) -> None:
        # nn.Linear.reset_parameters: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)), then the bias.
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        with torch.no_grad():
            weights = self.weight[index].reshape(-1, self.out_features, self.in_features)
            biases = self.bias[index].reshape(-1, self.out_features) if self.bias is not None else None
            for member in range(weights.shape[0]):
                weights[member].uniform_(-bound, bound, generator=generator)
                if biases is not None:
                    biases[member].uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat, mid = _flat(x, self.prefix)
        weight = self.weight.reshape(-1, self.out_features, self.in_features)
        if self.bias is None:
            out = torch.bmm(flat, weight.mT)
        else:
            out = torch.baddbmm(self.bias.reshape(-1, 1, self.out_features), flat, weight.mT)
        return out.reshape(*self.prefix, *mid, self.out_features)

    def extra_repr(self) -> str:
        return f"prefix={self.prefix}, in={self.in_features}, out={self.out_features}, bias={self.bias is not None}"


class EnsembleLayerNorm(EnsembleModule):
    """`nn.LayerNorm(dim)` (elementwise affine) per member."""

    def __init__(self, prefix: Sequence[int], dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.prefix, self.dim, self.eps = tuple(prefix), dim, eps
        self.weight = nn.Parameter(torch.ones(*self.prefix, dim))
        self.bias = nn.Parameter(torch.zeros(*self.prefix, dim))

    def init_member(self, index: int, generator: torch.Generator) -> None:
        with torch.no_grad():
            self.weight[index].fill_(1.0)
            self.bias[index].zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = F.layer_norm(x, (self.dim,), eps=self.eps)
        shape = (*self.prefix, *([1] * (x.dim() - len(self.prefix) - 1)), self.dim)
        return normed * self.weight.reshape(shape) + self.bias.reshape(shape)


class EnsembleLSTM(EnsembleModule):
    """A one-layer unidirectional `nn.LSTM` per member; returns the final hidden state only.

    Written out (gates i, f, g, o as PyTorch orders them) because `nn.LSTM` takes one weight
    set: the input projection of all steps is one batched product, then one small product per
    step. Equal to `nn.LSTM` with the same weights (tested).
    """

    def __init__(self, prefix: Sequence[int], input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.prefix, self.input_size, self.hidden_size = tuple(prefix), input_size, hidden_size
        gates = 4 * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(*self.prefix, gates, input_size))
        self.weight_hh = nn.Parameter(torch.empty(*self.prefix, gates, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(*self.prefix, gates))
        self.bias_hh = nn.Parameter(torch.empty(*self.prefix, gates))

    def init_member(self, index: int, generator: torch.Generator) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)  # nn.LSTM: every parameter U(+-1/sqrt(hidden))
        with torch.no_grad():
            for param in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
                param[index].uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x [*prefix, B, T, input]` -> final hidden state `[*prefix, B, hidden]` (zero initial state)."""
        lead = len(self.prefix)
        members = math.prod(self.prefix)
        batch, steps = x.shape[lead], x.shape[lead + 1]
        flat = x.expand(*self.prefix, *x.shape[lead:]).reshape(members, batch * steps, self.input_size)
        w_ih = self.weight_ih.reshape(members, -1, self.input_size)
        w_hh = self.weight_hh.reshape(members, -1, self.hidden_size)
        bias = (self.bias_ih + self.bias_hh).reshape(members, 1, -1)
        projected = torch.baddbmm(bias, flat, w_ih.mT).reshape(members, batch, steps, -1)
        h = x.new_zeros(members, batch, self.hidden_size)
        c = torch.zeros_like(h)
        for t in range(steps):
            gates = torch.baddbmm(projected[:, :, t], h, w_hh.mT)
            i, f, g, o = gates.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return h.reshape(*self.prefix, batch, self.hidden_size)


def init_members(module: nn.Module, seeds: Sequence[int], offset: int = 0) -> None:
    """Initialise every `EnsembleModule` in `module`, member by member, from per-seed generators.

    Members are visited in registration order, children before their parent (a parent may adjust
    what its layers drew, e.g. zero an output layer), with one generator per seed (`seed + offset`),
    so a seed's parameters do not depend on which other seeds share the stack.
    """
    ensembles = [m for m in _post_order(module) if isinstance(m, EnsembleModule)]
    for index, seed in enumerate(seeds):
        generator = torch.Generator().manual_seed(int(seed) + offset)
        for layer in ensembles:
            layer.init_member(index, generator)


def _post_order(module: nn.Module) -> list[nn.Module]:
    out: list[nn.Module] = []
    for child in module.children():
        out.extend(_post_order(child))
    out.append(module)
    return out
