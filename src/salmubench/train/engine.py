"""Deprecated alias: the optimiser, schedule and precision live in `salmubench.engine`.
Kept until benchmarks/perf.py imports them from there."""

from salmubench.engine.optim import Precision, cosine_lr, make_optimizer, set_lr
from salmubench.engine.state import partial_dir

__all__ = ["Precision", "cosine_lr", "make_optimizer", "partial_dir", "set_lr"]
