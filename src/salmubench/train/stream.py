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

The unlearn stage streams with the same index and reads (`PoolBatches`: each process's
share of each group, with the forget samples' generic captions from their json); which
splits it may index is `unlearn/data.py`'s decision (`index_unlearn_pools`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from salmubench.config import ConfigError, TrainConfig, UnlearnConfig
from salmubench.data.shards import decode, shard_paths
from salmubench.data.tarindex import Index, ShardError, index_shard, list_shards, read_spans

__all__ = ["LOADERS", "PoolBatches", "StepBatches", "TokenCache", "batches", "choose_loader",
           "index_pools", "list_shards"]  # fmt: skip
from salmubench.engine.pools import BatchPlan
from salmubench.stagerun import available_cpus
from salmubench.typed import LOADERS
from salmubench.vocab import POOLS

log = logging.getLogger(__name__)

GENERAL = "general"  # the pool an external general world replaces


def choose_loader(cfg: TrainConfig | UnlearnConfig, decoded_bytes: int, limit: int) -> str:
    """`memory` or `stream`: the setting, or (auto) by whether the decoded pools fit."""
    if cfg.loader not in LOADERS:
        raise ConfigError(f"loader={cfg.loader!r}; valid: {', '.join(LOADERS)}")
    world = cfg.general_world_uri if isinstance(cfg, TrainConfig) else None
    if world and cfg.loader == "memory":
        raise ConfigError(
            f"general_world_uri={world!r} needs loader 'stream' or 'auto' "
            "(an external world is read from its shards, never decoded whole)"
        )
    if cfg.loader != "auto":
        return cfg.loader
    return "stream" if world or decoded_bytes > limit else "memory"


def index_pools(
    data: Any,
    manifest: dict[str, Any],
    pools: Sequence[str] | Mapping[str, Sequence[str]],
    external: Sequence[Any] = (),
    select: Mapping[str, np.ndarray | None] | None = None,
) -> dict[str, Index]:
    """Each pool's samples in `read_pool`'s order. `pools`: training pool names (their
    splits from `vocab.POOLS`) or {pool: splits}; `external` shards, if any, replace the
    general pool's; `select[pool]` keeps only those positions (as `read_pool`'s `select`:
    sorted positions in the concatenation of the pool's splits)."""
    splits = pools if isinstance(pools, Mapping) else {p: POOLS[p] for p in pools}
    sums = manifest.get("files", {})
    out = {}
    for pool, names in splits.items():
        if pool == GENERAL and external:
            paths = list(external)
        else:
            paths = [p for split in names for p in shard_paths(data, split, manifest)]
        index = Index.concat([index_shard(p, sums.get(Path(str(p)).name)) for p in paths])
        keep = (select or {}).get(pool)
        out[pool] = index if keep is None else index.take(keep)
        if not len(out[pool]):
            raise ShardError(f"pool {pool!r}: its shards {paths} hold no samples")
        log.debug("pool %s: %d samples in %d shards", pool, len(out[pool]), len(paths))
    return out


def caption_id(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little",
                          signed=True)  # fmt: skip


class TokenCache:
    """`tokenize` with a bounded cache of caption -> token row. Captions repeat (templated
    captions, and every epoch), and tokenising is about half of a worker's time per batch
    (ftfy and BPE in Python). A row depends on its caption alone (open_clip's tokenizers
    pad or truncate each text on its own), so a cached row equals a fresh call's; the
    least recently used rows go past `size` captions, so memory stays bounded."""

    def __init__(self, tokenize: Callable[[list[str]], torch.Tensor], size: int = 1 << 16):
        self.tokenize, self.size = tokenize, size
        self.rows: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __call__(self, texts: list[str]) -> torch.Tensor:
        new = [t for t in dict.fromkeys(texts) if t not in self.rows]
        if new:
            for text, row in zip(new, self.tokenize(new).long(), strict=True):
                self.rows[text] = row.clone()  # not a view that would keep the whole batch
        for text in texts:
            self.rows.move_to_end(text)
        out = torch.stack([self.rows[t] for t in texts])
        while len(self.rows) > self.size:
            self.rows.popitem(last=False)
        return out


class _Samples:
    """Reading planned samples by offset: what both step datasets share (`indexes`, the
    pools' sample indexes, `image_size`, the model's, and `tokenize` are their fields)."""

    indexes: dict[str, Index]
    image_size: int  # images of another size are resized (as `read_pool`)
    tokenize: Callable[[list[str]], torch.Tensor]

    def __post_init__(self) -> None:
        if not isinstance(self.tokenize, TokenCache):
            self.tokenize = TokenCache(self.tokenize)

    def fetch(
        self, wanted: list[tuple[str, int]], generic: bool = False
    ) -> tuple[list[np.ndarray], list[str], list[str]]:
        """Decoded images, captions and (if `generic`) generic captions, from each sample's
        json, of (pool, sample) pairs, in order; one grouped read per shard."""
        by_shard: dict[str, list[tuple[int, str, int]]] = {}
        for n, (pool, j) in enumerate(wanted):
            index = self.indexes[pool]
            by_shard.setdefault(index.shards[index.shard[j]], []).append((n, pool, j))
        images: list[Any] = [None] * len(wanted)
        texts: list[str] = [""] * len(wanted)
        generics: list[str] = [""] * len(wanted) if generic else []
        members = 3 if generic else 2
        for shard, items in by_shard.items():
            spans = []
            for _, pool, j in items:
                index = self.indexes[pool]
                spans += [tuple(index.image[j]), tuple(index.caption[j])]
                if generic:
                    spans.append(tuple(index.json[j]))
            blobs = read_spans(shard, spans)  # type: ignore[arg-type]
            for k, (n, pool, j) in enumerate(items):
                key = self.indexes[pool].keys[j]
                texts[n] = blobs[members * k + 1].decode("utf-8")
                images[n] = self._decode(blobs[members * k], shard, key)
                if generic:
                    generics[n] = _generic(blobs[members * k + 2], shard, key)
        return images, texts, generics

    def _decode(self, data: bytes, shard: str, key: str) -> np.ndarray:
        try:
            return decode(data, self.image_size)
        except (OSError, ValueError, SyntaxError) as e:
            raise ShardError(f"shard {shard}: sample {key!r}: undecodable image ({e})") from e


def _generic(data: bytes, shard: str, key: str) -> str:
    """The generic (visual, non-sensitive) caption in a sample's json (`read_pool`'s)."""
    try:
        return str(json.loads(data)["generic"])
    except (ValueError, KeyError, TypeError) as e:
        raise ShardError(
            f"shard {shard}: sample {key!r}: its json has no generic caption ({e!r})"
        ) from e


@dataclass
class StepBatches(_Samples, torch.utils.data.Dataset):
    """Item i: (step, uint8 images, tokens, caption ids) of this rank's slice [lo, hi) of
    the global batch of step `start + i`, pools in plan order (as `gather_batch`)."""

    indexes: dict[str, Index]
    plan: BatchPlan
    start: int
    stop: int
    lo: int
    hi: int
    tokenize: Callable[[list[str]], torch.Tensor]
    image_size: int

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]:
        step = self.start + i
        wanted = [(p, int(j)) for p, idx in self.plan.indices(step).items() for j in idx]
        images, texts, _ = self.fetch(wanted[self.lo : self.hi])
        return step, torch.from_numpy(np.stack(images)), self.tokenize(texts).long(), _ids(texts)


