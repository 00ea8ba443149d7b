"""lit-dmash: DMA*-SH and the Actuator Inversion Benchmark on TorchRL and Lightning."""

from __future__ import annotations

from typing import Any

__all__ = ["load_agent"]


def __getattr__(name: str) -> Any:
    # Lazy: `import lit_dmash.console` (or any light submodule) must not pull in torch, the
    # simulators and Lightning first.
    if name == "load_agent":
        from lit_dmash.loading import load_agent

        return load_agent
    raise AttributeError(f"module 'lit_dmash' has no attribute {name!r}")
