"""`salmubench import --official`: the released SALMUBench benchmark as one of our dataset
folders, offline, from files the user gives.

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
Our primitive splits are derived exactly as the official evaluator derives its own:
- forget_identity: forget rows of personas absent from holdout_association (IdZSC reads it);
  forget_association: the other forget rows;
- retain_joint: retain_synth rows whose identity is a forget persona; retain_disjoint: those
  with no identity; fragile: the retain_disjoint rows listed in fragile_set_ids.json (a copy,
  same keys, as in our own datasets). retain_synth rows of any other persona are read by no
  official metric: they are counted in the manifest (`official.unused_retain_synth`).
- genknow: not in the release (the paper's is ImageNet-1k: `eval --genknow-imagenet`); with
  `genknow_per_class` > 0 our synthetic task is rendered in, as `synth` does.
- retain_real: not in the release (the paper's is DataComp); unlearning retains on
  retain_joint + retain_disjoint.

Images are stored as released (no re-encoding of JPEG or PNG; other formats become PNG), so
the model's own preprocessing (OpenCLIP's resize + centre crop for the official ViT-B/16)
sees the released 512-px pixels. Bad input fails before anything is written, naming the
file: a missing metadata or split file, a row whose persona is not in
identities_metadata.json, a sensitive row without caption metadata, an image that cannot be
decoded.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from salmubench.config import ConfigError
from salmubench.data.shards import SplitWriter, encode_json
from salmubench.manifest import dumps, staged_output, write_manifest
from salmubench.vocab import (
    ASSOCIATIONS_FILE,
    CLASSES_FILE,
    COMPOSITES,
    PERSONAS_FILE,
    SENSITIVE_SPLITS,
    SPLITS,
)

log = logging.getLogger(__name__)

IMPORTER_VERSION = "1.0"
IDENTITIES_FILE = "identities_metadata.json"
CAPTIONS_FILE = "sensitive_set_captions_metadata.json"
GENERIC_FILE = "sensitive_set_generic_captions.json"
FRAGILE_FILE = "fragile_set_ids.json"
METADATA_FILES = (IDENTITIES_FILE, CAPTIONS_FILE, GENERIC_FILE, FRAGILE_FILE)
RELEASED_SPLITS = ("forget", "holdout_association", "holdout_identity", "retain_synth")
ROW_FIELDS = ("file_name", "text", "identity_id")
# What a released row becomes: (released split, our primitive splits it may feed).
DERIVED = {
    "forget": ("forget_identity", "forget_association"),
    "holdout_association": ("holdout_association",),
    "holdout_identity": ("holdout_identity",),
    "retain_synth": ("retain_joint", "retain_disjoint", "fragile"),
}
# How the derived splits relate to the release, recorded in the manifest.
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
Progress = Callable[[str, int], None]


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

    def sensitive_meta(self, row: Row, split: str, stats: Counter) -> dict[str, Any]:
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


# ------------------------------------------------------------------------------ the import


@dataclass(frozen=True)
class GenknowTask:
    """Our synthetic GenKnow task, rendered into an imported dataset (per_class 0: none)."""

    per_class: int = 0
    classes: int | None = None  # the first N of its 80 colour-shape classes (None: all)
    image_size: int = 224
    supersample: int = 2
    seed: int = 0

    def class_names(self) -> list[str]:
        from salmubench.data import scenes

        names = scenes.classes()
        if self.classes is not None and not 2 <= self.classes <= len(names):
            raise OfficialDataError(
                f"genknow classes={self.classes}: must lie in 2..{len(names)} (the synthetic "
                "task's colour-shape classes)"
            )
        return names[: self.classes]

    @property
    def genknow_per_class(self) -> int:  # what `synth.genknow_items` reads of a config
        return self.per_class


def import_official(
    official: str | os.PathLike,
    out: str | os.PathLike,
    *,
    shard_size: int = 5000,
    genknow: GenknowTask | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Convert the release at `official` into our dataset folder `out`; its manifest."""
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise OfficialDataError(f"shard_size={shard_size!r}: must be an integer >= 1")
    genknow = genknow or GenknowTask()
    if genknow.per_class < 0:
        raise OfficialDataError(f"genknow per_class={genknow.per_class}: must be >= 0")
    genknow.class_names()  # a bad class count fails before any reading
    release = Release.open(official)  # metadata and split files checked before any writing
    with staged_output(out, force=force) as tmp:
        writers = {
            s: SplitWriter(tmp, s, shard_size)
            for s in SPLITS
            if s not in ("genknow", "retain_real")
        }
        counts: Counter = Counter()
        stats: Counter = Counter()
        released: dict[str, int] = {}
        sizes: Counter = Counter()
        formats: Counter = Counter()
        associations: dict[tuple[str, str, str], dict[str, Any]] = {}
        seen: set[str] = set()
        try:
            for split in RELEASED_SPLITS:
                n = 0
                for row in iter_rows(release.root, split):
                    n += 1
                    target = release.target(split, row)
                    if target is None:
                        stats["unused_retain_synth"] += 1
                        continue
                    if row.file_name in seen:
                        raise OfficialDataError(
                            f"{row.source}: file_name {row.file_name!r} appears twice in the "
                            "release; every row's file_name must be unique"
                        )
                    seen.add(row.file_name)
                    data, ext, size = checked_image(row.image(), row.source, row.file_name)
                    sizes[size] += 1
                    formats[ext] += 1
                    if target in SENSITIVE_SPLITS:
                        meta = release.sensitive_meta(row, target, stats)
                        assoc = associations.setdefault(
                            (meta["persona"], meta["attribute"], target),
                            {
                                "persona": meta["persona"],
                                "name": meta["name"],
                                "attribute": meta["attribute"],
                                "value": meta["value"],
                                "split": target,
                                "images": 0,
                            },
                        )
                        assoc["images"] += 1
                    elif target == "retain_joint":
                        meta = {
                            "persona": release.persona(row),
                            "file_name": row.file_name,
                            "split": target,
                        }
                    else:
                        fragile = row.file_name in release.fragile
                        meta = {
                            "persona": None,
                            "fragile": fragile,
                            "file_name": row.file_name,
                            "split": target,
                        }
                    key = f"{target}-{counts[target]:06d}"
                    sample = {ext: data, "txt": row.text, "json": encode_json(meta)}
                    writers[target].write(key, sample)
                    counts[target] += 1
                    if target == "retain_disjoint" and meta["fragile"]:
                        copy = {**meta, "split": "fragile"}
                        writers["fragile"].write(key, {**sample, "json": encode_json(copy)})
                        counts["fragile"] += 1
                    if progress is not None:
                        progress(split, 1)
                released[split] = n
        finally:
            shards = {s: w.close() for s, w in writers.items()}
        _check_counts(release, counts, shards)
        if genknow.per_class:
            shards["genknow"], counts["genknow"] = _render_genknow(tmp, genknow, shard_size)
        personas = _write_metadata(tmp, release, associations, genknow)
        ordered = [s for s in SPLITS if s in shards]
        shards = {s: shards[s] for s in ordered}
        count_of = {s: counts[s] for s in ordered}
        image_size = sizes.most_common(1)[0][0][0] if len(sizes) == 1 else None
        manifest = write_manifest(
            tmp,
            "dataset",
            config={
                "genknow_classes": genknow.classes,
                "shard_size": shard_size,
                "genknow_per_class": genknow.per_class,
                "genknow_image_size": genknow.image_size,
                "genknow_seed": genknow.seed,
            },
            profile="official",
            seed=genknow.seed,
            generator_version=f"official-import-{IMPORTER_VERSION}",
            counts=count_of,
            composite_counts={
                c: sum(count_of.get(s, 0) for s in parts) for c, parts in COMPOSITES.items()
            },
            composites={c: list(parts) for c, parts in COMPOSITES.items()},
            personas_per_group=dict(
                sorted(Counter(p["group"] for p in personas).items(), key=lambda kv: str(kv[0]))
            ),
            image={
                "size": image_size,
                "format": "+".join(sorted(formats)),
                "sizes": {f"{w}x{h}": n for (w, h), n in sorted(sizes.items())},
            },
            shards=shards,
            official={
                "source": str(Path(official).resolve()),
                "layout": release.layout,
                "metadata_sha256": {name: _sha256(release.root / name) for name in METADATA_FILES},
                "released_counts": released,
                "derivation": {s: DERIVATION[s] for s in SPLITS},
                **{
                    k: stats[k]
                    for k in (
                        "unused_retain_synth",
                        "value_not_in_caption",
                        "text_differs_from_captions_metadata",
                        "no_generic_caption",
                    )
                },
            },
        )
    return manifest


