"""The streaming loader: the in-memory loader's batches, read from the shards step by step.

The batch of step t is `BatchPlan.indices(t)` whichever loader runs, so streaming training
sees exactly the samples of in-memory training, and a resumed run exactly those of an
uninterrupted one. Each shard's tar headers are indexed once (`data.tarindex`: no
decoding); the pools' sample order is the one `read_pool` decodes in (splits in pool order,
shards in manifest order, members in tar order). A `torch.utils.data.DataLoader` over step
numbers, starting at the resumed step, has its worker processes fetch this rank's slice of
each batch by offset (a local seek or an S3 ranged GET), decode and tokenise it: memory
holds the index and a few batches in flight, whatever the dataset's size.

Why not WebDataset's shard-per-worker streaming: its order depends on the number of ranks
and workers and its position lives in iterators, so neither "the same batches as memory"
nor "exact after SIGKILL" would hold; reading by offset keeps both by construction.

Caption ids (equal id = equal caption, for the duplicate-aware loss) are a 64-bit hash of
the caption here and a counter in memory: within a batch, both are equal exactly when the
captions are, which is all the loss reads.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from salmubench.config import ConfigError, TrainConfig
from salmubench.data.shards import decode, shard_paths
from salmubench.data.tarindex import Index, ShardError, index_shard, list_shards, read_spans

__all__ = ["LOADERS", "StepBatches", "batches", "choose_loader", "index_pools", "list_shards"]
from salmubench.engine.pools import BatchPlan
from salmubench.vocab import POOLS

log = logging.getLogger(__name__)

LOADERS = ("auto", "memory", "stream")
GENERAL = "general"  # the pool an external general world replaces


def choose_loader(cfg: TrainConfig, decoded_bytes: int, limit: int) -> str:
    """`memory` or `stream`: the setting, or (auto) by whether the decoded pools fit."""
    if cfg.loader not in LOADERS:
        raise ConfigError(f"loader={cfg.loader!r}; valid: {', '.join(LOADERS)}")
    if cfg.general_world_uri and cfg.loader == "memory":
        raise ConfigError(
            f"general_world_uri={cfg.general_world_uri!r} needs loader 'stream' or 'auto' "
            "(an external world is read from its shards, never decoded whole)"
        )
    if cfg.loader != "auto":
        return cfg.loader
    return "stream" if cfg.general_world_uri or decoded_bytes > limit else "memory"


def index_pools(
    data: Any, manifest: dict[str, Any], pools: Sequence[str], external: Sequence[Any] = ()
) -> dict[str, Index]:
    """Each pool's samples in `read_pool`'s order; `external` shards, if any, replace the
    general pool's."""
    sums = manifest.get("files", {})
    out = {}
    for pool in pools:
        if pool == GENERAL and external:
            paths = list(external)
        else:
            paths = [p for split in POOLS[pool] for p in shard_paths(data, split, manifest)]
        out[pool] = Index.concat([index_shard(p, sums.get(Path(str(p)).name)) for p in paths])
        if not len(out[pool]):
            raise ShardError(f"pool {pool!r}: its shards {paths} hold no samples")
        log.debug("pool %s: %d samples in %d shards", pool, len(out[pool]), len(paths))
    return out


def caption_id(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little",
                          signed=True)  # fmt: skip


@dataclass
class StepBatches(torch.utils.data.Dataset):
    """Item i: (step, uint8 images, tokens, caption ids) of this rank's slice [lo, hi) of
    the global batch of step `start + i`, pools in plan order (as `gather_batch`)."""

    indexes: dict[str, Index]
    plan: BatchPlan
    start: int
    stop: int
    lo: int
    hi: int
    tokenize: Callable[[list[str]], torch.Tensor]
    image_size: int  # the model's: images of another size are resized (as `read_pool`)

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]:
        step = self.start + i
        wanted = [(p, int(j)) for p, idx in self.plan.indices(step).items() for j in idx]
        images, texts = self.fetch(wanted[self.lo : self.hi])
        ids = torch.tensor([caption_id(t) for t in texts], dtype=torch.int64)
        return step, torch.from_numpy(np.stack(images)), self.tokenize(texts).long(), ids

    def fetch(self, wanted: list[tuple[str, int]]) -> tuple[list[np.ndarray], list[str]]:
        """Decoded images and captions of (pool, sample) pairs, in order; one grouped read
        per shard."""
        by_shard: dict[str, list[tuple[int, int, int]]] = {}
        for n, (pool, j) in enumerate(wanted):
            index = self.indexes[pool]
            by_shard.setdefault(index.shards[index.shard[j]], []).append((n, pool, j))  # type: ignore[arg-type]
        images: list[Any] = [None] * len(wanted)
        texts: list[str] = [""] * len(wanted)
        for shard, items in by_shard.items():
            spans = []
            for _, pool, j in items:
                index = self.indexes[pool]
                spans += [tuple(index.image[j]), tuple(index.caption[j])]
            blobs = read_spans(shard, spans)  # type: ignore[arg-type]
            for k, (n, pool, j) in enumerate(items):
                texts[n] = blobs[2 * k + 1].decode("utf-8")
                images[n] = self._decode(blobs[2 * k], shard, self.indexes[pool].keys[j])
        return images, texts

    def _decode(self, data: bytes, shard: str, key: str) -> np.ndarray:
        try:
            return decode(data, self.image_size)
        except (OSError, ValueError, SyntaxError) as e:
            raise ShardError(f"shard {shard}: sample {key!r}: undecodable image ({e})") from e


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decoding is the workers' job; the main process trains


def batches(dataset: StepBatches, workers: int) -> Iterator[tuple]:
    """The dataset's items in step order, decoded `workers` processes ahead."""
    with warnings.catch_warnings():
        # torch's advice to use fewer workers than this process's CPUs: the setting decides.
        warnings.filterwarnings("ignore", "This DataLoader will create", UserWarning)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=None,
            shuffle=False,
            num_workers=workers,
            prefetch_factor=2 if workers else None,
            worker_init_fn=_worker_init if workers else None,
        )
        return iter(loader)
