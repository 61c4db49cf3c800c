"""Embeddings computed once per (model, split) and once per distinct text.

`DatasetEmbeddings` is what the metrics read: each split is decoded, tokenised and embedded
in batches the first time a metric asks for it, then served from memory; prompt texts are
embedded once each. Of retain_joint and retain_disjoint only the evaluation part is served
(`salmubench.data.evaluated`): the other part is what unlearning may train on. Timings are
kept so the evaluator can report how much the metrics add over embedding alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from salmubench.data.evaluated import PARTITIONED, is_evaluated
from salmubench.data.shards import decode, image_bytes, iter_split
from salmubench.eval.metrics import EvalSettings, Split
from salmubench.models import LoadedModel, image_normalisation, image_size
from salmubench.models import tokenizer as get_tokenizer
from salmubench.s3 import location
from salmubench.vocab import resolve


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
    ) -> None:
        self.data, self.manifest, self.settings = location(data), manifest, settings
        self.device = device or torch.device("cpu")
        self.model = loaded.model.to(self.device).eval()
        self.tokenize = get_tokenizer(loaded.arch)
        self.size = image_size(self.model)
        self.mean, self.std = (t.to(self.device) for t in image_normalisation(self.model))
        self.batch_size = batch_size
        classes = json.loads((self.data / "classes.json").read_text(encoding="utf-8"))
        self.classes: list[str] = classes["classes"]
        self.class_templates: list[str] = classes["templates"]
        self._splits: dict[str, Split] = {}
        self._texts: dict[str, torch.Tensor] = {}
        self.seconds = {"decode": 0.0, "embed_images": 0.0, "embed_texts": 0.0}
        self.counts = {"images": 0, "texts": 0}

    @torch.inference_mode()
    def _images(self, arrays: list[np.ndarray]) -> torch.Tensor:
        out = []
        for i in range(0, len(arrays), self.batch_size):
            x = torch.from_numpy(np.stack(arrays[i : i + self.batch_size])).to(self.device)
            x = (x.float() / 255.0 - self.mean) / self.std
            out.append(F.normalize(self.model.encode_image(x).float(), dim=-1).cpu())
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
                    emb = F.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu()
                    self._texts.update(zip(chunk, emb, strict=True))
            self.seconds["embed_texts"] += time.perf_counter() - start
            self.counts["texts"] += len(new)
        if not texts:
            raise ValueError("encode_text got no texts")
        return torch.stack([self._texts[t] for t in texts])

    def split(self, name: str) -> Split:
        """Image embeddings, own-caption embeddings and metadata of a split (cached).

        A composite (e.g. forget) is the concatenation of its primitive splits, so every
        primitive split is embedded exactly once however many metrics read it. A partitioned
        split (retain_joint, retain_disjoint) is its evaluation part only, in shard order.
        """
        parts = resolve(name)
        if len(parts) > 1:
            pieces = [self.split(p) for p in parts]
            return Split(
                image=torch.cat([p.image for p in pieces]),
                text=torch.cat([p.text for p in pieces]),
                meta=[m for p in pieces for m in p.meta],
            )
        if name not in self._splits:
            start = time.perf_counter()
            arrays, meta = [], []
            size = None if self.manifest["image"]["size"] == self.size else self.size
            partitioned = name in PARTITIONED
            for sample in iter_split(self.data, name, self.manifest):
                if partitioned and not is_evaluated(name, sample["__key__"], sample["json"]):
                    continue
                arrays.append(decode(image_bytes(sample), size))
                row = {**sample["json"], "key": sample["__key__"], "txt": sample["txt"]}
                if "cls" in sample:
                    row["cls"] = sample["cls"]
                meta.append(row)
            if not meta:
                raise ValueError(f"split {name!r} of {self.data} is empty")
            self.seconds["decode"] += time.perf_counter() - start
            start = time.perf_counter()
            image = self._images(arrays)
            self.seconds["embed_images"] += time.perf_counter() - start
            text = self.encode_text([m["txt"] for m in meta])
            self._splits[name] = Split(image=image, text=text, meta=meta)
        return self._splits[name]

    @property
    def embedding_seconds(self) -> float:
        return self.seconds["embed_images"] + self.seconds["embed_texts"]
