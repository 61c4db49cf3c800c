"""`salmubench import --official`: the released SALMUBench benchmark (read and checked by
`data/release.py`) as one of our dataset folders, offline.

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
sees the released 512-px pixels. The release is checked before anything is written, and
every image is decoded once on the way: a bad one fails the import, never an evaluation.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salmubench.data.release import (
    DERIVATION,
    METADATA_FILES,
    RELEASED_SPLITS,
    OfficialDataError,
    Release,
    checked_image,
    iter_rows,
)
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

__all__ = ["GenknowTask", "OfficialDataError", "describe_import", "import_official"]

IMPORTER_VERSION = "1.0"
Progress = Callable[[str, int], None]
# What the manifest reports of rows the import met (`Release.row_meta` counts them).
ROW_STATS = ("unused_retain_synth", "value_not_in_caption",
             "text_differs_from_captions_metadata", "no_generic_caption")  # fmt: skip


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
        sizes: Counter = Counter()
        released: dict[str, int] = {}
        associations: dict[tuple[str, str, str], dict[str, Any]] = {}
        try:
            for split in RELEASED_SPLITS:
                released[split] = 0
                for row in iter_rows(release.root, split):
                    released[split] += 1
                    target = release.target(split, row)
                    if target is None:
                        stats["unused_retain_synth"] += 1
                        continue
                    meta = release.row_meta(row, target, stats)
                    data, ext, size = checked_image(row.image(), row.source, row.file_name)
                    sizes[(size, ext)] += 1
                    if target in SENSITIVE_SPLITS:
                        _count_association(associations, meta)
                    key = f"{target}-{counts[target]:06d}"
                    sample = {ext: data, "txt": row.text, "json": encode_json(meta)}
                    copies = ["fragile"] if meta.get("fragile") else []
                    for split_name in (target, *copies):
                        json_meta = encode_json({**meta, "split": split_name})
                        writers[split_name].write(key, {**sample, "json": json_meta})
                        counts[split_name] += 1
                    if progress is not None:
                        progress(split, 1)
        finally:
            shards = {s: w.close() for s, w in writers.items()}
        _check_counts(release, counts, shards)
        if genknow.per_class:
            shards["genknow"], counts["genknow"] = _render_genknow(tmp, genknow, shard_size)
        personas = _write_metadata(tmp, release, associations, genknow)
        ordered = [s for s in SPLITS if s in shards]
        shards = {s: shards[s] for s in ordered}
        count_of = {s: counts[s] for s in ordered}
        dims: Counter = Counter()
        for (size, _), n in sizes.items():
            dims[size] += n
        formats = sorted({ext for _, ext in sizes})
        # One square size (the release's 512 x 512): the size our readers compare with the
        # model's; otherwise None, and every image is resized.
        square = [w for w, h in dims if w == h]
        image_size = square[0] if len(dims) == 1 and square else None
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
                "format": "+".join(formats),
                "sizes": {f"{w}x{h}": n for (w, h), n in sorted(dims.items())},
            },
            shards=shards,
            official={
                "source": str(Path(official).resolve()),
                "layout": release.layout,
                "metadata_sha256": {name: _sha256(release.root / name) for name in METADATA_FILES},
                "released_counts": released,
                "derivation": {s: DERIVATION[s] for s in SPLITS},
                **{k: stats[k] for k in ROW_STATS},
            },
        )
    return manifest


def _count_association(
    associations: dict[tuple[str, str, str], dict[str, Any]], meta: dict[str, Any]
) -> None:
    key = (meta["persona"], meta["attribute"], meta["split"])
    row = {k: meta[k] for k in ("persona", "name", "attribute", "value", "split")}
    associations.setdefault(key, {**row, "images": 0})["images"] += 1


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


def describe_import(manifest: dict[str, Any], out: str | os.PathLike, seconds: float) -> str:
    """The summary `salmubench import` prints."""
    counts, official = manifest["counts"], manifest["official"]
    width = max(map(len, counts))
    lines = [f"\nImported {official['source']} -> {out} in {seconds:.1f} s"]
    lines += [f"  {split:<{width}}  {n:>7}" for split, n in counts.items()]
    lines.append(f"  released: {official['released_counts']}; retain_synth rows that no "
                 f"metric reads: {official['unused_retain_synth']}")  # fmt: skip
    lines.append(f"  personas: {manifest['personas_per_group']}; digest {manifest['digest'][:16]}")
    return "\n".join(lines)
