"""Deprecated alias: the distributed setup lives in `salmubench.engine.dist`. Kept until
benchmarks/perf.py imports it from there."""

from salmubench.engine.dist import DistEnv, gather

__all__ = ["DistEnv", "gather"]
