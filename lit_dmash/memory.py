"""How much memory the replay will take, checked before it is allocated.

The replay allocates its full capacity when training starts, so a buffer that does not fit would
fail (or swap) only then. The module computes its size from the task and the config and refuses
up front, naming `protocol.buffer_size`.
"""

from __future__ import annotations

import os

from lit_dmash.errors import ConfigError

USABLE_FRACTION = 0.8  # leave room for the rest of the process


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


def check_buffer_fits(needed: int, available: int | None = None) -> None:
    """Raise a `ConfigError` on `protocol.buffer_size` if a replay of `needed` bytes would not fit."""
    available = available_memory() if available is None else available
    if needed > USABLE_FRACTION * available:
        raise ConfigError(
            "protocol.buffer_size",
            f"{needed / 2**30:.1f} GiB of replay",
            f"only {available / 2**30:.1f} GiB of memory is available: lower it, or train fewer seeds per process",
        )
