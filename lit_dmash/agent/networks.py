"""The agent's networks: actor, twin critics and dynamics model, each a trunk with an adapter slot.

Trunk as the authors build it: `Linear(in -> h1), ReLU, ..., Linear(h_{n-1} -> h_n)`, then the
adapter (if any) on that last pre-activation, then ReLU, then the head(s). A network is
conditioned in one of three ways (`Conditioning`): nothing, a vector concatenated to its input
(the true context or `z`), or an adapter whose weights come either from outside (DMA*-SH: the
dynamics model's hypernetwork, shared) or from the network's own hypernetwork (Decision Adapter,
the DMA*-H ablations).

All parameters carry a leading seed dim (`prefix=(S,)`); the critic stacks its twins too
(`(S, 2)`), so both twins of every seed run in one product per layer.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lit_dmash.nets.adapters import AdapterSpec, HyperNetwork
from lit_dmash.nets.ensemble import EnsembleLinear

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # the authors' actor: tanh output rescaled to [-5, 2]


@dataclass(frozen=True)
class Conditioning:
    """How a network reads the context.

    `concat_dim`: width of a vector appended to the input (0: none). `adapter`: the adapter at the
    last trunk layer (None: none). `hypernet_in`: input width of the network's own hypernetwork
    (None: adapter weights are given to `forward`, or there is no adapter).
    """

    concat_dim: int = 0
    adapter: AdapterSpec | None = None
    hypernet_in: int | None = None
    hypernet_hidden: tuple[int, ...] = (64, 64)
    repeated_inputs: bool = False  # the hypernetwork's input repeats across the batch (a true context)

    @property
    def owns_hypernet(self) -> bool:
        return self.adapter is not None and self.hypernet_in is not None


class Trunk(nn.Module):
    """`Linear/ReLU` layers with the adapter slot before the last ReLU."""

    def __init__(self, prefix: Sequence[int], in_dim: int, hidden: Sequence[int], cond: Conditioning) -> None:
        super().__init__()
        widths = [in_dim + cond.concat_dim, *hidden]
        self.layers = nn.ModuleList(EnsembleLinear(prefix, a, b) for a, b in itertools.pairwise(widths))
        self.cond = cond
        self.hypernet = None
        if cond.owns_hypernet:
            hidden_widths = cond.hypernet_hidden
            self.hypernet = HyperNetwork(prefix, cond.hypernet_in, hidden_widths, cond.adapter, cond.repeated_inputs)

    @property
    def width(self) -> int:
        return self.layers[-1].out_features

    def adapter_params(self, source: torch.Tensor) -> torch.Tensor:
        """This network's adapter weights from its own hypernetwork's input (`z` or the true context)."""
        return self.hypernet(source)

    def forward(self, x: torch.Tensor, adapter: torch.Tensor | None = None) -> torch.Tensor:
        """`x [*prefix, B, in]` -> features `[*prefix, B, width]`.

        `adapter`: the adapter weights `[S, B, P]` given from outside, or, when this trunk owns a
        hypernetwork, that hypernetwork's input (`z` or the true context).
        """
        factorised = self._factorised(x)
        group = 0
        if self.hypernet is not None and factorised:
            adapter = self.hypernet.hidden(adapter)
        elif self.hypernet is not None:
            adapter, group = self._generate(adapter)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == last and self.cond.adapter is not None:
                if factorised:
                    out = self.hypernet.out
                    x = self.cond.adapter.apply_factorised(x, adapter, out.weight, out.bias)
                elif group > 1:
                    x = self.cond.adapter.apply_grouped(x, adapter, group)
                else:
                    x = self.cond.adapter.apply(x, adapter)
            x = torch.relu(x)
        return x

    def _factorised(self, x: torch.Tensor) -> bool:
        """Own bottleneck hypernetwork, gradient on, one network per seed, inputs that differ per sample:
        the bilinear form is cheaper than writing (and differentiating) 16,672 weights per sample."""
        cond = self.cond
        own = self.hypernet is not None and cond.adapter.kind == "bottleneck" and not cond.repeated_inputs
        return own and torch.is_grad_enabled() and len(self.hypernet.prefix) == 1

    def _generate(self, source: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Adapter weights and the block size `g` they hold: one set per sample (`g = 0`), or one per
        block of `g` consecutive samples that share their input.

        A repeated input (a context shared by many samples) is generated once: a batch holds 12
        samples of each of 20 contexts, so the hypernetwork runs on the 20 distinct rows (gradients
        sum through the gather), the same function at 1/12 of the cost; and since the batch is
        stratified (each sub-env's samples consecutive), the weights stay one per block for
        `AdapterSpec.apply_grouped`. Rows are compared on seed 0; when the seeds' contexts differ
        (ode_k), no dedupe.
        """
        if not self.cond.repeated_inputs:
            return self.hypernet(source), 0
        lead = source.shape[:-2]
        rows = source.reshape(-1, *source.shape[-2:])
        unique, inverse = torch.unique(rows[0], dim=0, return_inverse=True)
        if not torch.equal(rows, unique[inverse].expand_as(rows)):
            return self.hypernet(source), 0
        params = self.hypernet(unique.expand(*lead, *unique.shape))
        block = _block_size(inverse)
        if block > 1:
            return params.index_select(-2, inverse[::block]), block
        return params.index_select(-2, inverse), 0


