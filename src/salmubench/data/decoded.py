"""Decoded splits, cached on disk: each split decoded once per world, not once per stage.

Every stage that reads images (training's pools, unlearning's pools, every evaluation)
used to decode the same PNG/JPEG shards again. `DecodedCache` keeps a split's decoded
images as one uint8 `.npy` array [N, 3, S, S] (memory-mapped when read, so pages are
shared between processes and never copied onto the heap) and the rest of each sample
(key, caption, metadata, class) as `rows.json`, in the order of the shards.

An entry is keyed by the dataset's digest (which fixes every shard byte), the split, the
image geometry (what turns bytes into the uint8 array: kind, size, resize mode,
interpolation; not the normalisation, which comes after) and Pillow's version. It is written
under a hidden temporary name and renamed into place when complete (a rename of a folder is
atomic), so a half-written entry is never visible; two processes filling the same entry at
once both succeed, and the second one's copy is dropped. A miss decodes and fills the entry.

Where: `$SALMUBENCH_CACHE` (a folder; `off` turns the cache off), default
`$XDG_CACHE_HOME/salmubench` (`~/.cache/salmubench`), entries under `decoded/`. A folder that
was chosen ($SALMUBENCH_CACHE) and cannot be written is refused, with the variable to set;
when the default one cannot be written (a read-only home in a container), the stage decodes
as before, with a warning. Size: 3·S² bytes per image (tiny,
32 px: 3 KiB; 224 px: 147 KiB), i.e. ~100 MB for a whole tiny dataset.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL

from salmubench.data.shards import image_bytes, iter_split
from salmubench.typed import ConfigError

log = logging.getLogger(__name__)

CACHE_ENV = "SALMUBENCH_CACHE"
OFF = ("off", "none", "no", "0", "false")
FORMAT = 1  # bump when an entry's layout changes: older entries are then never read
IMAGES, ROWS, INFO = "images.npy", "rows.json", "info.json"
CHUNK = 512  # samples handed to the decoder at once

# (image bytes, row) -> uint8 [3, S, S]; a batch of them -> their arrays, in order.
DecodeBatch = Callable[[list[tuple[bytes, dict[str, Any]]]], list[np.ndarray]]


class CacheError(ConfigError):
    """The decoded-split cache folder cannot be used."""


def cache_root(folder: str | os.PathLike | None = None) -> Path | None:
    """The cache folder (`folder`, else $SALMUBENCH_CACHE, else the user's cache folder),
    created and checked writable; None when the cache is off. Raises CacheError otherwise."""
    value = os.fspath(folder) if folder is not None else os.environ.get(CACHE_ENV, "")
    if value.strip().lower() in OFF:
        return None
    if value.strip():
        root = Path(value).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(base) / "salmubench"
    where = f"decoded-image cache {root}" + (f" (${CACHE_ENV})" if folder is None else "")
    hint = f"set ${CACHE_ENV} to a writable folder, or to 'off' to decode every time"
    try:
        (root / "decoded").mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root / "decoded", prefix=".probe-"):
            pass
    except OSError as e:
        if folder is None and not value.strip():  # nobody chose it: decode as before
            log.warning("%s is not writable (%s): decoding without a cache", root, e)
            return None
        raise CacheError(f"{where} is not a writable folder ({e.strerror or e}): {hint}") from None
    return root


def geometry_key(kind: str, size: int, resize_mode: str = "squash", interpolation: str = "bicubic"):
    """What turns image bytes into the uint8 array (the part of a preprocessing that a
    decoded entry depends on)."""
    return {"kind": kind, "size": size, "resize_mode": resize_mode, "interpolation": interpolation}


@dataclass
class DecodedSplit:
    """One primitive split, decoded: images uint8 [N, 3, S, S] (a read-only memory map when
    it comes from the cache) and each sample's other fields (`__key__`, `txt`, `json`, `cls`)."""

    images: np.ndarray
    rows: list[dict[str, Any]]
    hit: bool

    def __len__(self) -> int:
        return len(self.rows)


class DecodedCache:
    """Decoded primitive splits of datasets, on disk under `root` (see the module)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / "decoded"
        self.hits = self.misses = 0

    @classmethod
    def from_env(cls, folder: str | os.PathLike | None = None) -> DecodedCache | None:
        root = cache_root(folder)
        return None if root is None else cls(root)

    def key(self, digest: str, split: str, geometry: dict[str, Any]) -> tuple[str, dict]:
        what = {
            "format": FORMAT,
            "dataset": digest,
            "split": split,
            "geometry": geometry,
            "pillow": PIL.__version__,
        }
        text = json.dumps(what, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:40], what

    def split(
        self,
        data: Any,
        manifest: dict[str, Any],
        split: str,
        geometry: dict[str, Any],
        decode_batch: DecodeBatch,
    ) -> DecodedSplit:
        """Primitive `split` of the dataset at `data` decoded by `decode_batch`: from the
        cache, else decoded now and stored."""
        if "digest" not in manifest:
            raise ValueError(f"{data}: the dataset manifest has no digest to key decoded images")
        key, what = self.key(manifest["digest"], split, geometry)
        entry = self.folder / key
        found = _read(entry)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        tmp = Path(tempfile.mkdtemp(dir=self.folder, prefix=f".{key}-"))
        try:
            count = manifest.get("counts", {}).get(split)
            rows = _fill(tmp, iter_split(data, split, manifest), decode_batch, count, split)
            (tmp / ROWS).write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
            (tmp / INFO).write_text(json.dumps({**what, "count": len(rows)}), encoding="utf-8")
            try:
                os.rename(tmp, entry)
            except OSError:  # filled meanwhile by another process: theirs is the same
                if _read(entry) is None:
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.debug("decoded %s of %s into %s (%d images)", split, data, entry, len(rows))
        out = _read(entry)
        if out is None:
            raise CacheError(f"decoded-image cache entry {entry} is unreadable just after writing")
        return DecodedSplit(out.images, out.rows, hit=False)


def _fill(
    tmp: Path,
    samples: Iterator[dict[str, Any]],
    decode_batch: DecodeBatch,
    count: int | None,
    split: str,
) -> list[dict[str, Any]]:
    """Decode `samples` into tmp/images.npy (written in place when the count is known);
    their rows."""
    rows: list[dict[str, Any]] = []
    images: np.ndarray | None = None
    parts: list[np.ndarray] = []

    def flush(batch: list[tuple[bytes, dict[str, Any]]]) -> None:
        nonlocal images
        arrays = decode_batch(batch)
        if count is None:
            parts.extend(arrays)
        else:
            if images is None:
                shape = (count, *arrays[0].shape)
                images = np.lib.format.open_memmap(tmp / IMAGES, "w+", np.uint8, shape)
            if len(rows) + len(arrays) > count:
                raise ValueError(f"split {split!r} holds more than the {count} samples listed")
            images[len(rows) : len(rows) + len(arrays)] = np.stack(arrays)
        rows.extend(row for _, row in batch)

    batch: list[tuple[bytes, dict[str, Any]]] = []
    for sample in samples:
        row = {k: v for k, v in sample.items() if k in ("__key__", "txt", "json", "cls")}
        batch.append((image_bytes(sample), row))
        if len(batch) == CHUNK:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    if count is None or images is None:
        np.save(tmp / IMAGES, np.stack(parts) if parts else np.zeros((0, 3, 1, 1), np.uint8))
    else:
        images.flush()
        del images
        if len(rows) != count:
            raise ValueError(f"split {split!r} holds {len(rows)} samples, the manifest {count}")
    return rows


def _read(entry: Path) -> DecodedSplit | None:
    """A complete entry, or None (absent, or unreadable: then it is removed)."""
    if not entry.is_dir():
        return None
    try:
        images = np.load(entry / IMAGES, mmap_mode="r")
        rows = json.loads((entry / ROWS).read_text(encoding="utf-8"))
        if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(rows):
            raise ValueError(f"shape {images.shape} {images.dtype} for {len(rows)} rows")
    except (OSError, ValueError) as e:
        log.warning("decoded-image cache entry %s is unreadable (%s): decoding anew", entry, e)
        shutil.rmtree(entry, ignore_errors=True)
        return None
    return DecodedSplit(images, rows, hit=True)
