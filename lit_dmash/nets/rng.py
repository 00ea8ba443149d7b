"""Random numbers per seed, as a pure function of (seed, counter, index): `SeedRandom`.

Several seeds train in one process as a batch (parameters stacked on a leading seed dim). For
seed s of a batched run to equal a single run of seed s, every random draw of seed s must be
the same whatever the other seeds are. `torch.rand` on one generator cannot do that (a draw of
`[S, n]` is not `S` draws of `[n]`), and one `torch.Generator` per seed means `S` calls per draw
and generator state that CUDA graphs cannot capture. So draws are hashed: element `j` of draw
number `c` of seed `s` is `mix(mix(key_s, c), j)`, computed for all seeds in one set of integer
ops, with the counter a device tensor (`counter.add_(1)` is capturable). The state is two integer
tensors, so it checkpoints as plain tensors.

The mixer is `lowbias32` (Wellons' hash prospector: two multiply-xorshift rounds on 32-bit words)
in int64 arithmetic on 32-bit words (a multiply keeps the low 32 bits of its wrapped product).
Uniforms carry 24 bits, the float32 mantissa.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

_MASK32 = 0xFFFFFFFF
_LOWBIAS32 = (0x7FEB352D, 0x846CA68B)  # lowbias32's two multipliers


def _mul32_(x: torch.Tensor, constant: int) -> torch.Tensor:
    """`x = x * constant mod 2**32` in place, for `x` in [0, 2**32).

    The int64 product of two 32-bit words can exceed 2**63; torch's int64 multiply wraps around
    modulo 2**64 (two's complement), which leaves the low 32 bits exact (tested against Python
    integers), so one multiply and one mask do it.
    """
    return x.mul_(constant).bitwise_and_(_MASK32)


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A bijective 32-bit hash (`lowbias32`) of int64 tensors holding values in [0, 2**32)."""
    return _mix32_(x.clone())


def _mix32_(x: torch.Tensor) -> torch.Tensor:
    """`mix32` in place: a draw's big tensor is hashed without a new tensor per operation."""
    x ^= x >> 16
    _mul32_(x, _LOWBIAS32[0])
    x ^= x >> 15
    _mul32_(x, _LOWBIAS32[1])
    x ^= x >> 16
    return x


def mix32_int(x: int) -> int:
    """`mix32` of one Python integer in [0, 2**32)."""
    x ^= x >> 16
    x = (x * _LOWBIAS32[0]) & _MASK32
    x ^= x >> 15
    x = (x * _LOWBIAS32[1]) & _MASK32
    return x ^ (x >> 16)


class SeedRandom(nn.Module):
    """Independent random streams for `S` seeds; every draw is `[S, *shape]`.

    Buffers `keys` (one per seed) and `counter` (draws so far) are saved in checkpoints, so a
    resumed run continues its streams exactly.
    """

    def __init__(self, seeds: Sequence[int], stream: int = 0) -> None:
        super().__init__()
        keys = torch.tensor([int(s) & _MASK32 for s in seeds], dtype=torch.int64)
        keys = mix32(keys ^ mix32(torch.full_like(keys, stream & _MASK32)))
        self.register_buffer("keys", keys)
        self.register_buffer("counter", torch.zeros((), dtype=torch.int64))
        # mix32(0..n-1) per (n, device): half of every draw's integer work, the same for every draw
        # of n numbers. A plain dict, not a buffer: derived, never saved.
        self._hashed_index: dict[tuple[int, torch.device], torch.Tensor] = {}

    @property
    def num_seeds(self) -> int:
        return self.keys.numel()

    def bits(self, shape: Sequence[int]) -> torch.Tensor:
        """Uniform 32-bit integers `[S, *shape]` (int64), then advance the counter."""
        shape = tuple(shape)
        count = math.prod(shape)
        out = _mix32_(self._hashed(count).unsqueeze(0) ^ self._draw_keys().unsqueeze(1))
        self.counter.add_(1)
        return out.reshape(self.num_seeds, *shape)

    def _draw_keys(self) -> torch.Tensor:
        """`mix32(keys ^ mix32(counter))` `[S]`: each seed's key for this draw.

        On the CPU in Python integers (`counter` is read without a device sync there): ~20 fewer
        tensor operations per draw, which is ~5 % of a 64-wide update's time. Elsewhere as tensor
        operations, so the draw stays capturable in a CUDA graph.
        """
        if self.counter.device.type != "cpu":
            return self._draw_keys_on_device()
        counter = mix32_int(int(self.counter) & _MASK32)
        keys = [mix32_int(key ^ counter) for key in self.keys.tolist()]
        return torch.tensor(keys, dtype=torch.int64)

    def _draw_keys_on_device(self) -> torch.Tensor:
        return mix32(self.keys ^ mix32(self.counter & _MASK32))

    def _hashed(self, count: int) -> torch.Tensor:
        key = (count, self.keys.device)
        hashed = self._hashed_index.get(key)
        if hashed is None:
            hashed = _mix32_(torch.arange(count, device=self.keys.device, dtype=torch.int64))
            self._hashed_index[key] = hashed
        return hashed

    def uniform(self, shape: Sequence[int]) -> torch.Tensor:
        """Uniform floats in the open interval (0, 1): `[S, *shape]`."""
        return ((self.bits(shape) >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))

    def normal(self, shape: Sequence[int]) -> torch.Tensor:
        """Standard normal floats (Box-Muller): `[S, *shape]`."""
        u = self.uniform((2, *shape))
        radius = torch.sqrt(-2.0 * torch.log(u[:, 0]))
        return radius * torch.cos((2.0 * math.pi) * u[:, 1])

    def integers(self, high: torch.Tensor | int, shape: Sequence[int]) -> torch.Tensor:
        """Integers uniform in [0, high) (`high` broadcast against `[S, *shape]`), int64."""
        value = (self.uniform(shape) * high).long()
        return torch.minimum(value, torch.as_tensor(high, device=value.device) - 1)

    def subsets(self, shape: Sequence[int], size: int, k: int) -> torch.Tensor:
        """For each of `[S, *shape]`, `k` distinct indices of `range(size)` in random order.

        The indices of the `k` smallest of `size` uniforms (`uniform`'s 24 bits), smallest first,
        equal uniforms ordered by index: `uniform(...).argsort()[..., :k]` with ties broken
        deterministically, as a partial sort (`topk` on unique integer keys, ~3x faster).
        """
        bits = self.bits((*shape, size)) >> 8
        keys = bits * size + torch.arange(size, device=bits.device)
        return keys.topk(k, dim=-1, largest=False, sorted=True).indices

    def permutation(self, size: int) -> torch.Tensor:
        """One random permutation of `range(size)` per seed: `[S, size]`."""
        return self.uniform((size,)).argsort(dim=-1)
