"""The MLP every network is made of: concatenated inputs, and optionally one adapter slot.

The actor, both Q-functions and the dynamics model are all `AdaptedMLP`s. Where the adapter is
generated outside (the shared hypernetwork of DMA*-SH), the adapter parameters come in as the
last input; where the network owns its hypernetwork (the `separate` ablation), the last input is
the context embedding `z`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from lit_dmash.nets.hypernet import AdapterShape, HyperNetwork

ADAPTER_SOURCES = ("none", "params", "z")


class AdaptedMLP(nn.Module):
    """ReLU MLP over `cat(inputs)`; the adapter, if any, acts after hidden layer `adapter_layer`.

    Args:
        in_features: Width of the concatenated (non-adapter) inputs.
        out_features: Output width.
        hidden_dims: Hidden layer widths.
        adapter: Adapter shape; its width must equal `hidden_dims[adapter_layer]`.
        adapter_layer: Which hidden layer's activation the adapter modulates.
        adapter_source: `"none"`, `"params"` (last input = adapter parameters) or `"z"` (last
            input = embedding; this network then owns a hypernetwork of `z_dim` inputs).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_dims: Sequence[int],
        adapter: AdapterShape | None = None,
        adapter_layer: int = 0,
        adapter_source: str = "none",
        z_dim: int | None = None,
        hypernet_hidden: Sequence[int] = (64,),
    ) -> None:
        super().__init__()
        if adapter_source not in ADAPTER_SOURCES:
            raise ValueError(f"adapter_source must be one of {ADAPTER_SOURCES}, got {adapter_source!r}")
        if (adapter is None) != (adapter_source == "none"):
            raise ValueError("an adapter needs an adapter_source, and an adapter_source needs an adapter")
        if adapter is not None and hidden_dims[adapter_layer] != adapter.width:
            raise ValueError(
                f"adapter width {adapter.width} != hidden width {hidden_dims[adapter_layer]} at layer {adapter_layer}"
            )
        widths = [in_features, *hidden_dims]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.out = nn.Linear(widths[-1], out_features)
        self.adapter, self.adapter_layer, self.adapter_source = adapter, adapter_layer, adapter_source
        self.hypernet = HyperNetwork(z_dim, adapter, hypernet_hidden) if adapter_source == "z" else None

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        params = None
        if self.adapter_source != "none":
            *inputs, conditioning = inputs
            params = self.hypernet(conditioning) if self.hypernet is not None else conditioning
        x = torch.cat(inputs, dim=-1) if len(inputs) > 1 else inputs[0]
        for i, layer in enumerate(self.hidden):
            x = torch.relu(layer(x))
            if params is not None and i == self.adapter_layer:
                x = self.adapter.apply(x, params)
        return self.out(x)
