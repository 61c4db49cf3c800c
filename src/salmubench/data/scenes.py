"""The general world: procedural scenes of coloured shapes with compositional captions.

It stands in for the paper's web-scale `retain_real` data. Its held-out labelled twin (one
object per image, class = colour + shape) is the zero-shot GenKnow task standing in for
ImageNet-1k. `render_scene` is a pure function of the scene description.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (222, 38, 38), "orange": (245, 140, 20), "yellow": (242, 222, 30),
    "green": (40, 170, 60), "cyan": (40, 205, 215), "blue": (40, 80, 225),
    "purple": (140, 60, 195), "pink": (245, 125, 190), "white": (250, 250, 250),
    "black": (18, 18, 18),
}  # fmt: skip
SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "diamond", "bar")
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "grey": (128, 128, 128), "light grey": (192, 192, 192), "dark grey": (64, 64, 64),
    "beige": (215, 200, 170), "olive": (112, 112, 60), "brown": (110, 80, 50),
    "navy": (30, 36, 80), "teal": (32, 92, 92),
}  # fmt: skip
# 3 x 3 placement grid: name, centre (unit coordinates)
PLACES = (
    ("at the top left", 0.25, 0.25), ("at the top", 0.5, 0.25), ("at the top right", 0.75, 0.25),
    ("on the left", 0.25, 0.5), ("in the centre", 0.5, 0.5), ("on the right", 0.75, 0.5),
    ("at the bottom left", 0.25, 0.75), ("at the bottom", 0.5, 0.75),
    ("at the bottom right", 0.75, 0.75),
)  # fmt: skip
SIZES = {"small": (0.08, 0.11), "large": (0.14, 0.17)}  # fit a grid cell: no overlaps
SINGLE = (0.15, 0.24)  # a lone object may be bigger


def classes() -> list[str]:
    """The GenKnow label set: every colour-shape pair, index = colour * len(SHAPES) + shape."""
    return [f"{c} {s}" for c in COLOURS for s in SHAPES]


def sample_scene(rng: np.random.Generator, n_objects: int | None = None) -> dict[str, Any]:
    """A random scene: 1-3 objects in distinct grid places on a textured background."""
    if n_objects is None:
        n_objects = int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    places = rng.permutation(len(PLACES))[:n_objects]
    objects = []
    for place in places:
        size = "large" if (n_objects == 1 or rng.random() < 0.35) else "small"
        lo, hi = SIZES[size]
        name, x, y = PLACES[int(place)]
        objects.append(
            {
                "colour": list(COLOURS)[int(rng.integers(len(COLOURS)))],
                "shape": SHAPES[int(rng.integers(len(SHAPES)))],
                "size": size,
                "where": name,
                "x": round(x + float(rng.uniform(-0.03, 0.03)), 4),
                "y": round(y + float(rng.uniform(-0.03, 0.03)), 4),
                "r": round(float(rng.uniform(lo, hi)), 4),
                "rot": round(float(rng.uniform(-0.3, 0.3)), 4),
            }
        )
    if n_objects == 1:  # a single object may sit anywhere, GenKnow-style
        objects[0]["where"] = "in the centre"
        objects[0]["x"] = round(float(rng.uniform(0.35, 0.65)), 4)
        objects[0]["y"] = round(float(rng.uniform(0.35, 0.65)), 4)
        objects[0]["r"] = round(float(rng.uniform(*SINGLE)), 4)
    return {
        "background": list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))],
        "texture": round(float(rng.uniform(0.0, 0.25)), 4),
        "light": round(float(rng.uniform(0.8, 1.15)), 4),
        "noise": round(float(rng.uniform(0.0, 6.0)), 4),
        "objects": objects,
        "seed": int(rng.integers(2**31)),
    }


def _shape(d: ImageDraw.ImageDraw, o: dict[str, Any], s: int) -> None:
    cx, cy, r, rot = o["x"] * s, o["y"] * s, o["r"] * s, o["rot"]
    fill = COLOURS[o["colour"]]

    def poly(points: list[tuple[float, float]]) -> None:
        c, sn = math.cos(rot), math.sin(rot)
        d.polygon([(cx + x * c - y * sn, cy + x * sn + y * c) for x, y in points], fill=fill)

    shape = o["shape"]
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "ring":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(1, int(r * 0.38)))
    elif shape == "square":
        poly(
            [
                (-r * 0.85, -r * 0.85),
                (r * 0.85, -r * 0.85),
                (r * 0.85, r * 0.85),
                (-r * 0.85, r * 0.85),
            ]
        )
    elif shape == "bar":
        poly([(-r, -r * 0.32), (r, -r * 0.32), (r, r * 0.32), (-r, r * 0.32)])
    elif shape == "diamond":
        poly([(0, -r), (r * 0.7, 0), (0, r), (-r * 0.7, 0)])
    elif shape == "triangle":
        poly([(0, -r), (r * 0.95, r * 0.75), (-r * 0.95, r * 0.75)])
    elif shape == "cross":
        w = r * 0.34
        poly(
            [
                (-w, -r),
                (w, -r),
                (w, -w),
                (r, -w),
                (r, w),
                (w, w),
                (w, r),
                (-w, r),
                (-w, w),
                (-r, w),
                (-r, -w),
                (-w, -w),
            ]
        )
    elif shape == "star":
        poly(
            [
                (
                    math.cos(-math.pi / 2 + k * math.pi / 5) * (r if k % 2 == 0 else r * 0.45),
                    math.sin(-math.pi / 2 + k * math.pi / 5) * (r if k % 2 == 0 else r * 0.45),
                )
                for k in range(10)
            ]
        )
    else:
        raise ValueError(f"unknown shape {shape!r}; valid: {SHAPES}")


def _texture_palette(background: str, texture: float) -> bytes:
    """The background's colour at each texture level 0..255, as a 256-entry RGB palette.

    The float32 formula is applied to the 256 levels rather than to every pixel, and the
    texture image is then read through it (a palette image converted to RGB): the same
    operations on the same values, so the same bytes, in a fraction of the time."""
    base = np.array(BACKGROUNDS[background], np.float32)
    level = np.arange(256, dtype=np.float32)
    colour = base[None, :] * (1 + texture * (level[:, None] / 120.0 - 1))
    return colour.clip(0, 255).astype(np.uint8).tobytes()


def render_scene(scene: dict[str, Any], size: int, supersample: int = 4) -> Image.Image:
    s = size * supersample
    rng = np.random.default_rng(scene["seed"])
    # Low-frequency texture so backgrounds are not flat colour.
    coarse = rng.normal(0.0, 1.0, (4, 4, 1)).astype(np.float32)
    tex = Image.fromarray(((coarse[..., 0] + 3) * 40).clip(0, 255).astype(np.uint8)).resize(
        (s, s), Image.Resampling.BILINEAR
    )
    tex.putpalette(_texture_palette(scene["background"], scene["texture"]))
    image = tex.convert("RGB")
    d = ImageDraw.Draw(image)
    for obj in scene["objects"]:
        _shape(d, obj, s)
    if supersample > 1:
        image = image.resize((size, size), Image.Resampling.BOX)
    x = np.asarray(image, np.float32) * scene["light"]
    if scene["noise"] > 0:
        x = x + rng.normal(0.0, scene["noise"], x.shape).astype(np.float32)
    return Image.fromarray(np.clip(x + 0.5, 0, 255).astype(np.uint8), "RGB")
