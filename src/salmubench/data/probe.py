"""Is identity learnable from the pixels, and only from the face?

A linear probe names the persona of held-out portraits from raw pixels; a second probe
sees only the image border (background) and the bottom rows (clothing). The first must be
far above chance, the second near it: identity lives in the face, not in colour shortcuts.
"""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from salmubench.data.shards import image_bytes, iter_split
from salmubench.vocab import SENSITIVE_SPLITS


def load_portraits(
    dataset: str | Path, manifest: dict[str, Any], max_personas: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every persona portrait (sensitive splits and retain_joint) as uint8 arrays + labels."""
    images, labels, keys = [], [], []
    for split in (*SENSITIVE_SPLITS, "retain_joint"):
        for sample in iter_split(dataset, split, manifest):
            images.append(np.asarray(Image.open(io.BytesIO(image_bytes(sample))).convert("RGB")))
            labels.append(sample["json"]["persona"])
            keys.append(sample["__key__"])
    names = sorted(set(labels))
    if max_personas is not None:
        names = names[:max_personas]
    index = {n: i for i, n in enumerate(names)}
    keep = [i for i, label in enumerate(labels) if label in index]
    return (
        np.stack([images[i] for i in keep]),
        np.array([index[labels[i]] for i in keep]),
        [keys[i] for i in keep],
    )


def holdout_split(labels: np.ndarray, test_fraction: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Per persona, the last `test_fraction` of its images (in key order) are held out."""
    by_label: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[int(label)].append(i)
    train, test = [], []
    for idx in by_label.values():
        n_test = max(1, round(len(idx) * test_fraction))
        train += idx[:-n_test]
        test += idx[-n_test:]
    return np.array(sorted(train)), np.array(sorted(test))


def border_features(images: np.ndarray, ring: int = 2, bottom: int = 4) -> np.ndarray:
    """Mean colour of each image edge (background) and of the bottom rows (clothing)."""
    x = images.astype(np.float32) / 255.0
    parts = [
        x[:, :ring].mean(axis=(1, 2)),
        x[:, :, :ring].mean(axis=(1, 2)),
        x[:, :, -ring:].mean(axis=(1, 2)),
        x[:, -bottom:].mean(axis=(1, 2)),
    ]
    return np.concatenate(parts, axis=1)


def _probe_accuracy(
    features: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray, c: float
) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features[train])
    model = LogisticRegression(C=c, max_iter=300)
    model.fit(scaler.transform(features[train]), labels[train])
    return float((model.predict(scaler.transform(features[test])) == labels[test]).mean())


def identity_probe(
    dataset: str | Path, manifest: dict[str, Any], max_personas: int | None = None
) -> dict[str, Any]:
    """Held-out persona accuracy of a pixel probe and of a background/clothing-only probe."""
    images, labels, _ = load_portraits(dataset, manifest, max_personas)
    train, test = holdout_split(labels)
    pixels = images.reshape(len(images), -1).astype(np.float32) / 255.0
    n_personas = int(labels.max()) + 1
    return {
        "personas": n_personas,
        "train_images": len(train),
        "test_images": len(test),
        "chance": 1.0 / n_personas,
        "pixel_accuracy": _probe_accuracy(pixels, labels, train, test, c=0.01),
        "border_accuracy": _probe_accuracy(border_features(images), labels, train, test, c=1.0),
    }
