"""WebDataset shards: reproducible writing and small readers (split names: `vocab`).

Every split is a set of `<split>-NNNNNN.tar` files at the dataset root. Samples carry
`png`/`jpg` (the image), `txt` (the training caption), `json` (metadata) and, for the
GenKnow task, `cls` (the class index). Tar metadata is fixed (mtime 0, one owner, mode
0444) so the same seed gives byte-identical shards, which DVC then never re-uploads.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import webdataset as wds
from PIL import Image

from salmubench.manifest import ManifestError, is_url, read_manifest
from salmubench.s3 import Store, Url, location, register_webdataset

# COMPOSITES, SENSITIVE_SPLITS and SPLITS: re-exported for tests and tools that import them
# from here (their home is `vocab`).
from salmubench.vocab import COMPOSITES, SENSITIVE_SPLITS, SPLITS, resolve  # noqa: F401

register_webdataset()  # webdataset.WebDataset("s3://...") reads like our own readers

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


class SplitWriter:
    """Writes one split's samples into size-bounded shards with fixed tar metadata."""

    def __init__(self, folder: Path, split: str, shard_size: int) -> None:
        self.folder, self.split = folder, split
        self.writer = wds.ShardWriter(
            str(folder / f"{split}-%06d.tar"),
            maxcount=shard_size,
            mtime=0,
            user="salmubench",
            group="salmubench",
            encoder=False,
            verbose=0,
        )
        self.count = 0

    def write(self, key: str, sample: dict[str, bytes | str]) -> None:
        self.writer.write(
            {
                "__key__": key,
                **{k: v.encode() if isinstance(v, str) else v for k, v in sample.items()},
            }
        )
        self.count += 1

    def close(self) -> list[str]:
        self.writer.close()
        return sorted(p.name for p in self.folder.glob(f"{self.split}-*.tar"))


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
