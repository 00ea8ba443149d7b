"""The context encoder E: a window of K recent transitions `(s, a, s' - s)` -> embedding `z`.

The authors' pipeline (DMA, DMA*, DMA*-SH; `lstm`):
1. keep `k = int(fraction * K)` slots of the window: in training a random ordered subset per
   sample; in evaluation fixed, evenly spaced slots (integer linspace over 0..K-1: the first and
   last slot always in);
2. masking (training only): zero the whole `s`, the whole `a` and the whole `s' - s` of a slot,
   each independently with probability `p`, on the raw inputs;
3. `Linear(2 d_s + d_a -> 32, no bias)` per slot, then `AvgL1Norm` (each slot's 32-vector divided
   by its mean absolute value) in the * variants;
4. a one-layer LSTM over the kept slots; its final hidden state;
5. `Linear(32 -> d_z, no bias)`, then `SimNorm` in the * variants (two softmax groups).

The authors also shuffle the window (one permutation for the batch) before taking the random
subset; a random ordered subset of a shuffled window is distributed as one of the unshuffled
window, so that step is absorbed into step 1. Keeping only the k slots before the per-slot layer
is equal to their order (per-slot layer on all K, then keep k) at k/K of the cost.

DMA-Pearl (`plstm`): two heads from the LSTM state, mean and variance (Softplus), each followed
by a LayerNorm as in the authors' code; `z` is a reparameterised sample in training and the mean
in evaluation; `kl()` is the KL divergence to N(0, I) per dimension.

Our earlier encoder stays as the option `meanpool`: the same per-slot layer, ReLU, a second
32-wide layer, and the mean over the kept slots instead of the LSTM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lit_dmash.names import ENCODER_KINDS as ENCODER_KINDS  # re-exported: the kinds EncoderSpec builds
from lit_dmash.nets.ensemble import EnsembleLayerNorm, EnsembleLinear, EnsembleLSTM
from lit_dmash.nets.rng import SeedRandom

INPUT_NORMS = ("avgl1", "none")
OUTPUT_NORMS = ("simnorm", "l2", "layernorm", "none")


def avg_l1_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Divide each vector by its mean absolute value (floor `eps`): mean |x| becomes 1."""
    return x / x.abs().mean(-1, keepdim=True).clamp(min=eps)


