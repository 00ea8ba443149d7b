"""The method's building blocks: MLP with an adapter slot, set encoder, hypernetwork, normaliser."""

from lit_dmash.nets.encoder import OUTPUT_NORMS, SetEncoder, drop_entries, drop_features
from lit_dmash.nets.hypernet import ADAPTER_KINDS, AdapterShape, HyperNetwork
from lit_dmash.nets.mlp import AdaptedMLP
from lit_dmash.nets.normalizer import RunningNorm

__all__ = [
    "ADAPTER_KINDS",
    "OUTPUT_NORMS",
    "AdaptedMLP",
    "AdapterShape",
    "HyperNetwork",
    "RunningNorm",
    "SetEncoder",
    "drop_entries",
    "drop_features",
]