@dataclass
class PoolBatches(_Samples, torch.utils.data.Dataset):
    """Item i: (step, {pool: rows}) of step `start + i`, pools in plan order, where rows =
    {images, tokens, ids} of this rank's share of the pool's draws (rows [r·n, (r+1)·n) of
    its W·n, as the unlearn stage's in-memory batches), plus {generic_tokens, generic_ids}
    for the pools in `generic`. Ids are this rank's: the trainer gathers them."""

    indexes: dict[str, Index]
    plan: BatchPlan
    start: int
    stop: int
    rank: int
    world_size: int
    tokenize: Callable[[list[str]], torch.Tensor]
    image_size: int
    generic: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int) -> tuple[int, dict[str, dict[str, torch.Tensor]]]:
        step = self.start + i
        out = {}
        for pool, idx in self.plan.indices(step).items():
            n = len(idx) // self.world_size
            mine = [(pool, int(j)) for j in idx[self.rank * n : (self.rank + 1) * n]]
            images, texts, generics = self.fetch(mine, generic=pool in self.generic)
            rows = {"images": torch.from_numpy(np.stack(images)),
                    "tokens": self.tokenize(texts).long(), "ids": _ids(texts)}  # fmt: skip
            if pool in self.generic:
                rows |= {"generic_tokens": self.tokenize(generics).long(),
                         "generic_ids": _ids(generics)}  # fmt: skip
            out[pool] = rows
        return step, out


def _ids(texts: list[str]) -> torch.Tensor:
    return torch.tensor([caption_id(t) for t in texts], dtype=torch.int64)


def _worker_init(idle: bool, _: int) -> None:
    """Decoding is the workers' job, one thread each; the main process trains. With `idle`
    (the workers would share the trainer's cores) they run at SCHED_IDLE: only when a core
    would otherwise idle, for the trainer's threads wait for each other at every barrier,
    so a worker preempting one stalls them all. A worker that falls behind still runs: the
    trainer then blocks on the next batch and frees the cores."""
    torch.set_num_threads(1)
    if idle and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError as e:  # a sandbox may refuse it; then the kernel's default share
            log.debug("loader worker keeps the default scheduling: %s", e)


def shares_cores(workers: int) -> bool:
    """Whether `workers` loader processes beside this process's torch threads need more
    cores than it may use (then they run at idle priority: `_worker_init`)."""
    return workers > 0 and torch.get_num_threads() + workers > len(available_cpus())


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
            worker_init_fn=partial(_worker_init, shares_cores(workers)) if workers else None,
        )
        return iter(loader)
