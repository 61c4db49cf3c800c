"""Embeddings computed once per (model, split) and once per distinct text.

`DatasetEmbeddings` is what the metrics read: each split is decoded, tokenised and embedded
in batches the first time a metric asks for it, then served from memory; prompt texts are
embedded once each. Of retain_joint and retain_disjoint only the evaluation part is served
(`salmubench.data.evaluated`): the other part is what unlearning may train on. Timings are
kept so the evaluator can report how much the metrics add over embedding alone. Decoded
images come from the on-disk cache of decoded splits (`salmubench.data.decoded`, keyed by
the dataset digest, split and image geometry): a world decodes each split once, whatever
the number of evaluations; the images, and so the embeddings, are the same bit for bit.

Images go through the model's own preprocessing (`salmubench.models.preprocessing`: ours
for our models, OpenCLIP's resize + centre crop for external checkpoints), on the device
asked for; on CUDA the encoders run under autocast (fp16). GenKnow is the dataset's own
task (our synthetic one), or ImageNet-1k zero-shot from an ImageNet-style folder given by
the user, with the class names and templates that OpenCLIP ships.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from salmubench.config import ConfigError
from salmubench.data.decoded import DecodedCache, geometry_key
from salmubench.data.evaluated import PARTITIONED, is_evaluated
from salmubench.data.shards import decode, image_bytes, iter_split
from salmubench.eval.metrics import EvalSettings, Split
from salmubench.models import LoadedModel, Preprocess, image_normalisation, preprocessing
from salmubench.models import tokenizer as get_tokenizer
from salmubench.s3 import location
from salmubench.vocab import CLASSES_FILE, resolve

IMAGENET_TEMPLATES = ("openai", "simple")  # OpenCLIP's 80 OpenAI templates, or its 7 simple ones
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
IMAGENET_CLASSES = 1000


class GenknowError(ConfigError):
    """The GenKnow source (an ImageNet-style folder, or the dataset's task) is unusable."""


def imagenet_task(templates: str = "openai") -> tuple[list[str], list[str]]:
    """ImageNet-1k class names and prompt templates ("{}" for the name), as OpenCLIP ships
    them (`open_clip.zero_shot_metadata`)."""
    from open_clip import zero_shot_metadata as zsm

    if templates not in IMAGENET_TEMPLATES:
        raise GenknowError(
            f"ImageNet templates {templates!r}; valid: {', '.join(IMAGENET_TEMPLATES)}"
        )
    openai = templates == "openai"
    source = zsm.OPENAI_IMAGENET_TEMPLATES if openai else zsm.SIMPLE_IMAGENET_TEMPLATES
    return list(zsm.IMAGENET_CLASSNAMES), [t("{}") for t in source]


def imagenet_folder(root: str | Path) -> list[tuple[Path, int]]:
    """(image file, class index) of an ImageNet-style folder, in sorted order.

    Class subfolders: all 1,000 of ImageNet-1k (named by WordNet id, e.g. n01440764: their
    sorted order is ImageNet's class order, the order of OpenCLIP's class names), or a
    subset named by class index (0 to 999). Classification is always among all 1,000 names.
    """
    root = Path(root)
    if not root.is_dir():
        raise GenknowError(f"--genknow-imagenet {root}: not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if len(folders) == IMAGENET_CLASSES:
        labels = dict(zip(folders, range(IMAGENET_CLASSES), strict=True))
    else:
        labels = {}
        for folder in folders:
            if not folder.name.isdigit() or not 0 <= int(folder.name) < IMAGENET_CLASSES:
                raise GenknowError(
                    f"{root}: class folder {folder.name!r}: an ImageNet-style folder holds "
                    f"either all {IMAGENET_CLASSES} class folders (WordNet ids, e.g. n01440764) "
                    f"or folders named by class index 0-{IMAGENET_CLASSES - 1}; it has "
                    f"{len(folders)} folders"
                )
            labels[folder] = int(folder.name)
    items = [
        (f, labels[folder])
        for folder in folders
        for f in sorted(folder.iterdir())
        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not items:
        raise GenknowError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in class folders")
    return items


class DatasetEmbeddings:
    """Lazily embedded splits of one dataset under one model (the metrics' EvalData)."""

    def __init__(
        self,
        loaded: LoadedModel,
        data: str | Path,
        manifest: dict[str, Any],
        settings: EvalSettings,
        batch_size: int = 512,
        device: torch.device | None = None,
        *,
        preprocess: Preprocess | None = None,
        genknow_imagenet: str | Path | None = None,
        genknow_templates: str = "openai",
        decode_workers: int | None = None,
        cache: DecodedCache | str | None = "env",
    ) -> None:
        self.data, self.manifest, self.settings = location(data), manifest, settings
        self.device = device or torch.device("cpu")
        self.model = loaded.model.to(self.device).eval()
        self.tokenize = get_tokenizer(loaded.arch)
        self.preprocess = preprocess or preprocessing(loaded)
        self.size = self.preprocess.size
        self._geometry = self.preprocess.geometry() if self.preprocess.kind == "openclip" else []
        self.mean, self.std = (t.to(self.device) for t in image_normalisation(self.model))
        self.batch_size = batch_size
        # fp16 autocast on CUDA (as the official evaluator); CPU stays fp32, bit for bit.
        self.precision = "fp16-autocast" if self.device.type == "cuda" else "fp32"
        self.genknow_imagenet = Path(genknow_imagenet) if genknow_imagenet is not None else None
        if self.genknow_imagenet is not None:
            self._genknow_items = imagenet_folder(self.genknow_imagenet)  # fails before work
            self.classes, self.class_templates = imagenet_task(genknow_templates)
            self.genknow_source = {
                "kind": "imagenet",
                "folder": str(self.genknow_imagenet),
                "images": len(self._genknow_items),
                "classes": len(self.classes),
                "classes_present": len({c for _, c in self._genknow_items}),
                "templates": genknow_templates,
                "prompts_per_class": len(self.class_templates),
            }
        else:
            classes = self._dataset_classes()
            self.classes: list[str] = classes["classes"]
            self.class_templates: list[str] = classes["templates"]
            self.genknow_source = {
                "kind": "dataset",
                "classes": len(self.classes),
                "prompts_per_class": len(self.class_templates),
            }
        self._splits: dict[str, Split] = {}
        self._texts: dict[str, torch.Tensor] = {}
        self.seconds = {"decode": 0.0, "embed_images": 0.0, "embed_texts": 0.0}
        self.counts = {"images": 0, "texts": 0}
        # Decoding is the bottleneck of a GPU, never of a CPU that also runs the model.
        auto_workers = 1 if self.device.type == "cpu" else min(8, os.cpu_count() or 1)
        self.decode_workers = decode_workers or auto_workers
        # Decoded splits from the on-disk cache ($SALMUBENCH_CACHE): "env" resolves it here.
        self.cache = DecodedCache.from_env() if cache == "env" else cache
        if self.cache is not None and not isinstance(self.cache, DecodedCache):
            raise ValueError(f"cache={cache!r}: a DecodedCache, None (off) or 'env'")
        p = self.preprocess
        self._geometry_key = (
            geometry_key("squash", self.size)
            if p.kind == "squash"
            else geometry_key(p.kind, self.size, p.resize_mode, p.interpolation)
        )

    def _dataset_classes(self) -> dict[str, Any]:
        path = self.data / CLASSES_FILE  # a local path or an s3:// Url (no is_file)
        if "genknow" in self.manifest.get("shards", {}):
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                pass
        raise GenknowError(
            f"{self.data} has no GenKnow task of its own (no genknow split or "
            f"{CLASSES_FILE}: an imported release, for one): give an ImageNet-style "
            "folder (--genknow-imagenet DIR), or import with --genknow-per-class N for "
            "our synthetic task"
        )

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def describe(self) -> dict[str, Any]:
        """What the eval records: preprocessing, device, precision, batch, GenKnow source."""
        return {
            "preprocess": self.preprocess.describe(),
            "device": str(self.device),
            "precision": self.precision,
            "batch_size": self.batch_size,
            "decode_workers": self.decode_workers,
            "genknow": self.genknow_source,
        }

    def cache_stats(self) -> dict[str, Any]:
        """Primitive splits served from the decoded cache (hits) or decoded (misses)."""
        if self.cache is None:
            return {"decoded_cache": "off"}
        return {"decoded_cache_hits": self.cache.hits, "decoded_cache_misses": self.cache.misses}

    def decode(self, data: bytes) -> np.ndarray:
        """Image bytes as the model's uint8 [3, S, S] input, by its preprocessing."""
        if self.preprocess.kind == "squash":
            size = None if self.manifest.get("image", {}).get("size") == self.size else self.size
            return decode(data, size)
        image: Any = Image.open(io.BytesIO(data))
        for step in self._geometry:
            image = step(image)
        return np.asarray(image.convert("RGB")).transpose(2, 0, 1)

    @torch.inference_mode()
    def _images(self, arrays: list[np.ndarray] | np.ndarray) -> torch.Tensor:
        out = []
        for i in range(0, len(arrays), self.batch_size):
            chunk = arrays[i : i + self.batch_size]
            chunk = np.array(chunk) if isinstance(chunk, np.ndarray) else np.stack(chunk)
            x = torch.from_numpy(chunk).to(self.device)
            x = (x.float() / 255.0 - self.mean) / self.std
            with self._autocast():
                emb = self.model.encode_image(x)
            out.append(F.normalize(emb.float(), dim=-1).cpu())
        self.counts["images"] += len(arrays)
        return torch.cat(out) if out else torch.zeros(0, 1)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised embeddings of `texts`, each distinct text embedded once."""
        new = [t for t in dict.fromkeys(texts) if t not in self._texts]
        if new:
            start = time.perf_counter()
            with torch.inference_mode():
                for i in range(0, len(new), self.batch_size):
                    chunk = new[i : i + self.batch_size]
                    tokens = self.tokenize(chunk).to(self.device)
                    with self._autocast():
                        emb = self.model.encode_text(tokens)
                    emb = F.normalize(emb.float(), dim=-1).cpu()
                    self._texts.update(zip(chunk, emb, strict=True))
            self.seconds["embed_texts"] += time.perf_counter() - start
            self.counts["texts"] += len(new)
        if not texts:
            raise ValueError("encode_text got no texts")
        return torch.stack([self._texts[t] for t in texts])

    def _samples(self, name: str) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """(image bytes, metadata row) of a primitive split, in order."""
        if name == "genknow" and self.genknow_imagenet is not None:
            for path, label in self._genknow_items:
                key = f"{path.parent.name}/{path.name}"
                cls = self.classes[label]
                row = {"cls": label, "class": cls, "key": key, "txt": f"a photo of a {cls}."}
                yield path.read_bytes(), row
            return
        partitioned = name in PARTITIONED
        for sample in iter_split(self.data, name, self.manifest):
            if partitioned and not is_evaluated(name, sample["__key__"], sample["json"]):
                continue
            row = {**sample["json"], "key": sample["__key__"], "txt": sample["txt"]}
            if "cls" in sample:
                row["cls"] = sample["cls"]
            yield image_bytes(sample), row

    def _decode_batch(self, name: str, batch: list[tuple[bytes, dict[str, Any]]]) -> list:
        """The batch's images as model inputs, in order; in decode threads when there are
        several (Pillow decodes and resizes outside the GIL: a GPU is not left waiting on
        one core)."""
        if self.decode_workers == 1 or len(batch) == 1:
            return [self._decoded(name, data, row) for data, row in batch]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(self.decode_workers, thread_name_prefix="decode") as pool:
            return list(pool.map(lambda sample: self._decoded(name, *sample), batch))

    def _decoded(self, name: str, data: bytes, row: dict[str, Any]) -> np.ndarray:
        try:
            return self.decode(data)
        except (OSError, ValueError) as e:
            key = row["key"] if "key" in row else row["__key__"]
            where = self.genknow_imagenet / key if "/" in key else key
            raise ValueError(
                f"split {name!r}: image {where} cannot be decoded: {type(e).__name__}: {e}"
            ) from None

    def split(self, name: str) -> Split:
        """Image embeddings, own-caption embeddings and metadata of a split (cached).

        A composite (e.g. forget) is the concatenation of its primitive splits, so every
        primitive split is embedded exactly once however many metrics read it. A partitioned
        split (retain_joint, retain_disjoint) is its evaluation part only, in shard order.
        Images are decoded and embedded one batch at a time (memory stays one batch deep);
        with the decoded cache on (the default, `salmubench.data.decoded`), a split decoded
        by an earlier stage or evaluation of the same dataset is read from its memory map.
        """
        parts = resolve(name)
        if len(parts) > 1:
            pieces = [self.split(p) for p in parts]
            return Split(
                image=torch.cat([p.image for p in pieces]),
                text=torch.cat([p.text for p in pieces]),
                meta=[m for p in pieces for m in p.meta],
            )
        if name not in self._splits and self.cache is not None and not self._imagenet(name):
            self._splits[name] = self._cached_split(name)
        if name not in self._splits:
            meta: list[dict[str, Any]] = []
            images: list[torch.Tensor] = []
            samples = self._samples(name)
            while True:
                start = time.perf_counter()
                batch = list(itertools.islice(samples, self.batch_size))
                if not batch:
                    break
                arrays = self._decode_batch(name, batch)
                meta += [row for _, row in batch]
                self.seconds["decode"] += time.perf_counter() - start
                start = time.perf_counter()
                images.append(self._images(arrays))
                self.seconds["embed_images"] += time.perf_counter() - start
            if not meta:
                raise ValueError(f"split {name!r} of {self.data} is empty")
            text = self.encode_text([m["txt"] for m in meta])
            self._splits[name] = Split(image=torch.cat(images), text=text, meta=meta)
        return self._splits[name]

    @property
    def embedding_seconds(self) -> float:
        return self.seconds["embed_images"] + self.seconds["embed_texts"]

    def _imagenet(self, name: str) -> bool:
        return name == "genknow" and self.genknow_imagenet is not None

    def _cached_split(self, name: str) -> Split:
        """`split` through the decoded cache: the same images in the same batches as decoding
        them here (so the same embeddings, bit for bit), read from a memory map."""
        start = time.perf_counter()
        decoded = self.cache.split(  # type: ignore[union-attr]
            self.data,
            self.manifest,
            name,
            self._geometry_key,
            lambda batch: self._decode_batch(name, batch),
        )
        chosen = range(len(decoded))
        if name in PARTITIONED:
            rows = decoded.rows
            chosen = [i for i, r in enumerate(rows) if is_evaluated(name, r["__key__"], r["json"])]
        meta = []
        for i in chosen:
            r = decoded.rows[i]
            row = {**r["json"], "key": r["__key__"], "txt": r["txt"]}
            if "cls" in r:
                row["cls"] = r["cls"]
            meta.append(row)
        if not meta:
            raise ValueError(f"split {name!r} of {self.data} is empty")
        self.seconds["decode"] += time.perf_counter() - start
        images = []
        whole = isinstance(chosen, range)
        for i in range(0, len(meta), self.batch_size):
            start = time.perf_counter()
            rows = slice(i, i + self.batch_size) if whole else chosen[i : i + self.batch_size]
            batch = np.array(decoded.images[rows])  # one batch off the map, as decoded
            self.seconds["decode"] += time.perf_counter() - start
            start = time.perf_counter()
            images.append(self._images(batch))
            self.seconds["embed_images"] += time.perf_counter() - start
        text = self.encode_text([m["txt"] for m in meta])
        return Split(image=torch.cat(images), text=text, meta=meta)
