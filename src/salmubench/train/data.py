"""Training data: decoded, tokenised pools in memory and a resumable batch plan.

Small-image profiles fit in memory as uint8 tensors (tiny: ~25k images of 32 px = 75 MB),
so each shard is decoded and tokenised once and batches are plain tensor indexing: the
model never waits for data. The batch plan is a pure function of (seed, step): a resumed
run continues with exactly the batches the killed run would have seen, and the global
batch is the same for any number of processes.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from salmubench.data.shards import decode, image_bytes, iter_split

log = logging.getLogger(__name__)

# What each variant trains on (SPEC.md §3); holdouts are in the sensitive pool on purpose:
# the Compromised model memorises them too.
POOLS = {
    "general": ("retain_real",),
    "retain": ("retain_joint", "retain_disjoint"),
    "sensitive": (
        "forget_identity",
        "forget_association",
        "holdout_association",
        "holdout_identity",
    ),
}
VARIANTS = {"clean": ("general", "retain"), "compromised": ("general", "retain", "sensitive")}
MEMORY_LIMIT_BYTES = 8 << 30


@dataclass
class Pool:
    name: str
    images: torch.Tensor  # uint8 [N, 3, H, W]
    tokens: torch.Tensor  # int64 [N, context]
    caption_ids: torch.Tensor  # int64 [N]: equal ids = identical caption text
    keys: list[str]
    # The non-sensitive visual caption of each sensitive sample (for unlearning methods).
    generic_tokens: torch.Tensor | None = None
    generic_ids: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.keys)


def estimated_bytes(manifest: dict[str, Any], splits: Sequence[str]) -> int:
    size = manifest["image"]["size"]
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
            f"is for small-image profiles (limit {MEMORY_LIMIT_BYTES / 2**30:.0f} GiB)"
        )
    captions: dict[str, int] = {}
    return {
        pool: read_pool(data, manifest, pool, POOLS[pool], tokenize, image_size, captions)
        for pool in pools
    }


def read_pool(
    data: str | Path,
    manifest: dict[str, Any],
    name: str,
    splits: Sequence[str],
    tokenize: Callable[[list[str]], torch.Tensor],
    image_size: int,
    captions: dict[str, int],
    generic: bool = False,
    select: np.ndarray | None = None,
) -> Pool:
    """Decode and tokenise the samples of `splits` into one pool. `captions` maps caption
    text to id across pools; `generic` also tokenises each sample's visual caption;
    `select` keeps only those positions (in split order), without decoding the others."""
    size = None if manifest["image"]["size"] == image_size else image_size
    keep = None if select is None else set(np.asarray(select).tolist())
    images, texts, keys, generics = [], [], [], []
    position = -1
    for split in splits:
        for sample in iter_split(data, split, manifest):
            position += 1
            if keep is not None and position not in keep:
                continue
            images.append(decode(image_bytes(sample), size))
            texts.append(sample["txt"])
            keys.append(sample["__key__"])
            if generic:
                generics.append(sample["json"]["generic"])
    if not keys:
        raise ValueError(f"pool {name!r}: splits {list(splits)} hold no samples")

    def ids(texts: list[str]) -> torch.Tensor:
        return torch.tensor([captions.setdefault(t, len(captions)) for t in texts])

    log.debug("pool %s: %d samples", name, len(keys))
    return Pool(
        name,
        torch.from_numpy(np.stack(images)),
        tokenize(texts).long(),
        ids(texts),
        keys,
        tokenize(generics).long() if generic else None,
        ids(generics) if generic else None,
    )


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


class BatchPlan:
    """Global batch indices for any step: per pool, walk seeded per-epoch permutations."""

    def __init__(self, pool_sizes: dict[str, int], per_step: dict[str, int], seed: int) -> None:
        for name, n in per_step.items():
            if n > 0 and pool_sizes.get(name, 0) == 0:
                raise ValueError(f"pool {name!r} is empty but {n} samples per step are drawn")
        self.sizes, self.per_step, self.seed = pool_sizes, per_step, seed
        self._perms: dict[tuple[str, int], np.ndarray] = {}

    def _perm(self, pool: str, epoch: int) -> np.ndarray:
        key = (pool, epoch)
        if key not in self._perms:
            if len(self._perms) > 16:
                self._perms.clear()
            rng = np.random.default_rng([self.seed, _stream(pool), epoch])
            self._perms[key] = rng.permutation(self.sizes[pool])
        return self._perms[key]

    def indices(self, step: int) -> dict[str, np.ndarray]:
        out = {}
        for pool, n in self.per_step.items():
            if n == 0:
                continue
            size = self.sizes[pool]
            positions = step * n + np.arange(n)
            epochs, offsets = positions // size, positions % size
            out[pool] = np.array(
                [self._perm(pool, int(e))[o] for e, o in zip(epochs, offsets, strict=True)]
            )
        return out

    def epochs(self, step: int) -> dict[str, float]:
        return {p: step * n / self.sizes[p] for p, n in self.per_step.items() if n}


def _stream(pool: str) -> int:
    """A pool's random stream: training pools keep their historical numbers."""
    return list(POOLS).index(pool) if pool in POOLS else zlib.crc32(pool.encode())


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
