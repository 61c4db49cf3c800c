"""The S3 client: objects, shards and manifests on any S3 endpoint (MinIO, SeaweedFS, AWS,
moto). Moving whole stage folders: `storage.py`.

Nothing here is MinIO-specific: an endpoint, a bucket and credentials, all from the
environment (never from a file in the repository):

    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY    credentials (AWS_SESSION_TOKEN optional)
    AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL      e.g. http://minio.salmubench:9000
    AWS_REGION or AWS_DEFAULT_REGION             default us-east-1
    SALMUBENCH_S3_ATTEMPTS                       tries per request (default 5)
    SALMUBENCH_S3_TIMEOUT                        seconds to connect / between bytes (default 30)

Guarantees, each one a test in tests/test_storage.py:
- Atomic: an object appears under its key only complete (a single PUT, or a multipart
  upload that S3 publishes on completion); a folder's `manifest.json` is uploaded last,
  so a folder without it is incomplete, exactly as on disk.
- Retried: connection errors, timeouts, 5xx and throttling are retried with exponential
  backoff; a retry of an interrupted folder upload skips what is already there intact.
- Verified: every object carries its sha256 as metadata; downloads are hashed while they
  stream and a mismatch raises `ChecksumError` naming the object and both digests. Files
  are written under a temporary name and renamed, so a failed download leaves nothing.
- Credentials are never printed: errors name the endpoint and the access key id's first
  characters only.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, TypeVar

from salmubench.errors import ManifestError
from salmubench.hashing import sha256_file
from salmubench.vocab import MANIFEST

log = logging.getLogger(__name__)

SCHEME = "s3://"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
SHA_META = "sha256"  # stored as x-amz-meta-sha256
RETRYABLE_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling"}
)
AUTH_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken",
     "ExpiredToken", "AuthorizationHeaderMalformed"}
)  # fmt: skip
T = TypeVar("T")


class StorageError(RuntimeError):
    """Object storage could not be reached, refused us, or lacks what was asked for."""


class CredentialsError(StorageError):
    """The endpoint rejected our credentials (which are never printed)."""


class ChecksumError(StorageError, ValueError):
    """Downloaded bytes do not match the recorded sha256."""


class Url(str):
    """An `s3://bucket/key` location that joins like a Path: `Url(u) / "manifest.json"`."""

    def __new__(cls, value: str) -> Url:
        split_url(value)  # validates
        return super().__new__(cls, value.rstrip("/"))

    def __truediv__(self, other: str) -> Url:
        return Url(f"{self.rstrip('/')}/{str(other).lstrip('/')}")

    @property
    def name(self) -> str:
        return PurePosixPath(split_url(self)[1] or split_url(self)[0]).name

    def read_bytes(self) -> bytes:
        """The object's bytes, checked against its recorded sha256."""
        return Store().get_bytes(self)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    @property
    def bucket(self) -> str:
        return split_url(self)[0]

    @property
    def key(self) -> str:
        return split_url(self)[1]


def is_url(location: Any) -> bool:
    """An object-storage location (`s3://...`) rather than a local path."""
    return str(location).startswith(SCHEME)


def location(value: str | os.PathLike) -> Path | Url:
    """A dataset/stage location as given on the command line: a local Path or an s3 Url."""
    return Url(str(value)) if is_url(value) else Path(value)