def sim_norm(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    """Softmax within `groups` equal groups of the last dim: each group lies on a simplex."""
    return F.softmax(x.unflatten(-1, (groups, -1)), dim=-1).flatten(-2)


def output_norm(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "simnorm":
        return sim_norm(x)
    if kind == "l2":
        return F.normalize(x, dim=-1, eps=1e-6)
    if kind == "layernorm":
        return F.layer_norm(x, x.shape[-1:])
    return x


@dataclass(frozen=True)
class EncoderSpec:
    """Shape and variant of a context encoder (see the module docstring)."""

    kind: str = "lstm"
    window: int = 24
    select_fraction: float = 0.2
    model_dim: int = 32
    z_dim: int = 8
    input_norm: str = "avgl1"
    output_norm: str = "simnorm"

    @property
    def kept_slots(self) -> int:
        return max(1, int(self.window * self.select_fraction))


def eval_slots(window: int, kept: int, device: torch.device | None = None) -> torch.Tensor:
    """The slots evaluation keeps: an integer linspace over `0..window-1` (first and last included)."""
    return torch.linspace(0, window - 1, kept, device=device).to(torch.int64)


def mask_slots(parts: Sequence[torch.Tensor], keep: torch.Tensor) -> list[torch.Tensor]:
    """Zero whole vectors: `keep [..., k, len(parts)]` says which of each slot's parts survive."""
    return [part * keep[..., i : i + 1].to(part.dtype) for i, part in enumerate(parts)]


class ContextEncoder(nn.Module):
    """E for `prefix` stacked seeds: `(s, a, s')` windows `[S, B, K, .]` -> `z [S, B, d_z]`."""

    def __init__(self, prefix: Sequence[int], obs_dim: int, action_dim: int, spec: EncoderSpec) -> None:
        super().__init__()
        self.prefix, self.spec = tuple(prefix), spec
        width = spec.model_dim
        self.embed = EnsembleLinear(self.prefix, 2 * obs_dim + action_dim, width, bias=False)
        if spec.kind == "meanpool":
            self.core: nn.Module = EnsembleLinear(self.prefix, width, width)
        else:
            self.core = EnsembleLSTM(self.prefix, width, width)
        self.head = EnsembleLinear(self.prefix, width, spec.z_dim, bias=False)
        if spec.kind == "plstm":
            self.head_norm = EnsembleLayerNorm(self.prefix, spec.z_dim)
            self.var_head = EnsembleLinear(self.prefix, width, spec.z_dim, bias=False)
            self.var_norm = EnsembleLayerNorm(self.prefix, spec.z_dim)

    def select(self, window: int, batch: int, rng: SeedRandom | None, device: torch.device) -> torch.Tensor:
        """Slot indices `[S or 1, B or 1, k]`: random ordered subsets (training) or the fixed ones."""
        kept = self.spec.kept_slots
        if rng is None:
            return eval_slots(window, kept, device).reshape(1, 1, kept)
        return rng.subsets((batch,), window, kept)

    def features(
        self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor, rng: SeedRandom | None, p_mask: float
    ) -> torch.Tensor:
        """The summary of the kept slots (LSTM final state or mean): `[S, B, model_dim]`."""
        batch, window = obs.shape[-3], obs.shape[-2]
        slots = self.select(window, batch, rng, obs.device)
        obs, action, next_obs = (_gather_slots(x, slots) for x in (obs, action, next_obs))
        parts = [obs, action, next_obs - obs]
        if rng is not None and p_mask > 0:
            keep = rng.uniform((batch, slots.shape[-1], 3)) > p_mask
            parts = mask_slots(parts, keep)
        x = self.embed(torch.cat(parts, dim=-1))
        if self.spec.input_norm == "avgl1":
            x = avg_l1_norm(x)
        if self.spec.kind == "meanpool":
            return self.core(torch.relu(x)).mean(-2)
        return self.core(x)

    def forward(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        next_obs: torch.Tensor,
        rng: SeedRandom | None = None,
        p_mask: float = 0.0,
    ) -> torch.Tensor:
        """`z`; training mode when `rng` is given (random slots, masking, Pearl sampling)."""
        h = self.features(obs, action, next_obs, rng, p_mask)
        if self.spec.kind != "plstm":
            return output_norm(self.head(h), self.spec.output_norm)
        mean, var = self._gaussian(h)
        if rng is None:
            return mean
        return mean + var.sqrt() * rng.normal(mean.shape[1:])

    def _gaussian(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.head_norm(self.head(h))
        var = F.softplus(self.var_norm(self.var_head(h)))
        return mean, var

    def kl(
        self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor, rng: SeedRandom, p_mask: float = 0.0
    ) -> torch.Tensor:
        """KL(N(mean, var) || N(0, I)) per sample and dim from a fresh training-mode pass: `[S, B, d_z]`."""
        mean, var = self._gaussian(self.features(obs, action, next_obs, rng, p_mask))
        return 0.5 * (var + mean.pow(2) - 1.0 - var.log())


def _gather_slots(x: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """`x [S, B, K, d]`, `slots [S|1, B|1, k]` -> `[S, B, k, d]`.

    Whole d-vectors are copied by advanced indexing (or `index_select` for the shared evaluation
    slots): `torch.gather` with an index expanded over d was 2-4x slower on the CPU.
    """
    if slots.shape[0] == 1 and slots.shape[1] == 1:
        return x.index_select(-2, slots.reshape(-1))
    seeds, batch, _, dim = x.shape
    s = torch.arange(seeds, device=x.device).view(seeds, 1, 1)
    b = torch.arange(batch, device=x.device).view(1, batch, 1)
    strides, offset = x.stride(), x.storage_offset()
    if strides[-1] == 1 and all(st % dim == 0 for st in (*strides[:-1], offset)):
        # x's d-vectors are rows of its storage (a window is a slice of the replay's K + 1 slots):
        # one `index_select` of those rows, without first copying the slice.
        rows = torch.as_strided(x, (x.untyped_storage().nbytes() // x.element_size() // dim, dim), (dim, 1), 0)
        index = (offset + s * strides[0] + b * strides[1] + slots * strides[2]) // dim
        return rows.index_select(0, index.reshape(-1)).view(seeds, batch, -1, dim)
    return x[s, b, slots]
