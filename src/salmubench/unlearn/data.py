"""What an unlearning run may read: the forget split and a retain subset, never a holdout.

Holdout splits (and the evaluation-only GenKnow and fragile sets) are what the benchmark
measures; a method that saw them would be graded on its training data. This module is the
only way the unlearn stage reads a dataset, and `readable` refuses every other split —
enforced in code, not by convention. Only the shards actually read are checksummed, so
the unlearn stage never even opens a holdout file (the contract tests delete them).

The metrics also read retain_joint and retain_disjoint items (VisIdInt, FragSim's originals,
RetFail's distractors), so of those two splits only the TRAINING part of the one partition
in `salmubench.data.evaluated` is ever drawn into the retain subset; retain_real is all
training.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from salmubench.config import ConfigError
from salmubench.data.evaluated import PARTITIONED, is_evaluated
from salmubench.data.shards import iter_split
from salmubench.data.tarindex import Index, ShardError
from salmubench.engine.dist import DistEnv, gather
from salmubench.engine.pools import BatchPlan, Pool, read_pool
from salmubench.manifest import ManifestError, read_manifest, verify_files
from salmubench.s3 import location
from salmubench.train.data import estimated_bytes
from salmubench.train.stream import PoolBatches, batches, index_pools
from salmubench.vocab import FORBIDDEN, FORGET_SPLITS, READABLE

log = logging.getLogger(__name__)

# A step's rows of one group for this process: uint8 images, tokens (and generic_tokens)
# of its share of the group's draws; ids (and generic_ids) of the whole global draw.
Rows = dict[str, torch.Tensor]

# The manifest entry `open_for_unlearning` adds: per partitioned retain split, the positions
# (in shard order) of its training part.
TRAINING_PART = "unlearn_training_part"


class HoldoutAccessError(ConfigError):
    """An unlearning run asked for a split it must never see."""


def readable(split: str) -> str:
    if split not in READABLE:
        raise HoldoutAccessError(
            f"unlearning may not read split {split!r}: holdout and evaluation splits "
            f"({', '.join(FORBIDDEN)}) are what the benchmark measures; readable: "
            f"{', '.join(READABLE)}"
        )
    return split


def open_for_unlearning(data: str | Path, retain: Sequence[str]) -> dict[str, Any]:
    """The dataset manifest, with the forget and `retain` shards (and only those) verified,
    plus TRAINING_PART: where the training part of each partitioned retain split lies."""
    splits = [readable(s) for s in (*FORGET_SPLITS, *retain)]
    manifest = read_manifest(data, kind="dataset")
    files = {}
    for split in splits:
        names = manifest.get("shards", {}).get(split)
        if not names:
            raise ManifestError(f"{data}: split {split!r} is missing or empty")
        files.update({n: manifest["files"][n] for n in names})
    verify_files(location(data), {"files": files})
    parts = {s: training_positions(data, manifest, s) for s in retain if s in PARTITIONED}
    return {**manifest, TRAINING_PART: parts}


def training_positions(data: str | Path, manifest: dict[str, Any], split: str) -> list[int]:
    """Positions, in shard order, of the samples of `split` in its training part (the
    images are read but not decoded)."""
    positions, n = [], 0
    for n, sample in enumerate(iter_split(data, split, manifest), start=1):
        if not is_evaluated(split, sample["__key__"], sample["json"]):
            positions.append(n - 1)
    if n != manifest["counts"][split]:
        raise ManifestError(
            f"{data}: split {split!r} holds {n} samples, its manifest says "
            f"{manifest['counts'][split]}"
        )
    return positions


def load_unlearn_pools(
    data: str | Path,
    manifest: dict[str, Any],
    retain: Sequence[str],
    tokenize: Callable[[list[str]], torch.Tensor],
    image_size: int,
    *,
    retain_size: int,
    seed: int,
    with_retain: bool,
) -> dict[str, Pool]:
    """The `forget` pool (with generic captions) and, if wanted, the seeded `retain` subset."""
    captions: dict[str, int] = {}
    forget = [readable(s) for s in FORGET_SPLITS]
    pools = {
        "forget": read_pool(
            data, manifest, "forget", forget, tokenize, image_size, captions, generic=True
        )
    }
    if with_retain:
        splits = [readable(s) for s in retain]
        select = retain_subset(manifest, splits, retain_size, seed)
        pools["retain"] = read_pool(
            data, manifest, "retain", splits, tokenize, image_size, captions, select=select
        )
    return pools


def index_unlearn_pools(
    data: str | Path,
    manifest: dict[str, Any],
    retain: Sequence[str],
    uses: frozenset[str],
    retain_size: int,
    seed: int,
) -> dict[str, Index]:
    """The streaming loader's `load_unlearn_pools`: the pools a method `uses` (forget,
    retain) in the same sample order (the forget splits; the seeded retain subset), as the
    byte offsets of their samples. Only the forget and `retain` shards are opened, each
    split through `readable`; for a method that uses generic captions every forget sample
    must have its json member."""
    pools, select = {}, {}
    if "forget" in uses:
        pools["forget"] = [readable(s) for s in FORGET_SPLITS]
    if "retain" in uses:
        pools["retain"] = [readable(s) for s in retain]
        select["retain"] = retain_subset(manifest, pools["retain"], retain_size, seed)
    indexes = index_pools(data, manifest, pools, select=select)
    missing = indexes["forget"].without_json() if {"forget", "generic"} <= uses else []
    if missing:
        raise ShardError(
            f"{data}: forget samples without a json member (their generic caption): "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
    return indexes


def decoded_bytes(
    manifest: dict[str, Any], retain: Sequence[str], retain_size: int, seed: int, image_size: int
) -> int:
    """What `load_unlearn_pools` decodes: the forget splits and the retain subset, at the
    model's `image_size`."""
    total = estimated_bytes(manifest, FORGET_SPLITS, image_size)
    if retain:
        select = retain_subset(manifest, retain, retain_size, seed)
        everything = estimated_bytes(manifest, retain, image_size)
        count = sum(manifest["counts"][s] for s in retain)
        total += everything if select is None else everything // count * len(select)
    return total


