"""Stage folders on object storage: upload a finished folder (its manifest last) and
download one, every file verified. The S3 client itself (endpoint, credentials, retries,
checksums) is `s3.py`; see its docstring for the environment and the guarantees.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

from salmubench.manifest import MANIFEST, ManifestError, read_manifest, staged_output, write_atomic

# The S3 client's names, re-exported: tests and tools import them from here.
from salmubench.s3 import (  # noqa: F401
    ChecksumError,
    CredentialsError,
    StorageError,
    Store,
    Url,
    fetch_manifest,
    location,
    split_url,
)

log = logging.getLogger(__name__)


def upload_folder(folder: str | Path, url: str, store: Store | None = None) -> dict[str, int]:
    """Upload a finished stage folder (manifest verified first, uploaded last).

    Objects already in place with the same sha256 are skipped, so a retry after an
    interruption sends only what is missing. Returns counts of uploaded/skipped files.
    """

    folder = Path(folder)
    manifest = read_manifest(folder, verify=True)
    store = store or Store()
    target = Url(url)
    store.ensure_bucket(target.bucket)
    counts = {"uploaded": 0, "skipped": 0, "bytes": 0}
    files = sorted(manifest["files"].items())
    for i, (name, sha) in enumerate(files, 1):
        there = store.stat(target / name)
        if there and there["sha256"] == sha:
            counts["skipped"] += 1
            continue
        log.info("[%d/%d] %s -> %s", i, len(files), name, target / name)
        store.put_file(folder / name, target / name, sha)
        counts["uploaded"] += 1
        counts["bytes"] += (folder / name).stat().st_size
    store.put_file(folder / MANIFEST, target / MANIFEST)  # last: the folder is complete
    return counts


def download_folder(url: str, out: str | Path, force: bool = False, store: Store | None = None):
    """Download a stage folder, every file verified against its manifest; the manifest."""

    store = store or Store()
    source = Url(url)
    raw, manifest = fetch_manifest(source, store)
    with staged_output(out, force) as tmp:
        files = sorted(manifest.get("files", {}).items())
        for i, (name, sha) in enumerate(files, 1):
            log.info("[%d/%d] %s", i, len(files), source / name)
            if ".." in PurePosixPath(name).parts or name.startswith("/"):
                raise ManifestError(f"{source}: refusing unsafe file name {name!r}")
            store.get_file(source / name, tmp / name, sha)
        write_atomic(tmp / MANIFEST, raw)  # the stored bytes: the folder stays byte-identical
    return manifest
