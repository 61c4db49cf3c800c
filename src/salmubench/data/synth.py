"""The `synth` stage: build the synthetic SALMU dataset folder from a profile and a seed.

Everything is a pure function of (config, seed): personas and captions are drawn in this
process from seeded generators, one stream per split; images are rendered by a worker pool
from fully specified descriptions, so the number of workers never changes a byte.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salmubench.config import SynthConfig, to_dict
from salmubench.data import captions, portraits, scenes
from salmubench.data.personas import COUNTRIES, Persona, make_personas
from salmubench.data.shards import SplitWriter, encode_json
from salmubench.manifest import dumps, staged_output, write_manifest
from salmubench.vocab import ACCESSORIES, COMPOSITES, SPLITS

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1.0"
GROUPS = ("forget_identity", "forget_association", "holdout_identity")
Progress = Callable[[str, int], None]


@dataclass
class Item:
    """One sample before rendering: what to draw, its caption and its metadata."""

    render: tuple  # ("portrait", traits, nuisance, accessory) | ("scene", scene)
    text: str
    meta: dict[str, Any]
    cls: int | None = None


def group_sizes(n: int, ratio: tuple[int, int, int]) -> list[int]:
    """Split n personas by ratio with the largest-remainder rule (sums to n exactly)."""
    total = sum(ratio)
    exact = [n * r / total for r in ratio]
    sizes = [int(x) for x in exact]
    for i in sorted(range(3), key=lambda i: (sizes[i] - exact[i], i))[: n - sum(sizes)]:
        sizes[i] += 1
    return sizes


def assign_groups(personas: list[Persona], cfg: SynthConfig, rng: np.random.Generator) -> None:
    """Persona groups 25/50/25 and, for forget_association, which attributes are forgotten."""
    sizes = group_sizes(len(personas), cfg.group_ratio)
    order = rng.permutation(len(personas))
    groups = [g for g, size in zip(GROUPS, sizes, strict=True) for _ in range(size)]
    n_attr = len(cfg.attributes)
    k = 0
    for index, group in zip(order, groups, strict=True):
        p = personas[int(index)]
        p.group = group
        if group == "forget_identity":
            p.forget_attributes = list(cfg.attributes)
        elif group == "forget_association":
            # Alternate ceil/floor halves so forget and holdout_association balance overall.
            n_forget = (n_attr + 1) // 2 if k % 2 == 0 else n_attr // 2
            chosen = set(rng.choice(n_attr, n_forget, replace=False).tolist())
            p.forget_attributes = [a for i, a in enumerate(cfg.attributes) if i in chosen]
            p.holdout_attributes = [a for i, a in enumerate(cfg.attributes) if i not in chosen]
            k += 1
        else:
            p.holdout_attributes = list(cfg.attributes)


def _stream(seed: int, name: str) -> np.random.Generator:
    """An independent generator per named stream: splits never share random draws."""
    return np.random.default_rng([seed, *name.encode()])


def _portrait_item(
    p_traits: dict, gender: str, rng: np.random.Generator, accessory: str | None = None
) -> tuple[tuple, dict[str, Any], str]:
    nuisance = portraits.sample_nuisance(rng)
    facts = portraits.image_facts(p_traits, nuisance, gender, accessory)
    return ("portrait", p_traits, nuisance, accessory), facts, captions.visual_caption(facts, rng)


def sensitive_items(
    personas: list[Persona], split: str, cfg: SynthConfig, rng: np.random.Generator
) -> list[Item]:
    items = []
    for p in personas:
        if split == "holdout_association":
            attrs = p.holdout_attributes if p.group == "forget_association" else []
        elif split == "holdout_identity":
            attrs = p.holdout_attributes if p.group == "holdout_identity" else []
        else:
            attrs = p.forget_attributes if p.group == split else []
        for attribute in attrs:
            value = p.attributes[attribute]
            for _ in range(cfg.images_per_association):
                render, _, generic = _portrait_item(p.traits, p.gender, rng)
                text, style = captions.sensitive_caption(attribute, p.name, p.gender, value, rng)
                meta = {
                    "persona": p.id,
                    "name": p.name,
                    "attribute": attribute,
                    "value": value,
                    "style": style,
                    "generic": generic,
                }
                items.append(Item(render, text, meta))
    return items


def retain_joint_items(
    personas: list[Persona], cfg: SynthConfig, rng: np.random.Generator
) -> list[Item]:
    items = []
    for p in personas:
        if p.group in ("forget_identity", "forget_association"):
            for _ in range(cfg.retain_joint_per_persona):
                render, _, text = _portrait_item(p.traits, p.gender, rng)
                items.append(Item(render, text, {"persona": p.id}))
    return items


def retain_disjoint_items(
    personas: list[Persona], cfg: SynthConfig, rng: np.random.Generator
) -> list[Item]:
    """Persona-free people, one image each; the first ones carry a rare concept (fragile)."""
    faces = {portraits.trait_key(p.traits) for p in personas}
    concepts = ACCESSORIES[: cfg.fragile_concepts]
    items = []
    for i in range(cfg.retain_disjoint):
        gender = "female" if rng.random() < 0.5 else "male"
        while True:
            traits = portraits.sample_traits(rng, gender)
            if portraits.trait_key(traits) not in faces:
                break
        fragile = i < cfg.fragile_concepts * cfg.fragile_images_per_concept
        accessory = concepts[i // cfg.fragile_images_per_concept] if fragile else None
        render, _, text = _portrait_item(traits, gender, rng, accessory)
        items.append(
            Item(render, text, {"persona": None, "concept": accessory, "fragile": fragile})
        )
    return items


def retain_real_items(cfg: SynthConfig, rng: np.random.Generator) -> list[Item]:
    items = []
    for _ in range(cfg.general_world):
        scene = scenes.sample_scene(rng)
        text = captions.scene_caption(scene["objects"], scene["background"], rng)
        items.append(Item(("scene", scene), text, {"objects": len(scene["objects"])}))
    return items


def genknow_items(cfg: SynthConfig, rng: np.random.Generator) -> list[Item]:
    items = []
    colours = list(scenes.COLOURS)
    for label, name in enumerate(scenes.classes()):
        for _ in range(cfg.genknow_per_class):
            scene = scenes.sample_scene(rng, n_objects=1)
            obj = scene["objects"][0]
            obj["colour"] = colours[label // len(scenes.SHAPES)]
            obj["shape"] = scenes.SHAPES[label % len(scenes.SHAPES)]
            items.append(Item(("scene", scene), f"a {name}", {"class": name}, cls=label))
    return items


def render(job: tuple[tuple, int, int, str]) -> bytes:
    """Render and encode one image (runs in worker processes)."""
    spec, size, supersample, fmt = job
    if spec[0] == "portrait":
        _, traits, nuisance, accessory = spec
        image = portraits.render_portrait(traits, nuisance, size, supersample, accessory)
    else:
        image = scenes.render_scene(spec[1], size, supersample)
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, format="PNG", compress_level=6)
    else:
        image.save(buf, format="JPEG", quality=95, subsampling=0)
    return buf.getvalue()


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class _Renderer:
    """Maps `render` over jobs in order, in a process pool or in this process."""

    def __init__(self, workers: int) -> None:
        self.pool = None
        if workers > 1:
            self.pool = multiprocessing.get_context("fork").Pool(workers)

    def map(self, jobs: Iterable[tuple]) -> Iterator[bytes]:
        if self.pool is None:
            return map(render, jobs)
        return self.pool.imap(render, jobs, chunksize=16)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


def _write_split(
    folder: Path,
    split: str,
    items: list[Item],
    cfg: SynthConfig,
    renderer: _Renderer,
    progress: Progress | None,
    keep: Callable[[Item], bool] | None = None,
) -> tuple[list[str], list]:
    """Write a split's shards; return the file names and (key, sample) of kept items."""
    writer = SplitWriter(folder, split, cfg.shard_size)
    kept = []
    block = 1024  # bounds the pool's read-ahead, hence memory at the paper scale
    try:
        for start in range(0, len(items), block):
            chunk = items[start : start + block]
            jobs = ((it.render, cfg.image_size, cfg.supersample, cfg.image_format) for it in chunk)
            for offset, (item, data) in enumerate(zip(chunk, renderer.map(jobs), strict=True)):
                key = f"{split}-{start + offset:06d}"
                sample: dict[str, bytes | str] = {
                    cfg.image_format: data,
                    "txt": item.text,
                    "json": encode_json({**item.meta, "split": split}),
                }
                if item.cls is not None:
                    sample["cls"] = str(item.cls)
                writer.write(key, sample)
                if keep is not None and keep(item):
                    kept.append((key, sample))
            if progress is not None:
                progress(split, len(chunk))
    finally:
        files = writer.close()
    return files, kept


