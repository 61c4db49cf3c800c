"""SALMUBench: association-level unlearning for CLIP, as a reproducible MLOps system."""

__version__ = "0.1.0"
