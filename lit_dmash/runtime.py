"""Process-wide settings a training process wants before it allocates anything.

`keep_freed_memory()`: glibc's malloc returns large freed blocks to the kernel (blocks over its
mmap threshold, and the top of the heap past its trim threshold), so a tensor of 16 MB freed and
allocated again every update (DMA*-SH's per-sample adapter weights, 240 x 16,672 floats) is
page-faulted in afresh each time: ~3,000 page faults per update measured, and on a VM each one
is slow. Raising both thresholds keeps freed memory in the heap for the next allocation (DMA*-SH
update on one thread: faults per run 334k -> 118k). A no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's upper limit for M_MMAP_THRESHOLD on 64-bit


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse; True if it accepted."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    settings = ((_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX), (_M_TRIM_THRESHOLD, 2**30), (_M_TOP_PAD, 64 * 2**20))
    return all(mallopt(option, value) == 1 for option, value in settings)


def one_thread_unless_told() -> None:
    """One torch thread unless OMP_NUM_THREADS says otherwise.

    An update of these small networks is latency-bound; a second thread buys little and, beside
    any other busy process on a 2-core machine, made updates 10x slower (55 ms -> 650 ms measured
    for a 64-wide DMA*-SH update). Grids run one process per core.
    """
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(1)


def configure_process() -> None:
    """What every training or benchmark process runs first."""
    keep_freed_memory()
    one_thread_unless_told()
