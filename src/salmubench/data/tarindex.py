"""Where each sample of a tar shard lies, and reading chosen samples by offset.

Indexing scans a shard's tar headers once (member name → byte offset and size) and decodes
nothing: a local shard is read header by header (`tarfile` seeks over the data), an
`s3://` shard is streamed once, which also checks its sha256 against the dataset manifest.
Reading then fetches only the bytes of the samples asked for: a seek in a local file, or
one ranged GET per run of neighbouring samples on S3.

Samples follow WebDataset's convention: members with the same key (the name up to the
first dot of its base name) in a row form one sample, keyed by extension. A sample needs an
image (png, jpg, jpeg or webp) and a caption (txt). What would otherwise fail mid-training
fails here, naming the shard and the member: a sample without a caption or image, an image
that does not start like one, a truncated tar.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from salmubench.errors import ManifestError
from salmubench.manifest import is_url
from salmubench.s3 import Store, Url, location

IMAGE_EXTS = ("png", "jpg", "jpeg", "webp")
CAPTION_EXT = "txt"
JSON_EXT = "json"  # optional: a sample's metadata (ours: its generic caption, for unlearning)
_MAGIC = ((b"\x89PNG\r\n\x1a\n", 0), (b"\xff\xd8\xff", 0), (b"RIFF", 0), (b"WEBP", 8))
_HEAD = 16  # bytes of an image read at indexing time to check that it is one
_NAME = re.compile(r"^((?:.*/|)[^./]+)[.]([^/]*)$")  # WebDataset's key / extension split
COALESCE_GAP = 256 << 10  # neighbouring samples closer than this are read in one request


class ShardError(ManifestError):
    """A shard that cannot be trained on: named, with the member and what is wrong."""


@dataclass
class Index:
    """Samples in shard order: shard number, image, caption and json (offset, size) in it
    (json (-1, 0): the sample has none)."""

    shards: list[str]
    shard: np.ndarray  # int32 [N]
    image: np.ndarray  # int64 [N, 2]
    caption: np.ndarray  # int64 [N, 2]
    keys: list[str] = field(default_factory=list)
    json: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))

    def __len__(self) -> int:
        return len(self.shard)

    @classmethod
    def concat(cls, parts: Sequence[Index]) -> Index:
        shards: list[str] = []
        shard_no = []
        for part in parts:
            shard_no.append(part.shard + len(shards))
            shards += part.shards
        return cls(
            shards,
            np.concatenate(shard_no).astype(np.int32),
            np.concatenate([p.image for p in parts]).reshape(-1, 2),
            np.concatenate([p.caption for p in parts]).reshape(-1, 2),
            [k for p in parts for k in p.keys],
            np.concatenate([p.json for p in parts]).reshape(-1, 2),
        )

    def take(self, positions: np.ndarray) -> Index:
        """The samples at `positions`, in that order (the shard list is kept whole)."""
        rows = np.asarray(positions, dtype=np.int64)
        return Index(self.shards, self.shard[rows], self.image[rows], self.caption[rows],
                     [self.keys[i] for i in rows.tolist()], self.json[rows])  # fmt: skip

    def without_json(self) -> list[str]:
        """Keys of the samples that have no json member."""
        return [self.keys[i] for i in np.flatnonzero(self.json[:, 0] < 0).tolist()]


def index_shard(path: str | Path, sha256: str | None = None) -> Index:
    """The samples of one shard, from its headers; `sha256` is checked for `s3://` shards
    (local ones were checked with their dataset manifest)."""
    rows: list[tuple[str, int, int, int, int]] = []
    current: dict[str, tuple[int, int]] = {}
    key = None

    def close() -> None:
        if key is not None:
            rows.append(_sample(path, key, current))

    try:
        for name, offset, size, head in _members(path, sha256):
            match = _NAME.match(name)
            if not match:
                continue  # no extension: not part of any sample (WebDataset skips it too)
            member_key, ext = match.group(1), match.group(2).lower()
            if member_key != key:
                close()
                key, current = member_key, {}
            current[ext] = (offset, size)
            if ext in IMAGE_EXTS and not _looks_like_image(head):
                raise ShardError(
                    f"shard {path}: member {name} is not a decodable image (it starts with "
                    f"{head[:8]!r}; expected a {'/'.join(IMAGE_EXTS)} file)"
                )
        close()
    except (tarfile.TarError, EOFError) as e:
        raise ShardError(f"shard {path}: truncated or corrupt tar ({e})") from e
    return Index(
        [str(path)],
        np.zeros(len(rows), dtype=np.int32),
        np.array([(r[1], r[2]) for r in rows], dtype=np.int64).reshape(-1, 2),
        np.array([(r[3], r[4]) for r in rows], dtype=np.int64).reshape(-1, 2),
        [r[0] for r in rows],
        np.array([(r[5], r[6]) for r in rows], dtype=np.int64).reshape(-1, 2),
    )


def _sample(path: str | Path, key: str, members: dict[str, tuple[int, int]]) -> tuple:
    image = next((members[e] for e in IMAGE_EXTS if e in members), None)
    have = ", ".join(f"{key}.{e}" for e in members)
    if CAPTION_EXT not in members:
        raise ShardError(f"shard {path}: sample {key!r} has no caption ({key}.txt); it has {have}")
    if image is None:
        raise ShardError(
            f"shard {path}: sample {key!r} has no image ({key}.{'|'.join(IMAGE_EXTS)}); "
            f"it has {have}"
        )
    return (key, *image, *members[CAPTION_EXT], *members.get(JSON_EXT, (-1, 0)))


def _looks_like_image(head: bytes) -> bool:
    return any(head[at : at + len(magic)] == magic for magic, at in _MAGIC)


def _members(path: str | Path, sha256: str | None) -> Iterator[tuple[str, int, int, bytes]]:
    """(name, data offset, size, first bytes) of every regular member, in tar order."""
    if is_url(path):
        stream = Store().open(str(path), sha256)
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for m in tar:
                    if m.isfile():
                        head = tar.extractfile(m).read(_HEAD)  # type: ignore[union-attr]
                        yield m.name, m.offset_data, m.size, head
            stream.verify()
        finally:
            stream.close()
        return
    end = os.path.getsize(path)
    last = (0, "")  # where the last member's data ends (padded to a block), its name
    with open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
        for m in tar:
            last = (m.offset_data + -(-m.size // 512) * 512, m.name)
            if not m.isfile():
                continue
            if m.offset_data + m.size > end:
                raise ShardError(
                    f"shard {path}: truncated tar: member {m.name} needs bytes up to "
                    f"{m.offset_data + m.size}, the file has {end}"
                )
            here = f.tell()
            f.seek(m.offset_data)
            head = f.read(min(_HEAD, m.size))
            f.seek(here)
            yield m.name, m.offset_data, m.size, head
    if end < last[0] + 1024:  # cut at a member boundary: no end-of-archive blocks
        raise ShardError(
            f"shard {path}: truncated tar: it ends after member {last[1]} without the two "
            "zero blocks that end an archive"
        )


def read_spans(shard: str, spans: Sequence[tuple[int, int]]) -> list[bytes]:
    """The bytes of each (offset, size) span of one shard; neighbouring spans are read in
    one request (a local read or an S3 ranged GET)."""
    order = sorted(range(len(spans)), key=lambda i: spans[i][0])
    out: list[bytes] = [b""] * len(spans)
    groups: list[list[int]] = []
    for i in order:
        if groups and spans[i][0] - _end(spans, groups[-1]) < COALESCE_GAP:
            groups[-1].append(i)
        else:
            groups.append([i])
    with _Reader(shard) as reader:
        for group in groups:
            start = spans[group[0]][0]
            length = _end(spans, group) - start
            blob = reader.read(start, length)
            if len(blob) != length:
                raise ShardError(
                    f"shard {shard}: bytes {start}-{start + length} are past its end "
                    f"({len(blob)} of {length} read); it changed since it was indexed"
                )
            for i in group:
                offset, size = spans[i]
                out[i] = blob[offset - start : offset - start + size]
    return out


def _end(spans: Sequence[tuple[int, int]], group: list[int]) -> int:
    return max(spans[i][0] + spans[i][1] for i in group)


_STORES: dict[int, Store] = {}  # one S3 client per process


class _Reader:
    """Ranged reads of one shard: a local file, or an `s3://` object through one client per
    process (clients are not shared across the loader's worker processes)."""

    def __init__(self, shard: str) -> None:
        self.shard = shard
        self.file = None if is_url(shard) else open(shard, "rb")  # noqa: SIM115

    def read(self, offset: int, length: int) -> bytes:
        if self.file is None:
            store = _STORES.get(os.getpid())
            if store is None:
                store = _STORES[os.getpid()] = Store()
            return store.get_range(self.shard, offset, length)
        self.file.seek(offset)
        return self.file.read(length)

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *_: object) -> None:
        if self.file is not None:
            self.file.close()


