"""The method's building blocks: stacked (seed-batched) layers, encoder, hypernetwork and adapters."""

from lit_dmash.nets.adapters import ADAPTER_KINDS, AdapterSpec, HyperNetwork
from lit_dmash.nets.encoder import ContextEncoder, EncoderSpec
from lit_dmash.nets.ensemble import EnsembleLayerNorm, EnsembleLinear, EnsembleLSTM, init_members
from lit_dmash.nets.normalizer import RunningNorm
from lit_dmash.nets.rng import SeedRandom

__all__ = [
    "ADAPTER_KINDS",
    "AdapterSpec",
    "ContextEncoder",
    "EncoderSpec",
    "EnsembleLSTM",
    "EnsembleLayerNorm",
    "EnsembleLinear",
    "HyperNetwork",
    "RunningNorm",
    "SeedRandom",
    "init_members",
]
