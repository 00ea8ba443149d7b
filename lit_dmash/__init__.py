"""lit-dmash: DMA*-SH and the Actuator Inversion Benchmark on TorchRL and Lightning."""

__version__ = "0.1.0"