def retain_subset(
    manifest: dict[str, Any], splits: Sequence[str], size: int, seed: int
) -> np.ndarray | None:
    """Seeded positions of the retain subset in the concatenation of `splits` (None = every
    sample of them), drawn from their training parts only: all of retain_real, the part of
    retain_joint / retain_disjoint that no metric reads. `size` 0 = all of those. Checked
    before any model is loaded, and drawn before decoding: unused samples cost nothing.
    `manifest` must come from `open_for_unlearning`, which locates the training parts."""
    if not splits:
        return None
    eligible, offset, held = [], 0, {}
    for split in splits:
        count = manifest["counts"][split]
        if split in PARTITIONED:
            parts = manifest.get(TRAINING_PART, {})
            if split not in parts:
                raise ValueError(
                    f"the manifest does not say which {split!r} samples are training ones; "
                    f"open the dataset with open_for_unlearning(data, {list(splits)})"
                )
            positions = np.asarray(parts[split], dtype=np.int64)
        else:
            positions = np.arange(count, dtype=np.int64)
        eligible.append(offset + positions)
        held[split] = len(positions)
        offset += count
    pool = np.concatenate(eligible)
    if size > len(pool):
        detail = ", ".join(f"{s}: {n}" for s, n in held.items())
        raise ConfigError(
            f"retain_size={size}: the training parts of the retain splits {list(splits)} "
            f"hold only {len(pool)} samples ({detail}); the rest of retain_joint and "
            f"retain_disjoint is evaluated (salmubench.data.evaluated). Valid: 0..{len(pool)}"
        )
    if not size:
        return None if len(pool) == offset else pool
    rng = np.random.default_rng([seed, 0x7E7A1])
    return np.sort(pool[rng.choice(len(pool), size, replace=False)])


def memory_rows(
    pools: dict[str, Pool], plan: BatchPlan, env: DistEnv, generic: bool
) -> Callable[[int], dict[str, Rows]]:
    """`rows(step)`: this process's rows of each group of the step's draws, from decoded
    pools (the forget group with its generic captions if `generic`)."""

    def rows(step: int) -> dict[str, Rows]:
        out = {}
        for group, idx in plan.indices(step).items():
            pool, index = pools[group], torch.from_numpy(idx)
            n = len(idx) // env.world_size
            mine = index[env.rank * n : (env.rank + 1) * n]  # this process's share only
            out[group] = {"images": pool.images[mine], "tokens": pool.tokens[mine],
                          "ids": pool.caption_ids[index]}  # fmt: skip
            if group == "forget" and generic:
                out[group] |= {"generic_tokens": pool.generic_tokens[mine],
                               "generic_ids": pool.generic_ids[index]}  # fmt: skip
        return out

    return rows


def streamed_rows(
    steps: PoolBatches, workers: int, device: torch.device
) -> Callable[[int], dict[str, Rows]]:
    """`rows(step)` as `memory_rows`, read from the shards `workers` processes ahead (each
    process reads its own rows; the caption ids of all of them are gathered). Steps must
    be asked for in order, from `steps.start`."""
    it = batches(steps, workers)

    def rows(step: int) -> dict[str, Rows]:
        at, out = next(it)
        if at != step:  # the loop and the loader disagree: never train on another batch
            raise RuntimeError(f"the streaming loader delivered step {at} for step {step}")
        for r in out.values():
            for key in ("ids", "generic_ids"):
                if key in r:
                    r[key] = gather(r[key].to(device)).cpu()
        return out

    return rows