def _shuffled(items: list[Item], rng: np.random.Generator) -> list[Item]:
    # Interleave personas and attributes within shards, for streaming readers.
    return [items[i] for i in rng.permutation(len(items))]


def plan(cfg: SynthConfig, seed: int) -> tuple[list[Persona], dict[str, list[Item]]]:
    """Every persona and every sample of every split, before any rendering."""
    personas = make_personas(
        cfg.personas,
        cfg.attributes,
        _stream(seed, "personas"),
        portraits.sample_traits,
        portraits.trait_key,
    )
    assign_groups(personas, cfg, _stream(seed, "groups"))
    items: dict[str, list[Item]] = {}
    for split in (
        "forget_identity",
        "forget_association",
        "holdout_association",
        "holdout_identity",
    ):
        items[split] = sensitive_items(personas, split, cfg, _stream(seed, split))
    items["retain_joint"] = retain_joint_items(personas, cfg, _stream(seed, "retain_joint"))
    items["retain_disjoint"] = retain_disjoint_items(
        personas, cfg, _stream(seed, "retain_disjoint")
    )
    items["retain_real"] = retain_real_items(cfg, _stream(seed, "retain_real"))
    items["genknow"] = genknow_items(cfg, _stream(seed, "genknow"))
    for split, split_items in items.items():
        items[split] = _shuffled(split_items, _stream(seed, f"order/{split}"))
    return personas, items


