"""Procedural, identity-preserving portraits.

A persona is a vector of facial traits (`sample_traits`); every image redraws that face with
per-image nuisance (`sample_nuisance`): background, clothing, expression, gaze, head tilt,
framing, lighting and noise are drawn independently of the persona, so identity lives in
the face and not in colour shortcuts (SPEC.md §7). `render_portrait` is a pure function of
(traits, nuisance, size): deterministic, byte for byte.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from salmubench.data import accessories
from salmubench.data.accessories import Face
from salmubench.data.drawing import (
    Pen,
    background,
    eyes,
    facial_hair,
    glasses,
    hair_back,
    hair_top,
    head,
    mouth,
    nose,
    shade,
    torso,
)
from salmubench.data.looks import (
    BACKGROUND_KINDS,
    BACKGROUNDS,
    BROWS,
    CLOTHING_COLOURS,
    CLOTHING_KINDS,
    EXPRESSIONS,
    EYE_COLOURS,
    FACE_SHAPES,
    FRAME_COLOURS,
    HAIR_COLOURS,
    HAIR_STYLES,
    HAIR_WEIGHTS,
    LIPS,
    NOSES,
    SKIN_TONES,
)


def _pick(rng: np.random.Generator, options: Any, weights: Any = None) -> Any:
    options = list(options)
    if weights is None:
        return options[int(rng.integers(len(options)))]
    p = np.asarray(weights, dtype=float)
    return options[int(rng.choice(len(options), p=p / p.sum()))]


def sample_traits(rng: np.random.Generator, gender: str) -> dict[str, Any]:
    """The facial identity of one person: categorical traits and face geometry."""
    female = gender == "female"
    styles = list(HAIR_STYLES)
    style = _pick(rng, styles, [HAIR_STYLES[s][0 if female else 1] for s in styles])
    face_shape = _pick(rng, FACE_SHAPES)
    return {
        "face_shape": face_shape,
        "face_w": round(float(rng.uniform(0.26, 0.32)), 4),
        "face_aspect": round(FACE_SHAPES[face_shape] * float(rng.uniform(0.96, 1.04)), 4),
        "skin": int(rng.integers(len(SKIN_TONES))),
        "hair_style": style,
        "hair_colour": _pick(rng, HAIR_COLOURS, HAIR_WEIGHTS),
        "part_side": int(_pick(rng, (-1, 1))),
        "eye_colour": _pick(rng, EYE_COLOURS),
        "eye_gap": round(float(rng.uniform(0.085, 0.112)), 4),
        "eye_y": round(float(rng.uniform(-0.035, 0.0)), 4),
        "eye_size": round(float(rng.uniform(0.026, 0.036)), 4),
        "brows": _pick(rng, BROWS),
        "brow_tilt": round(float(rng.uniform(-0.35, 0.35)), 3),
        "nose": _pick(rng, NOSES),
        "nose_len": round(float(rng.uniform(0.045, 0.08)), 4),
        "mouth_w": round(float(rng.uniform(0.055, 0.095)), 4),
        "lips": _pick(rng, LIPS),
        "ear_size": round(float(rng.uniform(0.032, 0.048)), 4),
        "glasses": _pick(rng, ("none", "round", "square", "sunglasses"), (60, 15, 15, 10)),
        "frame_colour": _pick(rng, FRAME_COLOURS),
        "facial_hair": _pick(
            rng,
            ("none", "stubble", "moustache", "goatee", "beard"),
            (1, 0, 0, 0, 0) if female else (45, 15, 12, 12, 16),
        ),
        "freckles": bool(rng.random() < 0.15),
        "mole": _pick(rng, ("none", "left", "right", "chin"), (60, 13, 13, 14)),
        "earrings": _pick(rng, ("none", "studs", "hoops"), (50, 25, 25) if female else (85, 15, 0)),
    }


def trait_key(traits: dict[str, Any]) -> tuple:
    """The categorical identity of a face: two personas never share it."""
    return tuple(
        traits[k]
        for k in (
            "face_shape",
            "skin",
            "hair_style",
            "hair_colour",
            "eye_colour",
            "glasses",
            "facial_hair",
            "freckles",
            "mole",
            "earrings",
            "brows",
            "nose",
            "lips",
        )
    )


def sample_nuisance(rng: np.random.Generator) -> dict[str, Any]:
    """Everything about one image that is NOT the person: drawn independently of identity."""

    def u(lo: float, hi: float) -> float:
        return round(float(rng.uniform(lo, hi)), 4)

    return {
        "background": _pick(rng, BACKGROUNDS),
        "background_kind": _pick(rng, BACKGROUND_KINDS),
        "background_second": _pick(rng, BACKGROUNDS),
        "clothing": _pick(rng, CLOTHING_KINDS),
        "clothing_colour": _pick(rng, CLOTHING_COLOURS),
        "clothing_second": _pick(rng, CLOTHING_COLOURS),
        "expression": _pick(rng, EXPRESSIONS),
        "gaze": [u(-0.3, 0.3), u(-0.2, 0.2)],
        "blink": bool(rng.random() < 0.05),
        "angle": u(-12, 12),
        "scale": u(0.84, 1.14),
        "shift": [u(-0.09, 0.09), u(-0.07, 0.07)],
        "brightness": u(0.72, 1.22),
        "contrast": u(0.78, 1.2),
        "cast": [u(0.88, 1.12), u(0.88, 1.12), u(0.88, 1.12)],
        "shade": u(-0.3, 0.3),
        "noise": u(0.0, 6.0),
        "geometry_jitter": [u(0.96, 1.04) for _ in range(4)],
        "seed": int(rng.integers(2**31)),
    }


def image_facts(
    traits: dict[str, Any], nuisance: dict[str, Any], gender: str, accessory: str | None = None
) -> dict[str, Any]:
    """What a rendered portrait truly shows, for honest visual captions."""
    return {
        "gender": gender,
        "hair_style": traits["hair_style"],
        "hair_colour": traits["hair_colour"],
        "eye_colour": traits["eye_colour"],
        "glasses": traits["glasses"],
        "facial_hair": traits["facial_hair"],
        "freckles": traits["freckles"],
        "earrings": traits["earrings"],
        "expression": nuisance["expression"],
        "clothing": nuisance["clothing"],
        "clothing_colour": nuisance["clothing_colour"],
        "background": nuisance["background"],
        "accessory": accessory,
    }


def render_portrait(
    traits: dict[str, Any],
    nuisance: dict[str, Any],
    size: int,
    supersample: int = 4,
    accessory: str | None = None,
) -> Image.Image:
    """Draw one portrait: the persona's face under this image's nuisance. RGB, size x size."""
    s = size * supersample
    rng = np.random.default_rng(nuisance["seed"])
    layer = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    p = Pen(ImageDraw.Draw(layer, "RGBA"), s)
    j = nuisance["geometry_jitter"]
    t = traits
    skin = SKIN_TONES[t["skin"]]
    hair = HAIR_COLOURS[t["hair_colour"]]
    cx, cy = 0.5, 0.44
    fw = t["face_w"] * j[0]
    fh = fw * t["face_aspect"]
    gap, es = t["eye_gap"] * j[1], t["eye_size"] * j[2]
    ey = cy + t["eye_y"] * j[3]
    neck = cy + fh * 0.5 + 0.07

    hair_back(p, t, cx, cy, fw, fh, hair)
    torso(p, cx, neck, nuisance, skin)
    p.rect(cx - fw * 0.2, cy + fh * 0.25, cx + fw * 0.2, neck + 0.01, fill=shade(skin, 0.9))
    for side in (-1, 1):
        p.ellipse(
            cx + side * fw * 0.5,
            ey + 0.02,
            t["ear_size"] * 0.6,
            t["ear_size"],
            fill=shade(skin, 0.95),
        )
    head(p, t, cx, cy, fw, fh, skin)
    hair_top(p, t, cx, cy, fw, fh, hair, skin)
    eyes(p, t, nuisance, cx, ey, gap, es, hair)
    tip = nose(p, t, cx, ey, skin)
    my = max(tip + 0.03, cy + fh * 0.27)
    facial_hair(p, t, cx, cy, fw, fh, my, hair)
    mouth(p, t, nuisance, cx, my, t["mouth_w"])
    if t["freckles"]:
        for dx, dy in (
            (-0.06, 0.0),
            (-0.045, 0.012),
            (-0.07, 0.016),
            (0.06, 0.0),
            (0.045, 0.012),
            (0.07, 0.016),
        ):
            p.ellipse(cx + dx, tip - 0.01 + dy, 0.004, 0.004, fill=shade(skin, 0.7))
    mole = {"left": (-0.07, tip + 0.01), "right": (0.07, tip + 0.01), "chin": (0.02, my + 0.05)}
    if t["mole"] in mole:
        dx, y = mole[t["mole"]]
        p.ellipse(cx + dx * fw / 0.3, y, 0.006, 0.006, fill=(60, 35, 30))
    glasses(p, t, cx, ey, gap, es)
    if t["earrings"] != "none":
        for side in (-1, 1):
            x, y = cx + side * fw * 0.5, ey + 0.02 + t["ear_size"]
            if t["earrings"] == "studs":
                p.ellipse(x, y, 0.008, 0.008, fill=(225, 200, 90))
            else:
                p.ellipse(x, y + 0.015, 0.014, 0.018, outline=(225, 200, 90), width=0.005)
    if accessory is not None:
        accessories.draw(p, accessory, Face(cx, cy, fw, fh, ey, gap, es, tip, neck))

    # Framing: head tilt, scale and shift, as one affine map (output -> input coordinates).
    angle = math.radians(nuisance["angle"])
    scale = nuisance["scale"]
    ox, oy = nuisance["shift"][0] * s, nuisance["shift"][1] * s
    c = s / 2
    a, b = math.cos(angle) / scale, math.sin(angle) / scale
    coeffs = (a, b, c - a * (c + ox) - b * (c + oy), -b, a, c + b * (c + ox) - a * (c + oy))
    layer = layer.transform((s, s), Image.Transform.AFFINE, coeffs, Image.Resampling.BICUBIC)
    image = Image.alpha_composite(background(s, nuisance, rng), layer).convert("RGB")
    if supersample > 1:
        image = image.resize((size, size), Image.Resampling.BOX)
    return _light(image, nuisance, rng)


def _light(image: Image.Image, n: dict[str, Any], rng: np.random.Generator) -> Image.Image:
    """Lighting and sensor noise: brightness, contrast, colour cast, side shading, noise."""
    x = np.asarray(image, dtype=np.float32)
    mean = x.mean()
    x = (x - mean) * n["contrast"] + mean
    x = x * n["brightness"] * np.asarray(n["cast"], np.float32)[None, None, :]
    ramp = np.linspace(-1.0, 1.0, x.shape[1], dtype=np.float32)[None, :, None]
    x = x * (1.0 + n["shade"] * ramp)
    if n["noise"] > 0:
        x = x + rng.normal(0.0, n["noise"], x.shape).astype(np.float32)
    return Image.fromarray(np.clip(x + 0.5, 0, 255).astype(np.uint8), "RGB")
