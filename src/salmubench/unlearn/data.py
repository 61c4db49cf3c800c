"""What an unlearning run may read: the forget split and a retain subset, never a holdout.

Holdout splits (and the evaluation-only GenKnow and fragile sets) are what the benchmark
measures; a method that saw them would be graded on its training data. This module is the
only way the unlearn stage reads a dataset, and `readable` refuses every other split —
enforced in code, not by convention. Only the shards actually read are checksummed, so
the unlearn stage never even opens a holdout file (the contract tests delete them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from salmubench.config import RETAIN_SPLITS, ConfigError
from salmubench.data.shards import COMPOSITES, SPLITS
from salmubench.manifest import ManifestError, read_manifest, verify_files
from salmubench.storage import location
from salmubench.train.data import Pool, read_pool

log = logging.getLogger(__name__)

FORGET_SPLITS = COMPOSITES["forget"]
READABLE = (*FORGET_SPLITS, *RETAIN_SPLITS)
FORBIDDEN = tuple(s for s in SPLITS if s not in READABLE)


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
    """The dataset manifest, with the forget and `retain` shards (and only those) verified."""
    splits = [readable(s) for s in (*FORGET_SPLITS, *retain)]
    manifest = read_manifest(data, kind="dataset")
    files = {}
    for split in splits:
        names = manifest.get("shards", {}).get(split)
        if not names:
            raise ManifestError(f"{data}: split {split!r} is missing or empty")
        files.update({n: manifest["files"][n] for n in names})
    verify_files(location(data), {"files": files})
    return manifest


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
    """Seeded positions of the retain subset (None = every sample of `splits`). Checked
    before any model is loaded, and drawn before decoding: unused samples cost nothing."""
    if not size or not splits:
        return None
    total = sum(manifest["counts"][s] for s in splits)
    if size > total:
        raise ConfigError(
            f"retain_size={size}: the retain splits {list(splits)} hold only {total} samples"
        )
    rng = np.random.default_rng([seed, 0x7E7A1])
    return np.sort(rng.choice(total, size, replace=False))