def split_url(url: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> ("bucket", "a/b"); a clear error for anything else."""
    if not is_url(url):
        raise ValueError(f"{url!r} is not an s3:// URL (expected s3://BUCKET/KEY)")
    bucket, _, key = url[len(SCHEME) :].partition("/")
    if not _BUCKET.match(bucket):
        raise ValueError(
            f"{url!r}: {bucket!r} is not a valid bucket name (3-63 lower-case letters, "
            "digits, '-' or '.')"
        )
    return bucket, key.strip("/")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ValueError(f"${name}={raw!r} is not a number") from None


@dataclass(frozen=True)
class Endpoint:
    url: str
    region: str
    access_key: str
    secret_key: str = ""
    session_token: str | None = None

    @classmethod
    def from_env(cls) -> Endpoint:
        url = (
            os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or "https://s3.amazonaws.com"
        )
        if not url.startswith(("http://", "https://")):
            raise ValueError(
                f"S3 endpoint {url!r} (from $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL) must "
                "start with http:// or https://, e.g. http://minio.salmubench:9000"
            )
        access, secret = (
            os.environ.get("AWS_ACCESS_KEY_ID", ""),
            os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        )
        if not access or not secret:
            raise CredentialsError(
                f"no S3 credentials for {url}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY in the environment (in Kubernetes, from a Secret)"
            )
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return cls(url.rstrip("/"), region or "us-east-1", access, secret,
                   os.environ.get("AWS_SESSION_TOKEN"))  # fmt: skip

    def __repr__(self) -> str:  # never the secret
        return f"Endpoint({self.url}, key {self.access_key[:4]}...)"


class Store:
    """A client for one endpoint with retries, checksums and clear errors."""

    def __init__(self, endpoint: Endpoint | None = None) -> None:
        import urllib3
        from minio import Minio

        self.endpoint = endpoint or Endpoint.from_env()
        self.attempts = max(1, int(_env_float("SALMUBENCH_S3_ATTEMPTS", 5)))
        timeout = _env_float("SALMUBENCH_S3_TIMEOUT", 30)
        # Requests are retried here (one policy for every call), not inside urllib3.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=urllib3.Retry(total=0, connect=0, read=0, redirect=2, status=0),
            maxsize=8,
        )
        scheme, _, host = self.endpoint.url.partition("://")
        self.client = Minio(
            host,
            access_key=self.endpoint.access_key,
            secret_key=self.endpoint.secret_key,
            session_token=self.endpoint.session_token,
            secure=scheme == "https",
            region=self.endpoint.region,
            http_client=http,
        )

    # -- one request, retried ---------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from minio.error import S3Error, ServerError
        from urllib3.exceptions import HTTPError

        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except S3Error as e:
                if e.code in AUTH_CODES:
                    raise CredentialsError(
                        f"{what}: {self.endpoint.url} rejected the credentials ({e.code}) "
                        f"for access key {self.endpoint.access_key[:4]}...; check "
                        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
                    ) from None
                if e.code not in RETRYABLE_CODES:
                    raise StorageError(f"{what}: {e.code}: {e.message}") from None
                error: str = f"{e.code}: {e.message}"
            except (ServerError, HTTPError, OSError) as e:
                error = f"{type(e).__name__}: {e}"
            if attempt < self.attempts:
                delay = min(8.0, 0.5 * 2 ** (attempt - 1))
                log.warning("%s failed (%s); retry %d/%d in %.1f s", what, error,
                            attempt, self.attempts - 1, delay)  # fmt: skip
                time.sleep(delay)
        raise StorageError(
            f"{what}: {self.endpoint.url} unreachable or failing after {self.attempts} "
            f"attempts (last error: {error}). Nothing partial was published; run the same "
            "command again once the endpoint is back (finished objects are skipped)."
        )

    # -- objects ------------------------------------------------------------------------
    def stat(self, url: str) -> dict[str, Any] | None:
        """Size and recorded sha256 of an object, or None if there is none."""
        from minio.error import S3Error

        bucket, key = split_url(url)

        def head() -> dict[str, Any] | None:
            try:
                info = self.client.stat_object(bucket, key)
            except S3Error as e:
                if e.code in ("NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"):
                    return None
                raise
            meta = {k.lower(): v for k, v in (info.metadata or {}).items()}
            return {"size": info.size, "sha256": meta.get(f"x-amz-meta-{SHA_META}")}

        return self._call(f"stat {url}", head)

    def put_file(self, path: str | Path, url: str, sha256: str | None = None) -> str:
        """Upload one file (atomic per key), recording its sha256; the sha256."""
        sha256 = sha256 or sha256_file(path)
        bucket, key = split_url(url)
        self._call(
            f"upload {path} -> {url}",
            lambda: self.client.fput_object(
                bucket, key, str(path), metadata={SHA_META: sha256},
                part_size=64 * 1024 * 1024,
            ),
        )  # fmt: skip
        return sha256

    def put_bytes(self, data: bytes, url: str) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        bucket, key = split_url(url)
        self._call(
            f"upload {url}",
            lambda: self.client.put_object(
                bucket, key, io.BytesIO(data), len(data), metadata={SHA_META: sha256}
            ),
        )
        return sha256

    def get_bytes(self, url: str, sha256: str | None = None) -> bytes:
        sink = io.BytesIO()
        self._download(url, sink, sha256)
        return sink.getvalue()

    def get_file(self, url: str, path: str | Path, sha256: str | None = None) -> str:
        """Download to `path` via a temporary name, verified; the sha256."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                digest = self._download(url, f, sha256)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return digest

    def _download(self, url: str, sink: IO[bytes], sha256: str | None) -> str:
        bucket, key = split_url(url)

        def fetch() -> str:
            sink.seek(0)
            sink.truncate()
            response = self._get(bucket, key, url)
            h = hashlib.sha256()
            try:
                for chunk in response.stream(1 << 20):
                    h.update(chunk)
                    sink.write(chunk)
            finally:
                response.close()
                response.release_conn()
            return h.hexdigest()

        actual = self._call(f"download {url}", fetch)
        expected = sha256 or self._recorded(url)
        if expected and actual != expected:
            raise ChecksumError(
                f"{url}: checksum mismatch: downloaded sha256 {actual} != expected "
                f"{expected}; the object is corrupt or was replaced (nothing was written)"
            )
        return actual

    def _recorded(self, url: str) -> str | None:
        info = self.stat(url)
        return info and info["sha256"]

    def _get(self, bucket: str, key: str, url: str) -> Any:
        from minio.error import S3Error

        try:
            return self.client.get_object(bucket, key)
        except S3Error as e:
            if e.code in ("NoSuchKey", "NoSuchBucket"):
                raise StorageError(f"{url}: no such object ({e.code})") from None
            raise

    def get_range(self, url: str, offset: int, length: int) -> bytes:
        """Bytes [offset, offset + length) of an object: one ranged GET, retried, unverified
        (the streaming loader checked the object's sha256 once, when it indexed it)."""
        bucket, key = split_url(url)

        def fetch() -> bytes:
            response = self.client.get_object(bucket, key, offset=offset, length=length)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self._call(f"read {url} bytes {offset}+{length}", fetch)

    def open(self, url: str, sha256: str | None = None) -> VerifiedStream:
        """A streaming reader of one object whose sha256 is checked when it is drained."""
        bucket, key = split_url(url)
        response = self._call(f"open {url}", lambda: self._get(bucket, key, url))
        return VerifiedStream(response, url, sha256)

    def list(self, url: str) -> list[str]:
        """Keys under a prefix, relative to it, sorted."""
        bucket, prefix = split_url(url)
        prefix = f"{prefix}/" if prefix else ""

        def ls() -> list[str]:
            objects = self.client.list_objects(bucket, prefix=prefix, recursive=True)
            return sorted(o.object_name[len(prefix) :] for o in objects)

        return self._call(f"list {url}", ls)

    def ensure_bucket(self, bucket: str) -> None:
        if not self._call(f"check bucket {bucket}", lambda: self.client.bucket_exists(bucket)):
            self._call(f"create bucket {bucket}", lambda: self.client.make_bucket(bucket))


class VerifiedStream(io.RawIOBase):
    """Bytes of one object; `verify()` (called at EOF by readers) checks their sha256."""

    def __init__(self, response: Any, url: str, sha256: str | None) -> None:
        self.response, self.url, self.expected = response, url, sha256
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.response.read(len(buffer))
        self.hash.update(data)
        buffer[: len(data)] = data
        return len(data)

    def verify(self) -> None:
        while self.read(1 << 20):
            pass
        actual = self.hash.hexdigest()
        if self.expected and actual != self.expected:
            raise ChecksumError(
                f"{self.url}: checksum mismatch: read sha256 {actual} != the manifest's "
                f"{self.expected}; the object is corrupt or was replaced"
            )

    def close(self) -> None:
        if not self.closed:
            self.response.close()
            self.response.release_conn()
        super().close()


def read_remote_manifest(url: Url, store: Store | None = None) -> dict[str, Any]:
    return fetch_manifest(url, store)[1]


def fetch_manifest(url: Url, store: Store | None = None) -> tuple[bytes, dict[str, Any]]:
    store = store or Store()
    try:
        raw = store.get_bytes(url / MANIFEST)
    except StorageError as e:
        if "no such object" in str(e):
            raise ManifestError(
                f"{url}: no {MANIFEST}, so nothing complete is stored there (an interrupted "
                "upload, or a wrong URL)"
            ) from None
        raise
    try:
        return raw, json.loads(raw)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{url / MANIFEST}: not valid JSON ({e})") from e


def verify_remote(url: Url, manifest: dict[str, Any]) -> None:
    """Check that every listed object exists with the recorded sha256 (no download)."""
    store = Store()
    for name, expected in manifest.get("files", {}).items():
        info = store.stat(url / name)
        if info is None:
            raise ManifestError(f"{url}: {name} is listed in the manifest but missing")
        if info["sha256"] and info["sha256"] != expected:
            raise ChecksumError(
                f"{url}: {name} is corrupt or was modified: recorded sha256 "
                f"{info['sha256']} does not match the manifest's {expected}"
            )


def register_webdataset() -> None:
    """Let `webdataset.WebDataset("s3://bucket/shard-{000..009}.tar")` read through `Store`.

    Same endpoint, credentials and retries as everything else here (webdataset has no
    built-in s3:// opener). Called when `salmubench.data.shards` is imported.
    """
    import importlib

    # The module: the package re-exports a function under the same name.
    gopen = importlib.import_module("webdataset.gopen")

    def gopen_s3(url: str, mode: str = "rb", bufsize: int = 8192, **_: Any) -> IO[bytes]:
        if not mode.startswith("r"):
            raise ValueError(f"{url}: s3:// is read-only here; write with `salmubench upload`")
        return io.BufferedReader(Store().open(url), buffer_size=max(bufsize, 1 << 16))

    gopen.gopen_schemes["s3"] = gopen_s3
