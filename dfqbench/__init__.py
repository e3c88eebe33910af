"""dfqbench: the benchmark harness for data-free quantization of vision models."""

__version__ = "0.1.0"
