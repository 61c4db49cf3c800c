"""WebDataset shards: reproducible writing and small readers (split names: `vocab`).

Every split is a set of `<split>-NNNNNN.tar` files at the dataset root. Samples carry
`png`/`jpg` (the image), `txt` (the training caption), `json` (metadata) and, for the
GenKnow task, `cls` (the class index). Tar metadata is fixed (mtime 0, one owner, mode
0444) so the same seed gives byte-identical shards, which DVC then never re-uploads.

The shards are the tar files WebDataset's `ShardWriter` writes (POSIX ustar members in
sorted extension order, each shard ended by two zero blocks and padded to a 10 KiB record),
written here by `TarShard` without importing webdataset, which imports torch: the stages
that need no model (synth) stay light. WebDataset still reads them, `s3://` included: the
opener is registered as soon as webdataset is imported (`_register_when_imported`).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import io
import json
import sys
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from salmubench.manifest import ManifestError, is_url, read_manifest
from salmubench.s3 import Store, Url, location, register_webdataset

# COMPOSITES, SENSITIVE_SPLITS and SPLITS: re-exported for tests and tools that import them
# from here (their home is `vocab`).
from salmubench.vocab import COMPOSITES, SENSITIVE_SPLITS, SPLITS, resolve  # noqa: F401


class _RegisterWhenImported(importlib.abc.MetaPathFinder):
    """Runs `register_webdataset` right after `webdataset.gopen` is first imported, so that
    `webdataset.WebDataset("s3://...")` reads like our own readers without this module
    importing webdataset (and torch with it) itself."""

    MODULE = "webdataset.gopen"

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != self.MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        load = loader.exec_module

        def exec_module(module: Any) -> None:
            load(module)
            register_webdataset()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _register_when_imported() -> None:
    if _RegisterWhenImported.MODULE in sys.modules:
        register_webdataset()
    elif not any(isinstance(f, _RegisterWhenImported) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterWhenImported())


_register_when_imported()

IMAGE_KEYS = ("png", "jpg")


def shard_paths(dataset: str | Path, split: str, manifest: dict[str, Any]) -> list[Path | Url]:
    """The shard files (or `s3://` objects) of a split or composite, as the manifest lists."""
    dataset = location(dataset)
    paths = []
    for name in resolve(split):
        if name not in manifest["shards"]:
            raise KeyError(f"{dataset}: the manifest lists no shards for split {name!r}")
        paths += [dataset / f for f in manifest["shards"][name]]
    return paths


BLOCK = 512  # a tar block
RECORD = 20 * BLOCK  # tar's default record: a shard's length is a multiple of it
OWNER = "salmubench"  # user and group of every member
MODE = 0o444


def _octal(n: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, n)


def tar_header(name: str, size: int) -> bytes:
    """The 512-byte POSIX ustar header of a regular file `name` with our fixed metadata: the
    bytes Python's `tarfile` (3.11.4+, PAX format) writes for it when no extended header
    is needed, which `TarShard` requires."""
    raw = name.encode("utf-8")
    if not name.isascii() or len(raw) > 100:
        raise ValueError(
            f"tar member name {name!r}: must be ASCII and at most 100 bytes (shard keys are "
            "'<split>-NNNNNN.<ext>')"
        )
    if not 0 <= size < 8**11:
        raise ValueError(f"tar member {name!r}: size {size} is not below 8 GiB")
    owner = OWNER.encode().ljust(32, b"\0")
    header = b"".join(
        (
            raw.ljust(100, b"\0"),
            _octal(MODE, 8),
            _octal(0, 8),  # uid
            _octal(0, 8),  # gid
            _octal(size, 12),
            _octal(0, 12),  # mtime
            b" " * 8,  # the checksum, counted as spaces
            b"0",  # a regular file
            b"\0" * 100,  # link name
            b"ustar\x0000",
            owner,
            owner,
            b"\0" * 16,  # device numbers: none for a regular file
            b"\0" * 155,  # name prefix
        )
    ).ljust(BLOCK, b"\0")
    return header[:148] + b"%06o\0 " % sum(header) + header[156:]


class TarShard:
    """One tar file, written sample by sample: each sample's members in sorted order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.offset = 0

    def write(self, key: str, sample: dict[str, bytes]) -> None:
        for ext in sorted(sample):
            data = sample[ext]
            pad = -len(data) % BLOCK
            self.file.write(tar_header(f"{key}.{ext}", len(data)))
            self.file.write(data)
            if pad:
                self.file.write(b"\0" * pad)
            self.offset += BLOCK + len(data) + pad

    def close(self) -> None:
        end = self.offset + 2 * BLOCK
        self.file.write(b"\0" * (2 * BLOCK + -end % RECORD))
        self.file.close()


