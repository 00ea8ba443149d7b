"""lit-dmash: DMA*-SH and the Actuator Inversion Benchmark on TorchRL and Lightning."""

from lit_dmash.loading import load_agent

__all__ = ["load_agent"]
