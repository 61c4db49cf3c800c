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
from salmubench.engine.pools import Pool, read_pool
from salmubench.manifest import ManifestError, read_manifest, verify_files
from salmubench.s3 import location
from salmubench.vocab import FORBIDDEN, FORGET_SPLITS, READABLE

log = logging.getLogger(__name__)

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