class SplitWriter:
    """Writes one split's samples into shards of at most `shard_size` samples, named
    `<split>-000000.tar`, `<split>-000001.tar`, ...; a split without samples still gets one
    (empty) shard, as WebDataset's ShardWriter gives."""

    def __init__(self, folder: Path, split: str, shard_size: int) -> None:
        if shard_size < 1:
            raise ValueError(f"shard_size={shard_size}: must be at least 1")
        self.folder, self.split, self.shard_size = folder, split, shard_size
        self.count = 0
        self.shard = TarShard(self._path(0))
        self.names = [self.shard.path.name]

    def _path(self, index: int) -> Path:
        return self.folder / f"{self.split}-{index:06d}.tar"

    def write(self, key: str, sample: dict[str, bytes | str]) -> None:
        if self.count and self.count % self.shard_size == 0:
            self.shard.close()
            self.shard = TarShard(self._path(len(self.names)))
            self.names.append(self.shard.path.name)
        self.shard.write(
            key, {k: v.encode() if isinstance(v, str) else v for k, v in sample.items()}
        )
        self.count += 1

    def close(self) -> list[str]:
        self.shard.close()
        return sorted(self.names)


def encode_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def iter_tar(path: str | Path, sha256: str | None = None) -> Iterator[dict[str, Any]]:
    """Samples of one shard as dicts: raw image bytes, `txt` str, `json` parsed, `cls` int.

    An `s3://` shard is streamed; its bytes are checked against `sha256` once read.
    """
    current: dict[str, Any] = {}
    stream = Store().open(path, sha256) if is_url(path) else None
    try:
        with tarfile.open(fileobj=stream, mode="r|") if stream else tarfile.open(path, "r") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, _, ext = member.name.partition(".")
                if current and current["__key__"] != key:
                    yield current
                    current = {}
                current["__key__"] = key
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                if ext == "txt":
                    current[ext] = data.decode("utf-8")
                elif ext == "json":
                    current[ext] = json.loads(data)
                elif ext == "cls":
                    current[ext] = int(data)
                else:
                    current[ext] = data
        if stream:
            stream.verify()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ValueError(f"shard {path} is unreadable or corrupt: {e}") from e
    finally:
        if stream:
            stream.close()
    if current:
        yield current


def iter_split(dataset: str | Path, split: str, manifest: dict[str, Any]) -> Iterator[dict]:
    for path in shard_paths(dataset, split, manifest):
        yield from iter_tar(path, manifest.get("files", {}).get(path.name))


def image_bytes(sample: dict[str, Any]) -> bytes:
    for key in IMAGE_KEYS:
        if key in sample:
            return sample[key]
    raise KeyError(f"sample {sample.get('__key__')} has no image ({' or '.join(IMAGE_KEYS)})")


def decode(data: bytes, size: int | None = None) -> np.ndarray:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(image).transpose(2, 0, 1)


def open_dataset(data: str | Path, splits: Sequence[str]) -> dict[str, Any]:
    """Verify a dataset folder (every checksum) and that it has `splits`; its manifest."""
    manifest = read_manifest(data, kind="dataset", verify=True)
    for split in splits:
        for name in resolve(split):
            if name not in manifest.get("shards", {}) or not manifest["shards"][name]:
                raise ManifestError(
                    f"{data}: split {name!r} is missing; it has "
                    f"{', '.join(sorted(manifest.get('shards', {})))}"
                )
    return manifest
