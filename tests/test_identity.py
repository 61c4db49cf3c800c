"""Identity is learnable from the face, images are not copies, and nuisance carries no identity."""

from __future__ import annotations

import io
from collections import defaultdict

import numpy as np
from PIL import Image

from salmubench.data.probe import identity_probe
from salmubench.data.shards import SENSITIVE_SPLITS, image_bytes


def test_two_images_of_one_persona_differ(micro_samples):
    by_persona = defaultdict(list)
    for split in SENSITIVE_SPLITS:
        for s in micro_samples[split]:
            by_persona[s["json"]["persona"]].append(image_bytes(s))
    for pid, images in by_persona.items():
        assert len(set(images)) == len(images), f"{pid} has byte-identical images"
        a, b = (np.asarray(Image.open(io.BytesIO(x)), np.float32) for x in images[:2])
        assert np.abs(a - b).mean() > 10.0, f"{pid}: two images are near copies"


def test_pixel_probe_names_personas_and_background_does_not(micro_dataset, micro_manifest):
    result = identity_probe(micro_dataset, micro_manifest)
    chance = result["chance"]
    assert result["test_images"] >= 2 * result["personas"]
    assert result["pixel_accuracy"] >= 4 * chance, result
    # background and clothing are drawn independently of the persona: near chance
    assert result["border_accuracy"] <= 3 * chance, result
    assert result["pixel_accuracy"] >= 3 * result["border_accuracy"], result
