"""What Clean/Compromised training reads: its pools (`vocab.POOLS`), decoded once, and
the per-step draws from each (the batch plan itself is the engine's)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

# BatchPlan is re-exported for benchmarks/perf.py.
from salmubench.engine.pools import BatchPlan, Pool, read_pool
from salmubench.vocab import POOLS, VARIANTS

__all__ = ["POOLS", "VARIANTS", "BatchPlan", "Pool", "batch_sizes", "gather_batch", "load_pools"]

MEMORY_LIMIT_BYTES = 8 << 30


def estimated_bytes(
    manifest: dict[str, Any], splits: Sequence[str], image_size: int | None = None
) -> int:
    """Decoded uint8 bytes of `splits`, at `image_size` (the model's, what they are decoded
    to) or else the dataset's (None for a release of mixed sizes: then give the model's)."""
    size = image_size or manifest["image"]["size"]
    return sum(manifest["counts"][s] for s in splits) * 3 * size * size


def load_pools(
    data: str | Path,
    manifest: dict[str, Any],
    pools: Sequence[str],
    tokenize: Callable[[list[str]], torch.Tensor],
    image_size: int,
) -> dict[str, Pool]:
    """Decode and tokenise every sample of the named pools, once."""
    splits = [s for p in pools for s in POOLS[p]]
    need = estimated_bytes(manifest, splits)
    if need > MEMORY_LIMIT_BYTES:
        raise ValueError(
            f"the training splits need ~{need / 2**30:.1f} GiB decoded; the in-memory loader "
            f"is for small-image profiles (limit {MEMORY_LIMIT_BYTES / 2**30:.0f} GiB): use "
            "--set loader=stream (or auto), which reads each step's samples from the shards"
        )
    captions: dict[str, int] = {}
    return {
        pool: read_pool(data, manifest, pool, POOLS[pool], tokenize, image_size, captions)
        for pool in pools
    }


def batch_sizes(
    batch_size: int, variant: str, sensitive_batch: int, retain_fraction: float
) -> dict[str, int]:
    """Per-step draws from each pool: the same base batch for both variants, plus the
    sensitive pairs on top for Compromised (as in the paper, its data is a superset)."""
    n_retain = round(batch_size * retain_fraction)
    sizes = {"general": batch_size - n_retain, "retain": n_retain}
    if variant == "compromised":
        sizes["sensitive"] = sensitive_batch
    return sizes


def gather_batch(
    pools: dict[str, Pool], indices: dict[str, np.ndarray]
) -> tuple[torch.Tensor, ...]:
    """(uint8 images, tokens, caption ids) of a batch, pools concatenated in plan order."""
    parts = [(pools[p], torch.from_numpy(idx)) for p, idx in indices.items()]
    return (
        torch.cat([pool.images[idx] for pool, idx in parts]),
        torch.cat([pool.tokens[idx] for pool, idx in parts]),
        torch.cat([pool.caption_ids[idx] for pool, idx in parts]),
    )
