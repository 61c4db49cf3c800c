"""The folder contract: every stage output folder carries a `manifest.json`, written last.

A manifest says what the folder is (`kind`), which package and config made it, the digests
of its inputs, and the sha256 of every file in it. A folder without one is incomplete and
is never read. Outputs are built under a temporary sibling name and renamed into place, so
an interrupted stage never leaves a folder that looks complete, and `--force` never
half-overwrites an earlier result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from salmubench import __version__
from salmubench.errors import ManifestError
from salmubench.hashing import sha256_file
from salmubench.s3 import Url, is_url, read_remote_manifest, verify_remote
from salmubench.vocab import MANIFEST

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
KINDS = ("dataset", "model", "eval", "report", "attack")


class OutputExistsError(FileExistsError):
    """The output folder already holds something and --force was not given."""


def dumps(obj: Any) -> str:
    """Canonical JSON: sorted keys, stable separators, a final newline (byte-reproducible)."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Write a file under a temporary name in the same folder, then rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def folder_files(folder: Path) -> list[str]:
    """Every regular file under `folder` except the manifest, as sorted POSIX paths."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != MANIFEST
    )


def write_manifest(
    folder: str | os.PathLike,
    kind: str,
    *,
    config: dict[str, Any],
    inputs: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Checksum every file in `folder` and write its manifest (last, atomically)."""
    if kind not in KINDS:
        raise ValueError(f"unknown manifest kind {kind!r}; valid: {KINDS}")
    folder = Path(folder)
    files = {name: sha256_file(folder / name) for name in folder_files(folder)}
    digest = hashlib.sha256(
        "".join(f"{name}\0{sha}\n" for name, sha in files.items()).encode()
    ).hexdigest()
    manifest = {
        "format": FORMAT_VERSION,
        "kind": kind,
        "package_version": __version__,
        "config": config,
        "inputs": inputs or {},
        "digest": digest,
        "files": files,
        **fields,
    }
    write_atomic(folder / MANIFEST, dumps(manifest))
    return manifest


def read_manifest(
    folder: str | os.PathLike, kind: str | None = None, verify: bool = False
) -> dict[str, Any]:
    """Read a folder's manifest; check its kind and, with `verify`, every file's sha256.

    `folder` may be an `s3://` URL: then `verify` checks that every file exists with the
    recorded sha256 (a HEAD each), and readers check the bytes as they stream them.
    """
    if is_url(folder):
        url = Url(str(folder))
        manifest = read_remote_manifest(url)
        _check_kind(url, manifest, kind)
        if verify:
            verify_remote(url, manifest)
        return manifest
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ManifestError(f"{folder}: no such folder")
    if not path.is_file():
        raise ManifestError(
            f"{folder}: no {MANIFEST}, so the folder is incomplete (an interrupted or "
            "unfinished stage) and cannot be used"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}: not valid JSON ({e})") from e
    _check_kind(folder, manifest, kind)
    if verify:
        verify_files(folder, manifest)
    return manifest


def _check_kind(folder: Any, manifest: dict[str, Any], kind: str | None) -> None:
    if kind is not None and manifest.get("kind") != kind:
        raise ManifestError(f"{folder}: is a {manifest.get('kind')!r} folder, expected {kind!r}")


def verify_files(folder: Path, manifest: dict[str, Any]) -> None:
    if is_url(folder):
        verify_remote(Url(str(folder)), manifest)
        return
    listed = manifest.get("files", {})
    for name, expected in listed.items():
        path = folder / name
        if not path.is_file():
            raise ManifestError(f"{folder}: {name} is listed in the manifest but missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ManifestError(
                f"{folder}: {name} is corrupt or was modified: sha256 {actual} does not "
                f"match the manifest's {expected}"
            )


def check_output(out: str | os.PathLike, force: bool) -> Path:
    """Refuse an existing non-empty output folder unless `force`; nothing is written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputExistsError(
            f"output folder {out} already exists and is not empty; pass --force to replace "
            "it (it is replaced only once the new output is complete)"
        )
    return out


@contextlib.contextmanager
def staged_output(out: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success swap it in place of `out`.

    On any error the temporary folder is removed and `out` is untouched. A run killed
    outright leaves only a `.<name>.tmp-<pid>` folder with no manifest.
    """
    out = check_output(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    log.debug("published %s", out)