def list_shards(uri: str | Path) -> tuple[list[Path | Url], dict[str, object]]:
    """The `.tar` files of a folder or `s3://` prefix, sorted, and a record of them: the
    URI, how many, and a digest of their names and sizes (what a model manifest keeps)."""
    where = location(uri)
    if is_url(where):
        store = Store()
        names = [n for n in store.list(str(where)) if n.endswith(".tar")]
        sizes = [int((store.stat(str(where / n)) or {"size": -1})["size"]) for n in names]
        paths: list[Path | Url] = [where / n for n in names]
    else:
        if not Path(where).is_dir():
            raise ShardError(f"general_world_uri={str(uri)!r}: no such folder (or s3:// prefix)")
        files = sorted(p for p in Path(where).rglob("*.tar") if p.is_file())
        names = [p.relative_to(where).as_posix() for p in files]
        sizes = [p.stat().st_size for p in files]
        paths = list(files)
    if not names:
        raise ShardError(f"general_world_uri={str(uri)!r}: holds no .tar shards")
    listing = json.dumps(list(zip(names, sizes, strict=True)), separators=(",", ":"))
    record = {"uri": str(uri), "shards": len(names), "bytes": sum(sizes),
              "digest": hashlib.sha256(listing.encode()).hexdigest()}  # fmt: skip
    return paths, record
