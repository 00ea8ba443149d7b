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
    """`prod(prefix)` independent `nn.Linear(in_features, out_features)` layers, one `baddbmm`.

    `weight` is `[*prefix, out, in]` as `nn.Linear`'s, or with `transposed=True` `[*prefix, in, out]`.
    The transposed layout is for a wide output computed from few rows (a hypernetwork fed 20 true
    contexts, 64 -> 16,672): autograd then writes the weight gradient `x^T g` in place, where the
    `[out, in]` layout makes it transpose-copy 4 MB per member (12.7 -> 7.3 ms forward + backward
    for the twin critics' hypernetworks). For 240-row layers the `[out, in]` layout measured as
    fast or faster (a 16,672-wide generation from 240 rows: 83 vs 95 ms per DMA*-SH update).
    Checkpoints that stored a transposed layer as `[out, in]` (state-dict version 1) are
    transposed on load.
    """

    _version = 2  # 1: every weight [*prefix, out, in]

    def __init__(
        self, prefix: Sequence[int], in_features: int, out_features: int, bias: bool = True, transposed: bool = False
    ) -> None:
        super().__init__()
        self.prefix, self.transposed = tuple(prefix), transposed
        self.in_features, self.out_features = in_features, out_features
        shape = (in_features, out_features) if transposed else (out_features, in_features)
        self.weight = nn.Parameter(torch.empty(*self.prefix, *shape))
        self.bias = nn.Parameter(torch.empty(*self.prefix, out_features)) if bias else None

    def init_member(self, index: int, generator: torch.Generator) -> None:
        # nn.Linear.reset_parameters: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)), then the bias,
        # drawn in nn.Linear's [out, in] order whatever the layout.
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        with torch.no_grad():
            weights = self.weight[index].reshape(-1, *self.weight.shape[-2:])
            biases = self.bias[index].reshape(-1, self.out_features) if self.bias is not None else None
            for member in range(weights.shape[0]):
                drawn = torch.empty(self.out_features, self.in_features, device=weights.device)
                drawn.uniform_(-bound, bound, generator=generator)
                weights[member].copy_(drawn.T if self.transposed else drawn)
                if biases is not None:
                    biases[member].uniform_(-bound, bound, generator=generator)

    def matrix(self) -> torch.Tensor:
        """The weights as `[members, in, out]` (a view)."""
        if self.transposed:
            return self.weight.reshape(-1, self.in_features, self.out_features)
        return self.weight.reshape(-1, self.out_features, self.in_features).mT

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat, mid = _flat(x, self.prefix)
        if self.bias is None:
            out = torch.bmm(flat, self.matrix())
        else:
            out = torch.baddbmm(self.bias.reshape(-1, 1, self.out_features), flat, self.matrix())
        return out.reshape(*self.prefix, *mid, self.out_features)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs) -> None:
        key = prefix + "weight"
        if self.transposed and local_metadata.get("version", 1) < 2 and key in state_dict:
            state_dict[key] = state_dict[key].transpose(-1, -2).contiguous()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    def extra_repr(self) -> str:
        sizes = f"prefix={self.prefix}, in={self.in_features}, out={self.out_features}"
        return f"{sizes}, bias={self.bias is not None}" + (", transposed" if self.transposed else "")


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

    Each member runs PyTorch's own LSTM kernel (`torch.lstm`, what `nn.LSTM` calls) on its slice of
    the stacked weights: its C++ step loop and backward are 2x (forward) to 3x (backward) faster
    than the same recurrence written with tensor ops in Python, at one call per member. Equal to
    `nn.LSTM` with the same weights (tested).
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
        batch = x.shape[lead]
        flat = x.expand(*self.prefix, *x.shape[lead:]).reshape(members, batch, -1, self.input_size)
        weights = [
            p.reshape(members, *p.shape[lead:]) for p in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        ]
        zeros = x.new_zeros(1, batch, self.hidden_size)
        finals = []
        for m in range(members):
            # (input, (h0, c0), params, has_biases, num_layers, dropout, train, bidirectional, batch_first)
            _, h, _ = torch.lstm(flat[m], (zeros, zeros), [w[m] for w in weights], True, 1, 0.0, False, False, True)
            finals.append(h[0])
        return torch.stack(finals).reshape(*self.prefix, batch, self.hidden_size)


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