def _check_counts(release: Release, counts: Counter, shards: dict[str, list[str]]) -> None:
    """Every split an evaluation reads must hold a row (an empty one is a bad release)."""
    for split in (
        "forget_identity",
        "forget_association",
        "holdout_association",
        "holdout_identity",
        "retain_joint",
        "retain_disjoint",
        "fragile",
    ):
        if not counts[split]:
            why = DERIVATION[split]
            raise OfficialDataError(
                f"{release.root}: derived split {split!r} is empty ({why}); the metrics need "
                "at least one row of each"
            )


def _render_genknow(folder: Path, task: GenknowTask, shard_size: int) -> tuple[list[str], int]:
    from salmubench.data.synth import genknow_items, render

    rng = np.random.default_rng([task.seed, *b"genknow"])
    n_classes = len(task.class_names())
    items = [
        item
        for item in genknow_items(task, rng)  # type: ignore[arg-type]  (reads genknow_per_class)
        if item.cls is not None and item.cls < n_classes
    ]
    writer = SplitWriter(folder, "genknow", shard_size)
    try:
        for i, item in enumerate(items):
            data = render((item.render, task.image_size, task.supersample, "png"))
            meta = {**item.meta, "split": "genknow"}
            writer.write(
                f"genknow-{i:06d}",
                {"png": data, "txt": item.text, "json": encode_json(meta), "cls": str(item.cls)},
            )
    finally:
        files = writer.close()
    return files, len(items)


