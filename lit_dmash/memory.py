"""How much memory a replay buffer will take, checked before it is allocated.

`LazyTensorStorage` allocates its full capacity at the first write, so a buffer that does not fit
would fail (or swap) only after warm-up. We measure one stored transition from a real one-step
rollout and refuse up front. Measured on DI-Friction (2 axes, K=16): `dr` and `oracle` 90 B,
`dma`/`dmash` about 750 B per transition (the window dominates: K x (2 obs + action) floats).
"""

from __future__ import annotations

import os

import torch
from tensordict.nn import TensorDictModuleBase
from torchrl.envs import EnvBase

from lit_dmash.errors import ConfigError

USABLE_FRACTION = 0.8  # leave room for the rest of the process


def transition_bytes(env: EnvBase, policy: TensorDictModuleBase, unstored_keys: list) -> int:
    """Bytes one transition takes in the replay buffer (what the module stores of a collected step)."""
    with torch.no_grad():
        step = env.rollout(1, policy).exclude(*unstored_keys)
    env.close()
    step.set(("collector", "traj_ids"), torch.zeros(step.shape, dtype=torch.int64))  # added by the collector
    return sum(value.element_size() * value[0, 0].numel() for value in step.values(True, True))


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_buffer_fits(capacity: int, bytes_per_transition: int, available: int | None = None) -> None:
    """Raise a `ConfigError` on `collector.buffer_size` if the buffer would not fit in memory."""
    available = available_memory() if available is None else available
    needed = capacity * bytes_per_transition
    if needed > USABLE_FRACTION * available:
        fits = int(USABLE_FRACTION * available // bytes_per_transition)
        raise ConfigError(
            "collector.buffer_size",
            capacity,
            f"needs {needed / 2**30:.1f} GiB at {bytes_per_transition} bytes per transition but "
            f"{available / 2**30:.1f} GiB is available; at most {fits} transitions fit",
        )
