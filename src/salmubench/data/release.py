"""The released SALMUBench benchmark, read and checked: what `salmubench import --official`
converts (`data/official.py`). Offline, from files the user gives.

The release (the benchmark dataset that the official evaluator loads) is a folder:

    DIR/identities_metadata.json             {identity_id: {"name": ..., <field>: value, ...}}
    DIR/sensitive_set_captions_metadata.json {file_name: {"caption": ..., "data_field": ...}}
    DIR/sensitive_set_generic_captions.json  {file_name: generic (non-sensitive) caption}
    DIR/fragile_set_ids.json                 [file_name, ...]
    DIR/data/<split>-*.parquet               rows: image {bytes, path}, text, identity_id,
                                             file_name  (needs pyarrow)
    or DIR/data/<split>/metadata.jsonl       the same rows unpacked (Hugging Face's
       + DIR/data/<split>/<file_name>        imagefolder layout), one JSON row per image

with the released splits forget, holdout_association, holdout_identity and retain_synth.
`Release.target` maps a row to our primitive split as the official evaluator derives its
own (DERIVATION); `Release.row_meta` gives its per-sample metadata. Bad input fails naming
the file: a missing metadata or split file, a row whose persona is not in
identities_metadata.json, a sensitive row without caption metadata, an image that cannot be
decoded.
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from salmubench.config import ConfigError

IDENTITIES_FILE = "identities_metadata.json"
CAPTIONS_FILE = "sensitive_set_captions_metadata.json"
GENERIC_FILE = "sensitive_set_generic_captions.json"
FRAGILE_FILE = "fragile_set_ids.json"
METADATA_FILES = (IDENTITIES_FILE, CAPTIONS_FILE, GENERIC_FILE, FRAGILE_FILE)
RELEASED_SPLITS = ("forget", "holdout_association", "holdout_identity", "retain_synth")
ROW_FIELDS = ("file_name", "text", "identity_id")
# What a released row becomes: (released split, our primitive splits it may feed).
DERIVATION = {
    "forget_identity": "forget rows whose identity_id is not in holdout_association",
    "forget_association": "forget rows whose identity_id is in holdout_association",
    "holdout_association": "holdout_association, as released",
    "holdout_identity": "holdout_identity, as released",
    "retain_joint": "retain_synth rows whose identity_id is a forget identity",
    "retain_disjoint": "retain_synth rows without identity_id",
    "fragile": f"retain_disjoint rows whose file_name is in {FRAGILE_FILE}",
    "genknow": "our synthetic task (rendered), or none: eval --genknow-imagenet",
    "retain_real": "none (the paper's is DataComp CommonPool)",
}
_FORMATS = {"JPEG": "jpg", "PNG": "png"}


class OfficialDataError(ConfigError):
    """The release folder is incomplete or inconsistent; the message names the file."""


@dataclass(frozen=True)
class Row:
    """One released image-caption row: where it came from and what it says."""

    source: str  # the file it was read from (shown in errors)
    file_name: str
    text: str
    identity_id: str | None
    image: Callable[[], bytes]  # its encoded bytes, read on demand


# ----------------------------------------------------------------------- reading the release


def _read_json(path: Path, kind: type) -> Any:
    if not path.is_file():
        raise OfficialDataError(
            f"{path}: missing; a SALMUBench release folder holds {', '.join(METADATA_FILES)} "
            f"and data/<split>-*.parquet (or data/<split>/metadata.jsonl) for "
            f"{', '.join(RELEASED_SPLITS)}"
        )
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise OfficialDataError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(value, kind):
        raise OfficialDataError(
            f"{path}: expected a JSON {'object' if kind is dict else 'array'}, "
            f"got {type(value).__name__}"
        )
    return value


def split_sources(root: Path, split: str) -> tuple[str, list[Path]]:
    """("parquet", shard files) or ("folder", [metadata.jsonl]) of a released split."""
    data = root / "data"
    parquet = sorted(data.glob(f"{split}-*.parquet"))
    if parquet:
        return "parquet", parquet
    folder = data / split / "metadata.jsonl"
    if folder.is_file():
        return "folder", [folder]
    raise OfficialDataError(
        f"{data}: split {split!r} is missing: expected {data}/{split}-*.parquet or "
        f"{folder} (the released splits: {', '.join(RELEASED_SPLITS)})"
    )


def _check_row(source: str, where: str, row: dict[str, Any]) -> None:
    for name in ("file_name", "text"):
        if not isinstance(row.get(name), str) or not row[name]:
            raise OfficialDataError(
                f"{source}: {where} has no {name!r} string; a row has {', '.join(ROW_FIELDS)}"
            )
    iid = row.get("identity_id")
    if iid is not None and not isinstance(iid, str):
        raise OfficialDataError(f"{source}: {where} has identity_id {iid!r}; expected a string")


def iter_rows(root: Path, split: str, with_images: bool = True) -> Iterator[Row]:
    """The rows of a released split in release order (shards sorted, rows as stored)."""
    layout, files = split_sources(root, split)
    if layout == "folder":
        path = files[0]
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise OfficialDataError(f"{path}: line {number} is not JSON: {e}") from None
            _check_row(str(path), f"line {number}", row)
            image = path.parent / row["file_name"]
            yield Row(
                str(path),
                row["file_name"],
                row["text"],
                row.get("identity_id"),
                lambda image=image: _read_image_file(image, path),
            )
        return
    pq = _pyarrow_parquet()
    columns = [*ROW_FIELDS, "image"] if with_images else list(ROW_FIELDS)
    for path in files:
        try:
            reader = pq.ParquetFile(path)
            missing = [c for c in columns if c not in reader.schema_arrow.names]
            if missing:
                raise OfficialDataError(
                    f"{path}: no column(s) {', '.join(missing)}; it has "
                    f"{', '.join(reader.schema_arrow.names)}"
                )
            index = 0
            for batch in reader.iter_batches(batch_size=256, columns=columns):
                for row in batch.to_pylist():
                    index += 1
                    _check_row(str(path), f"row {index}", row)
                    data = (row.get("image") or {}).get("bytes") if with_images else b""
                    yield Row(
                        str(path),
                        row["file_name"],
                        row["text"],
                        row.get("identity_id"),
                        lambda data=data: data,
                    )
        except OSError as e:  # pyarrow's ArrowInvalid is an OSError too
            raise OfficialDataError(f"{path}: unreadable parquet file: {e}") from None


def _read_image_file(image: Path, listed_in: Path) -> bytes:
    if not image.is_file():
        raise OfficialDataError(f"{image}: missing (listed in {listed_in})")
    return image.read_bytes()


def _pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise OfficialDataError(
            "the release's splits are parquet files: install pyarrow (pip install pyarrow) to "
            "read them, or unpack them to data/<split>/metadata.jsonl + image files"
        ) from None
    return pq


def checked_image(data: bytes | None, source: str, file_name: str) -> tuple[bytes, str, tuple]:
    """(bytes to store, "jpg" | "png", (width, height)); the image fully decoded once, so a
    broken one fails here, naming its file, and never in the middle of an evaluation."""
    where = f"{source}: image {file_name!r}"
    if not data:
        raise OfficialDataError(f"{where} has no bytes")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            fmt, size = image.format, image.size
            if fmt in _FORMATS:
                return data, _FORMATS[fmt], size
            buf = io.BytesIO()
            image.convert("RGB").save(buf, format="PNG")
            return buf.getvalue(), "png", size
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise OfficialDataError(f"{where} cannot be decoded: {type(e).__name__}: {e}") from None


# ----------------------------------------------------------------------------- the mapping


@dataclass
class Release:
    """The release's metadata, checked, and the identities of its splits."""

    root: Path
    identities: dict[str, dict[str, Any]]
    captions: dict[str, dict[str, Any]]
    generic: dict[str, str]
    fragile: set[str]
    forget_ids: set[str]
    holdout_association_ids: set[str]
    layout: str
    seen: set[str] = field(default_factory=set)  # file names met by row_meta

    @classmethod
    def open(cls, root: str | os.PathLike) -> Release:
        root = Path(root)
        if not root.is_dir():
            raise OfficialDataError(f"{root}: not a folder (give the release's root folder)")
        identities = _read_json(root / IDENTITIES_FILE, dict)
        for iid, ident in identities.items():
            if not isinstance(ident, dict) or not isinstance(ident.get("name"), str):
                raise OfficialDataError(
                    f"{root / IDENTITIES_FILE}: identity {iid!r} has no 'name' string"
                )
        captions = _read_json(root / CAPTIONS_FILE, dict)
        for name, meta in captions.items():
            if not isinstance(meta, dict) or not isinstance(meta.get("data_field"), str):
                raise OfficialDataError(
                    f"{root / CAPTIONS_FILE}: entry {name!r} has no 'data_field' string"
                )
        generic = _read_json(root / GENERIC_FILE, dict)
        fragile = _read_json(root / FRAGILE_FILE, list)
        layouts = {split: split_sources(root, split)[0] for split in RELEASED_SPLITS}
        release = cls(
            root,
            identities,
            captions,
            generic,
            {str(f) for f in fragile},
            set(),
            set(),
            "+".join(sorted(set(layouts.values()))),
        )
        for split, ids in (
            ("forget", release.forget_ids),
            ("holdout_association", release.holdout_association_ids),
        ):
            for row in iter_rows(root, split, with_images=False):
                ids.add(release.persona(row))
        return release

    def persona(self, row: Row) -> str:
        """The row's identity, which must be a persona of identities_metadata.json."""
        iid = row.identity_id
        if iid is None or iid not in self.identities:
            raise OfficialDataError(
                f"{row.source}: row {row.file_name!r} references persona {iid!r}, which is not "
                f"in {self.root / IDENTITIES_FILE} ({len(self.identities)} personas)"
            )
        return iid

    def target(self, released: str, row: Row) -> str | None:
        """Our primitive split of a released row (fragile copies aside); None: unused."""
        if released == "forget":
            held = self.persona(row) in self.holdout_association_ids
            return "forget_association" if held else "forget_identity"
        if released in ("holdout_association", "holdout_identity"):
            self.persona(row)
            return released
        if row.identity_id is None:
            return "retain_disjoint"
        if self.persona(row) in self.forget_ids:
            return "retain_joint"
        return None

    def row_meta(self, row: Row, split: str, stats: Counter) -> dict[str, Any]:
        """The per-sample metadata of a row in our split `split` (as our datasets carry it):
        persona, name, attribute, value and generic caption of a sensitive row; the
        persona of a retain_joint row; the fragile flag of a retain_disjoint row."""
        if row.file_name in self.seen:
            raise OfficialDataError(
                f"{row.source}: file_name {row.file_name!r} appears twice in the release; "
                "every row's file_name must be unique"
            )
        self.seen.add(row.file_name)
        if split == "retain_joint":
            return {"persona": self.persona(row), "file_name": row.file_name, "split": split}
        if split == "retain_disjoint":
            return {"persona": None, "fragile": row.file_name in self.fragile,
                    "file_name": row.file_name, "split": split}  # fmt: skip
        return self._sensitive_meta(row, split, stats)

    def _sensitive_meta(self, row: Row, split: str, stats: Counter) -> dict[str, Any]:
        iid = self.persona(row)
        meta = self.captions.get(row.file_name)
        if meta is None:
            raise OfficialDataError(
                f"{row.source}: sensitive row {row.file_name!r} has no entry in "
                f"{self.root / CAPTIONS_FILE} (its attribute, data_field, is unknown)"
            )
        field = meta["data_field"]
        ident = self.identities[iid]
        value = meta.get("value", ident.get(field))
        if value is None:
            raise OfficialDataError(
                f"{self.root / IDENTITIES_FILE}: persona {iid!r} has no field {field!r}, the "
                f"data_field of {row.file_name!r} in {CAPTIONS_FILE}"
            )
        if isinstance(value, list):  # e.g. several emails: the one this caption states
            stated = [v for v in value if str(v) in row.text]
            value = stated[0] if stated else value[0]
        value = str(value)
        if value not in row.text:
            stats["value_not_in_caption"] += 1
        if meta.get("caption") not in (None, row.text):
            stats["text_differs_from_captions_metadata"] += 1
        generic = self.generic.get(row.file_name)
        if generic is None:
            stats["no_generic_caption"] += 1
        return {
            "persona": iid,
            "name": ident["name"],
            "attribute": field,
            "value": value,
            "generic": generic,
            "file_name": row.file_name,
            "split": split,
        }