def _write_metadata(
    folder: Path,
    release: Release,
    associations: dict[tuple[str, str, str], dict[str, Any]],
    genknow: GenknowTask,
) -> list[dict[str, Any]]:
    forget_attrs: dict[str, set[str]] = defaultdict(set)
    holdout_attrs: dict[str, set[str]] = defaultdict(set)
    in_split: dict[str, set[str]] = defaultdict(set)
    for (iid, attribute, split), _ in associations.items():
        (forget_attrs if split.startswith("forget") else holdout_attrs)[iid].add(attribute)
        in_split[iid].add(split)
    personas = []
    for iid in sorted(release.identities):
        ident = release.identities[iid]
        splits = in_split.get(iid, set())
        group = next(
            (
                g
                for g in ("forget_identity", "forget_association", "holdout_identity")
                if g in splits
            ),
            None,
        )
        personas.append(
            {
                "id": iid,
                "name": ident["name"],
                "group": group,
                "attributes": {k: v for k, v in ident.items() if k != "name"},
                "forget_attributes": sorted(forget_attrs.get(iid, ())),
                "holdout_attributes": sorted(holdout_attrs.get(iid, ())),
                "source": "official",
            }
        )
    with open(folder / PERSONAS_FILE, "w", encoding="utf-8") as f:
        for p in personas:
            f.write(encode_json(p).decode() + "\n")
    with open(folder / ASSOCIATIONS_FILE, "w", encoding="utf-8") as f:
        for key in sorted(associations):
            f.write(encode_json(associations[key]).decode() + "\n")
    if genknow.per_class:
        from salmubench.data import captions

        classes = {"classes": genknow.class_names(), "templates": list(captions.CLASS_TEMPLATES)}
        (folder / CLASSES_FILE).write_text(dumps(classes), encoding="utf-8")
    return personas


def _sha256(path: Path) -> str:
    from salmubench.hashing import sha256_file

    return sha256_file(path)
