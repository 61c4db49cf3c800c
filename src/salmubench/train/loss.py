"""Deprecated alias: the contrastive loss lives in `salmubench.engine.loss` (train and
unlearn share it). Kept until benchmarks/perf.py and monitor.py import it from there."""

from salmubench.engine.loss import contrastive_loss, soft_targets

__all__ = ["contrastive_loss", "soft_targets"]