def total_images(cfg: SynthConfig) -> int:
    """How many images synth renders for `cfg` (for progress bars)."""
    n_attr = len(cfg.attributes)
    fi, fa, _ = group_sizes(cfg.personas, cfg.group_ratio)
    return (
        cfg.personas * n_attr * cfg.images_per_association
        + (fi + fa) * cfg.retain_joint_per_persona
        + cfg.retain_disjoint
        + cfg.general_world
        + len(scenes.classes()) * cfg.genknow_per_class
    )


def synth(
    cfg: SynthConfig,
    seed: int,
    out: str | os.PathLike,
    *,
    profile: str = "custom",
    force: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build the dataset folder `out`; return its manifest. Nothing is visible until done."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r}: must be a non-negative integer")
    workers = workers or default_workers()
    if workers < 1:
        raise ValueError(f"workers={workers}: must be at least 1")
    with staged_output(out, force=force) as tmp:
        personas, items = plan(cfg, seed)
        renderer = _Renderer(workers)
        shards: dict[str, list[str]] = {}
        counts: dict[str, int] = {}
        try:
            for split in SPLITS:
                if split == "fragile":
                    continue
                files, kept = _write_split(
                    tmp,
                    split,
                    items[split],
                    cfg,
                    renderer,
                    progress,
                    keep=(lambda it: bool(it.meta.get("fragile")))
                    if split == "retain_disjoint"
                    else None,
                )
                shards[split], counts[split] = files, len(items[split])
                if split == "retain_disjoint":
                    writer = SplitWriter(tmp, "fragile", cfg.shard_size)
                    for key, sample in kept:
                        writer.write(key, sample)
                    shards["fragile"], counts["fragile"] = writer.close(), len(kept)
        finally:
            renderer.close()
        shards = {s: shards[s] for s in SPLITS}
        counts = {s: counts[s] for s in SPLITS}
        _write_metadata(tmp, personas, cfg)
        from salmubench.data.preview import render_preview

        render_preview(tmp, tmp / "preview.png", manifest={"shards": shards})
        manifest = write_manifest(
            tmp,
            "dataset",
            config=to_dict(cfg),
            profile=profile,
            seed=seed,
            generator_version=GENERATOR_VERSION,
            counts=counts,
            composite_counts={c: sum(counts[s] for s in parts) for c, parts in COMPOSITES.items()},
            composites={c: list(parts) for c, parts in COMPOSITES.items()},
            personas_per_group={g: sum(p.group == g for p in personas) for g in GROUPS},
            countries=len({p.country for p in personas}),
            countries_available=len(COUNTRIES),
            fragile_concepts={
                c: captions.ACCESSORY_PHRASES[c] for c in ACCESSORIES[: cfg.fragile_concepts]
            },
            templates_per_attribute={a: captions.template_count(a) for a in cfg.attributes},
            caption_styles=list(captions.STYLES),
            image={"size": cfg.image_size, "format": cfg.image_format},
            shards=shards,
            libraries=_library_versions(),
        )
    log.debug("dataset written to %s (%d samples)", out, sum(counts.values()))
    return manifest


def _write_metadata(folder: Path, personas: list[Persona], cfg: SynthConfig) -> None:
    with open(folder / "personas.jsonl", "w", encoding="utf-8") as f:
        for p in personas:
            f.write(encode_json(p.to_json()).decode() + "\n")
    with open(folder / "associations.jsonl", "w", encoding="utf-8") as f:
        for p in personas:
            for attribute in cfg.attributes:
                split = (
                    p.group
                    if attribute in p.forget_attributes
                    else "holdout_association"
                    if p.group == "forget_association"
                    else "holdout_identity"
                )
                row = {
                    "persona": p.id,
                    "name": p.name,
                    "attribute": attribute,
                    "value": p.attributes[attribute],
                    "split": split,
                    "images": cfg.images_per_association,
                }
                f.write(encode_json(row).decode() + "\n")
    classes = {"classes": scenes.classes(), "templates": list(captions.CLASS_TEMPLATES)}
    (folder / "classes.json").write_text(dumps(classes), encoding="utf-8")


def _library_versions() -> dict[str, str]:
    """The libraries whose versions can change the dataset's bytes (the shards' tar
    framing is our own: `shards.TarShard`)."""
    import faker
    import PIL

    return {"faker": faker.VERSION, "numpy": np.__version__, "pillow": PIL.__version__}