def _block_size(labels: torch.Tensor) -> int:
    """`g` if `labels` is made of consecutive runs of `g` equal values (runs may repeat), else 1."""
    size = labels.numel()
    changes = (labels[1:] != labels[:-1]).nonzero()
    block = int(changes[0]) + 1 if changes.numel() else size
    if block == 1 or size % block:
        return 1
    blocks = labels.view(-1, block)
    return block if torch.equal(blocks, blocks[:, :1].expand_as(blocks)) else 1


def _join(*parts: torch.Tensor | None) -> torch.Tensor:
    present = [p for p in parts if p is not None]
    return torch.cat(present, dim=-1) if len(present) > 1 else present[0]


class Actor(nn.Module):
    """Tanh-Gaussian policy: `(obs, context) -> (mean, log_std)` of the pre-tanh Gaussian."""

    def __init__(self, seeds: int, obs_dim: int, action_dim: int, hidden: Sequence[int], cond: Conditioning) -> None:
        super().__init__()
        self.trunk = Trunk((seeds,), obs_dim, hidden, cond)
        self.mean = EnsembleLinear((seeds,), self.trunk.width, action_dim)
        self.log_std = EnsembleLinear((seeds,), self.trunk.width, action_dim)

    def forward(
        self, obs: torch.Tensor, concat: torch.Tensor | None = None, adapter: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(_join(obs, concat), adapter)
        log_std = torch.tanh(self.log_std(h))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)
        return self.mean(h), log_std


class TwinCritic(nn.Module):
    """Two Q-functions per seed, stacked: `(obs, action, context) -> Q [S, 2, B]`."""

    def __init__(self, seeds: int, obs_dim: int, action_dim: int, hidden: Sequence[int], cond: Conditioning) -> None:
        super().__init__()
        self.trunk = Trunk((seeds, 2), obs_dim + action_dim, hidden, cond)
        self.head = EnsembleLinear((seeds, 2), self.trunk.width, 1)

    def forward(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        concat: torch.Tensor | None = None,
        adapter: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = _join(obs, action, concat).unsqueeze(1)  # one input for both twins
        if adapter is not None and self.trunk.cond.owns_hypernet:
            adapter = adapter.unsqueeze(1)  # one hypernetwork input for both twins' own hypernetworks
        return self.head(self.trunk(x, adapter)).squeeze(-1)


class DynamicsModel(nn.Module):
    """Forward model `(s, a, context) -> s' - s`; in DMA*-SH it owns the shared hypernetwork."""

    def __init__(self, seeds: int, obs_dim: int, action_dim: int, hidden: Sequence[int], cond: Conditioning) -> None:
        super().__init__()
        self.trunk = Trunk((seeds,), obs_dim + action_dim, hidden, cond)
        self.head = EnsembleLinear((seeds,), self.trunk.width, obs_dim)

    def forward(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        concat: torch.Tensor | None = None,
        adapter: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.head(self.trunk(_join(obs, action, concat), adapter))
