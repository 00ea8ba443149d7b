"""The MLP every network is made of: concatenated inputs, and optionally one adapter slot.

The actor, both Q-functions and the dynamics model are all `AdaptedMLP`s. Where the adapter is
generated outside (the shared hypernetwork of DMA*-SH), the adapter parameters come in as the
last input; where the network owns its hypernetwork (the `separate` ablation), the last input is
the context embedding `z`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

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
            x = layer(x).relu_()  # in place: Linear's backward needs its input, not its output
            if params is not None and i == self.adapter_layer:
                x = self.adapter.apply(x, params)
        return self.out(x)

    def forward_ensemble(self, params: Mapping[str, torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
        """This network's forward under N stacked parameter sets at once: `[B, ...]` -> `[N, B, out]`.

        `params` maps this module's parameter names (`hidden.0.weight`, ...) to tensors with a leading
        ensemble dim, as `torch.func.stack_module_state` or TorchRL's `SACLoss` (its twin critics)
        make them; the module's own parameters are not used. One `baddbmm` per layer does what
        `vmap(functional_call)` does at ~1 ms less per SAC update (`DirectSACLoss`). Inputs and the
        adapter (or `z`) are shared by all N members.
        """
        num = next(iter(params.values())).shape[0]
        adapter = None
        if self.adapter_source != "none":
            *inputs, conditioning = inputs
            adapter = conditioning
            if self.hypernet is not None:  # this network's own hypernetwork, one per member
                z = conditioning.expand(num, *conditioning.shape)
                adapter = _ensemble_sequential(self.hypernet.net, params, "hypernet.net.", z)
        x = torch.cat(inputs, dim=-1) if len(inputs) > 1 else inputs[0]
        x = x.expand(num, *x.shape)
        for i in range(len(self.hidden)):
            x = _ensemble_linear(x, params[f"hidden.{i}.weight"], params[f"hidden.{i}.bias"]).relu_()
            if adapter is not None and i == self.adapter_layer:
                x = self.adapter.apply(x, adapter)
        return _ensemble_linear(x, params["out.weight"], params["out.bias"])


def _ensemble_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`x @ W^T + b` per member: `x` `[N, B, in]`, `weight` `[N, out, in]`, `bias` `[N, out]`."""
    return torch.baddbmm(bias.unsqueeze(-2), x, weight.mT)


def _ensemble_sequential(
    net: nn.Sequential, params: Mapping[str, torch.Tensor], prefix: str, x: torch.Tensor
) -> torch.Tensor:
    """A Linear/ReLU `nn.Sequential` (TorchRL's `MLP`) under stacked parameters `prefix<idx>.weight`."""
    for idx, layer in enumerate(net):
        if isinstance(layer, nn.Linear):
            x = _ensemble_linear(x, params[f"{prefix}{idx}.weight"], params[f"{prefix}{idx}.bias"])
        elif isinstance(layer, nn.ReLU):
            x = torch.relu(x)
        else:
            raise TypeError(f"forward_ensemble supports Linear and ReLU layers, got {type(layer).__name__}")
    return x
