"""Decoded, tokenised pools in memory and a resumable batch plan.

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

from salmubench.data.decoded import DecodedCache, geometry_key
from salmubench.data.shards import decode, image_bytes, iter_split
from salmubench.vocab import POOLS, resolve

log = logging.getLogger(__name__)


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
    cache: DecodedCache | str | None = "env",
) -> Pool:
    """Decode and tokenise the samples of `splits` into one pool. `captions` maps caption
    text to id across pools; `generic` also tokenises each sample's visual caption;
    `select` keeps only those positions (in split order). Decoded images come from the
    decoded-split cache (`cache`: "env" = $SALMUBENCH_CACHE, None = off), shared with the
    other stages of the world; with it off, unselected samples are not decoded."""
    size = None if manifest["image"]["size"] == image_size else image_size
    keep = None if select is None else set(np.asarray(select).tolist())
    if cache == "env":
        cache = DecodedCache.from_env() if "digest" in manifest else None
    images, texts, keys, generics = [], [], [], []
    position = -1
    for split in splits:
        for sample, image in _samples(data, manifest, split, size, image_size, cache):
            position += 1
            if keep is not None and position not in keep:
                continue
            images.append(image(sample) if callable(image) else image)
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


def _samples(
    data: str | Path,
    manifest: dict[str, Any],
    split: str,
    size: int | None,
    image_size: int,
    cache: Any,
) -> Any:
    """(sample, its image or how to decode it) of `split` in order; sample without image
    bytes when it comes from the cache."""
    if cache is None:
        for sample in iter_split(data, split, manifest):
            yield sample, lambda s: decode(image_bytes(s), size)
        return
    geometry = geometry_key("squash", image_size)
    for name in resolve(split):
        decoded = cache.split(
            data, manifest, name, geometry, lambda batch: [decode(b, size) for b, _ in batch]
        )
        yield from zip(decoded.rows, decoded.images, strict=True)


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
