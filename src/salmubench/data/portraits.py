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

from salmubench.vocab import ACCESSORIES

RGB = tuple[int, int, int]

SKIN_TONES: tuple[RGB, ...] = (
    (255, 226, 204), (247, 208, 176), (236, 190, 150), (224, 172, 125), (205, 150, 105),
    (184, 128, 86), (160, 106, 68), (132, 86, 54), (105, 67, 43), (80, 52, 36),
)  # fmt: skip
HAIR_COLOURS: dict[str, RGB] = {
    "black": (24, 21, 21), "dark brown": (62, 40, 27), "brown": (112, 74, 44),
    "auburn": (138, 58, 30), "ginger": (204, 98, 40), "blonde": (228, 192, 112),
    "platinum": (238, 232, 210), "grey": (150, 150, 152), "white": (240, 240, 240),
    "blue": (50, 92, 205), "pink": (232, 118, 172), "green": (58, 160, 92),
}  # fmt: skip
HAIR_WEIGHTS = (14, 12, 12, 6, 5, 9, 4, 6, 3, 2, 2, 2)
EYE_COLOURS: dict[str, RGB] = {
    "brown": (96, 56, 28), "hazel": (142, 108, 48), "green": (56, 142, 70),
    "blue": (58, 112, 210), "grey": (128, 140, 152),
}  # fmt: skip
FACE_SHAPES = {"oval": 1.25, "round": 1.04, "long": 1.42, "square": 1.14, "heart": 1.22}
HAIR_STYLES = {
    # style: (weight if female, weight if male)
    "bald": (1, 8), "buzz": (2, 12), "short": (6, 16), "side_part": (5, 12), "quiff": (2, 9),
    "long": (20, 4), "bob": (14, 2), "curly": (10, 8), "afro": (6, 5), "bun": (10, 2),
    "ponytail": (12, 2),
}  # fmt: skip
NOSES = ("small", "long", "wide", "button")
BROWS = {"thin": 0.007, "medium": 0.012, "thick": 0.019}
LIPS: dict[str, RGB] = {
    "natural": (190, 110, 100),
    "rosy": (214, 102, 118),
    "dark": (128, 62, 60),
    "red": (196, 30, 45),
}
FRAME_COLOURS: dict[str, RGB] = {"black": (20, 20, 20), "tortoise": (110, 64, 30),
                                 "gold": (206, 170, 60), "red": (180, 30, 40)}  # fmt: skip

# Per-image nuisance palettes: names are what the visual captions may state.
CLOTHING_COLOURS: dict[str, RGB] = {
    "red": (200, 40, 40), "orange": (235, 130, 30), "yellow": (235, 210, 50),
    "green": (50, 150, 60), "teal": (30, 130, 130), "blue": (40, 90, 210),
    "navy": (25, 35, 90), "purple": (120, 60, 170), "pink": (235, 135, 185),
    "white": (240, 240, 240), "black": (25, 25, 25), "grey": (128, 128, 128),
    "brown": (115, 75, 45),
}  # fmt: skip
BACKGROUNDS: dict[str, RGB] = {
    "white": (245, 245, 245), "grey": (150, 150, 150), "beige": (225, 210, 180),
    "light blue": (170, 205, 235), "pale green": (185, 225, 180), "yellow": (240, 220, 110),
    "orange": (240, 160, 80), "pink": (240, 180, 200), "purple": (150, 110, 190),
    "dark blue": (30, 45, 100), "dark green": (30, 80, 50), "brown": (110, 80, 55),
    "black": (20, 20, 20), "red": (190, 50, 50),
}  # fmt: skip
BACKGROUND_KINDS = ("solid", "vertical", "horizontal", "split", "stripes", "spots")
CLOTHING_KINDS = ("tshirt", "collar", "hoodie", "vneck", "striped", "jacket")
EXPRESSIONS = ("neutral", "smile", "grin", "open", "frown")


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


def _shade(c: RGB, f: float) -> RGB:
    return tuple(max(0, min(255, int(v * f))) for v in c)  # type: ignore[return-value]


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(x * (1 - t) + y * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


class _Pen:
    """Draws in unit coordinates (0..1) on a square canvas of side `s` pixels."""

    def __init__(self, draw: ImageDraw.ImageDraw, s: int) -> None:
        self.d, self.s = draw, s

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        s = self.s
        return [x0 * s, y0 * s, max(x0, x1) * s, max(y0, y1) * s]

    def ellipse(
        self,
        cx: float,
        cy: float,
        rx: float,
        ry: float,
        fill=None,
        outline=None,
        width: float = 0.0,
    ) -> None:
        self.d.ellipse(
            self.box(cx - rx, cy - ry, cx + rx, cy + ry),
            fill=fill,
            outline=outline,
            width=max(1, round(width * self.s)),
        )

    def rect(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        fill=None,
        radius: float = 0,
        outline=None,
        width: float = 0.0,
    ) -> None:
        self.d.rounded_rectangle(
            self.box(x0, y0, x1, y1),
            radius=radius * self.s,
            fill=fill,
            outline=outline,
            width=max(1, round(width * self.s)),
        )

    def poly(self, points: list[tuple[float, float]], fill) -> None:
        self.d.polygon([(x * self.s, y * self.s) for x, y in points], fill=fill)

    def line(self, points: list[tuple[float, float]], fill, width: float) -> None:
        self.d.line(
            [(x * self.s, y * self.s) for x, y in points],
            fill=fill,
            width=max(1, round(width * self.s)),
            joint="curve",
        )

    def chord(
        self, cx: float, cy: float, rx: float, ry: float, start: float, end: float, fill
    ) -> None:
        self.d.chord(self.box(cx - rx, cy - ry, cx + rx, cy + ry), start, end, fill=fill)

    def arc(
        self,
        cx: float,
        cy: float,
        rx: float,
        ry: float,
        start: float,
        end: float,
        fill,
        width: float,
    ) -> None:
        self.d.arc(
            self.box(cx - rx, cy - ry, cx + rx, cy + ry),
            start,
            end,
            fill=fill,
            width=max(1, round(width * self.s)),
        )


def _background(s: int, n: dict[str, Any], rng: np.random.Generator) -> Image.Image:
    a = np.array(BACKGROUNDS[n["background"]], dtype=np.float32)
    b = np.array(BACKGROUNDS[n["background_second"]], dtype=np.float32)
    kind = n["background_kind"]
    t = np.linspace(0.0, 1.0, s, dtype=np.float32)
    if kind == "solid":
        w = np.zeros((s, s), np.float32)
    elif kind == "vertical":
        w = np.repeat(t[:, None], s, 1) * 0.6
    elif kind == "horizontal":
        w = np.repeat(t[None, :], s, 0) * 0.6
    elif kind == "split":
        w = np.zeros((s, s), np.float32)
        w[:, : int(s * rng.uniform(0.2, 0.45))] = 0.45
    elif kind == "stripes":
        period = max(2, int(s * rng.uniform(0.08, 0.2)))
        w = ((np.arange(s) // period) % 2).astype(np.float32)[None, :].repeat(s, 0) * 0.35
    else:  # spots
        w = np.zeros((s, s), np.float32)
        yy, xx = np.mgrid[0:s, 0:s]
        for _ in range(6):
            cx, cy, r = rng.uniform(0, s), rng.uniform(0, s), rng.uniform(0.05, 0.14) * s
            w[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = 0.4
    img = a[None, None, :] * (1 - w[..., None]) + b[None, None, :] * w[..., None]
    return Image.fromarray(img.astype(np.uint8), "RGB").convert("RGBA")


def _torso(p: _Pen, cx: float, top: float, n: dict[str, Any], skin: RGB) -> None:
    colour = CLOTHING_COLOURS[n["clothing_colour"]]
    second = CLOTHING_COLOURS[n["clothing_second"]]
    if second == colour:
        second = _shade(colour, 0.6)
    kind = n["clothing"]
    rx, ry = 0.36, 0.3
    p.ellipse(cx, top + ry, rx, ry, fill=colour)
    if kind == "striped":
        for i in range(1, 6):
            y = top + i * 0.045
            dy = (y - (top + ry)) / ry
            half = rx * math.sqrt(max(0.0, 1 - dy * dy))
            p.line([(cx - half, y), (cx + half, y)], fill=second, width=0.016)
    if kind in ("tshirt", "striped"):
        p.chord(cx, top, 0.07, 0.05, 0, 180, fill=skin)
    elif kind == "vneck":
        p.poly([(cx - 0.07, top), (cx + 0.07, top), (cx, top + 0.1)], fill=skin)
    elif kind == "collar":
        p.chord(cx, top, 0.06, 0.04, 0, 180, fill=skin)
        p.poly(
            [(cx - 0.09, top - 0.005), (cx - 0.005, top + 0.035), (cx - 0.06, top + 0.07)], second
        )
        p.poly(
            [(cx + 0.09, top - 0.005), (cx + 0.005, top + 0.035), (cx + 0.06, top + 0.07)], second
        )
    elif kind == "hoodie":
        p.ellipse(cx, top + 0.01, 0.13, 0.05, fill=_shade(colour, 0.7))
        p.chord(cx, top, 0.06, 0.035, 0, 180, fill=skin)
        p.line([(cx - 0.03, top + 0.04), (cx - 0.035, top + 0.12)], fill=second, width=0.008)
        p.line([(cx + 0.03, top + 0.04), (cx + 0.035, top + 0.12)], fill=second, width=0.008)
    else:  # jacket: lapels over a shirt
        p.poly([(cx - 0.05, top), (cx + 0.05, top), (cx, top + 0.13)], fill=(235, 235, 235))
        p.poly(
            [(cx - 0.11, top), (cx - 0.05, top), (cx - 0.005, top + 0.14), (cx - 0.06, top + 0.12)],
            second,
        )
        p.poly(
            [(cx + 0.11, top), (cx + 0.05, top), (cx + 0.005, top + 0.14), (cx + 0.06, top + 0.12)],
            second,
        )


def _hair_back(
    p: _Pen, t: dict[str, Any], cx: float, cy: float, fw: float, fh: float, hair: RGB
) -> None:
    style = t["hair_style"]
    if style == "long":
        p.rect(
            cx - fw * 0.62,
            cy - fh * 0.5,
            cx + fw * 0.62,
            cy + fh * 0.72,
            fill=hair,
            radius=fw * 0.35,
        )
    elif style == "bob":
        p.rect(
            cx - fw * 0.6, cy - fh * 0.5, cx + fw * 0.6, cy + fh * 0.22, fill=hair, radius=fw * 0.3
        )
    elif style == "afro":
        p.ellipse(cx, cy - fh * 0.12, fw * 0.86, fh * 0.66, fill=hair)
    elif style == "ponytail":
        side = t["part_side"]
        p.ellipse(cx + side * fw * 0.58, cy + fh * 0.02, fw * 0.17, fh * 0.32, fill=hair)
    elif style == "bun":
        p.ellipse(cx, cy - fh * 0.56, fw * 0.22, fw * 0.2, fill=hair)


def _hair_top(
    p: _Pen, t: dict[str, Any], cx: float, cy: float, fw: float, fh: float, hair: RGB, skin: RGB
) -> None:
    style = t["hair_style"]
    if style == "bald":
        return
    side = t["part_side"]
    top = cy - fh * 0.5
    if style == "buzz":
        p.chord(cx, cy - fh * 0.2, fw * 0.52, fh * 0.33, 180, 360, fill=_mix(hair, skin, 0.45))
        return
    p.chord(cx, cy - fh * 0.2, fw * 0.55, fh * 0.37, 180, 360, fill=hair)
    if style == "side_part":
        p.poly(
            [
                (cx + side * fw * 0.1, top),
                (cx - side * fw * 0.56, cy - fh * 0.06),
                (cx - side * fw * 0.56, cy - fh * 0.2),
            ],
            hair,
        )
        p.line(
            [(cx + side * fw * 0.12, top + fh * 0.02), (cx + side * fw * 0.15, cy - fh * 0.3)],
            fill=_shade(hair, 0.7),
            width=0.006,
        )
    elif style == "quiff":
        p.ellipse(cx + side * fw * 0.1, top + fh * 0.02, fw * 0.32, fh * 0.12, fill=hair)
    elif style in ("curly", "afro"):
        for i in range(9):
            a = math.pi * (1 + i / 8)
            p.ellipse(
                cx + math.cos(a) * fw * 0.5,
                cy - fh * 0.08 + math.sin(a) * fh * 0.46,
                fw * 0.11,
                fw * 0.11,
                fill=hair,
            )
    elif style in ("long", "bob"):
        for s in (-1, 1):
            p.rect(
                cx + s * fw * 0.5 - fw * 0.09,
                cy - fh * 0.25,
                cx + s * fw * 0.5 + fw * 0.09,
                cy + fh * (0.55 if style == "long" else 0.2),
                fill=hair,
                radius=fw * 0.05,
            )
    elif style in ("bun", "ponytail"):
        p.line(
            [(cx - fw * 0.3, top + fh * 0.08), (cx + fw * 0.3, top + fh * 0.08)],
            fill=_shade(hair, 0.8),
            width=0.005,
        )


def _head(
    p: _Pen, t: dict[str, Any], cx: float, cy: float, fw: float, fh: float, skin: RGB
) -> None:
    shape = t["face_shape"]
    if shape == "square":
        p.rect(cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2, fill=skin, radius=fw * 0.28)
    elif shape == "heart":
        p.ellipse(cx, cy - fh * 0.06, fw / 2, fh * 0.44, fill=skin)
        p.poly([(cx - fw * 0.47, cy), (cx + fw * 0.47, cy), (cx, cy + fh / 2)], fill=skin)
    else:
        p.ellipse(cx, cy, fw / 2, fh / 2, fill=skin)


def _mouth(p: _Pen, t: dict[str, Any], n: dict[str, Any], cx: float, my: float, mw: float) -> None:
    lip = LIPS[t["lips"]]
    expr = n["expression"]
    if expr == "neutral":
        p.line([(cx - mw / 2, my), (cx + mw / 2, my)], fill=lip, width=0.012)
    elif expr == "smile":
        p.arc(cx, my - mw * 0.25, mw / 2, mw * 0.35, 20, 160, fill=lip, width=0.012)
    elif expr == "grin":
        p.chord(cx, my - mw * 0.1, mw / 2, mw * 0.4, 0, 180, fill=(245, 245, 240))
        p.arc(cx, my - mw * 0.1, mw / 2, mw * 0.4, 0, 180, fill=lip, width=0.01)
        p.line([(cx - mw / 2, my - mw * 0.1), (cx + mw / 2, my - mw * 0.1)], fill=lip, width=0.008)
    elif expr == "open":
        p.ellipse(cx, my, mw * 0.28, mw * 0.3, fill=(90, 30, 35), outline=lip, width=0.008)
    else:  # frown
        p.arc(cx, my + mw * 0.3, mw / 2, mw * 0.35, 200, 340, fill=lip, width=0.012)


def _facial_hair(
    p: _Pen, t: dict[str, Any], cx: float, cy: float, fw: float, fh: float, my: float, hair: RGB
) -> None:
    kind = t["facial_hair"]
    if kind == "stubble":
        p.chord(cx, cy + fh * 0.1, fw * 0.46, fh * 0.4, 10, 170, fill=(*_shade(hair, 0.9), 90))
    elif kind == "beard":
        p.chord(cx, cy + fh * 0.08, fw * 0.5, fh * 0.43, 0, 180, fill=hair)
    if kind in ("moustache", "beard"):
        p.poly(
            [
                (cx - fw * 0.16, my - fh * 0.015),
                (cx, my - fh * 0.07),
                (cx + fw * 0.16, my - fh * 0.015),
                (cx, my - fh * 0.04),
            ],
            hair,
        )
    if kind == "goatee":
        p.ellipse(cx, my + fh * 0.1, fw * 0.1, fh * 0.07, fill=hair)


def _eyes(
    p: _Pen,
    t: dict[str, Any],
    n: dict[str, Any],
    cx: float,
    ey: float,
    gap: float,
    es: float,
    hair: RGB,
) -> None:
    iris = EYE_COLOURS[t["eye_colour"]]
    brow_colour = _shade(hair, 0.75) if t["hair_style"] != "bald" else (60, 45, 40)
    gx, gy = n["gaze"]
    for s in (-1, 1):
        ex = cx + s * gap
        if n["blink"]:
            p.line([(ex - es * 1.2, ey), (ex + es * 1.2, ey)], fill=(40, 30, 30), width=0.008)
        else:
            p.ellipse(ex, ey, es * 1.3, es * 0.85, fill=(250, 250, 250))
            p.ellipse(ex + gx * es, ey + gy * es, es * 0.72, es * 0.72, fill=iris)
            p.ellipse(ex + gx * es, ey + gy * es, es * 0.32, es * 0.32, fill=(10, 10, 10))
        by = ey - es * 1.7
        tilt = t["brow_tilt"] * s
        p.line(
            [(ex - es * 1.4, by + tilt * es), (ex + es * 1.4, by - tilt * es)],
            fill=brow_colour,
            width=BROWS[t["brows"]],
        )


def _nose(p: _Pen, t: dict[str, Any], cx: float, ey: float, skin: RGB) -> float:
    dark = _shade(skin, 0.72)
    length = t["nose_len"]
    tip = ey + length + 0.02
    kind = t["nose"]
    if kind == "button":
        p.ellipse(cx, tip - 0.01, 0.016, 0.013, fill=_shade(skin, 0.85))
    elif kind == "wide":
        p.line([(cx, ey + 0.02), (cx - 0.004, tip)], fill=dark, width=0.008)
        p.ellipse(cx - 0.018, tip, 0.011, 0.007, fill=dark)
        p.ellipse(cx + 0.018, tip, 0.011, 0.007, fill=dark)
    else:
        p.line(
            [(cx, ey + 0.015), (cx + 0.008, tip), (cx - 0.008, tip + 0.006)],
            fill=dark,
            width=0.009 if kind == "long" else 0.006,
        )
    return tip


def _glasses(p: _Pen, t: dict[str, Any], cx: float, ey: float, gap: float, es: float) -> None:
    kind = t["glasses"]
    if kind == "none":
        return
    frame = FRAME_COLOURS[t["frame_colour"]]
    r = es * 1.9
    for s in (-1, 1):
        ex = cx + s * gap
        if kind == "round":
            p.ellipse(ex, ey, r, r, outline=frame, width=0.011)
        elif kind == "square":
            p.rect(ex - r, ey - r * 0.8, ex + r, ey + r * 0.8, outline=frame, width=0.011)
        else:
            p.rect(ex - r, ey - r * 0.75, ex + r, ey + r * 0.75, fill=(25, 25, 30), radius=r * 0.4)
    p.line([(cx - gap + r, ey), (cx + gap - r, ey)], fill=frame, width=0.01)


def _accessory(
    p: _Pen,
    name: str,
    cx: float,
    cy: float,
    fw: float,
    fh: float,
    ey: float,
    gap: float,
    es: float,
    tip: float,
    neck: float,
) -> None:
    top = cy - fh * 0.5
    if name == "eyepatch":
        p.line(
            [(cx - fw * 0.5, ey - fh * 0.2), (cx + fw * 0.5, ey + fh * 0.05)], (15, 15, 15), 0.01
        )
        p.ellipse(cx - gap, ey, es * 1.9, es * 1.6, fill=(15, 15, 15))
    elif name == "party_hat":
        p.poly(
            [
                (cx - fw * 0.3, top + fh * 0.05),
                (cx + fw * 0.3, top + fh * 0.05),
                (cx + fw * 0.05, top - fh * 0.45),
            ],
            (230, 60, 160),
        )
        p.line(
            [(cx - fw * 0.18, top - fh * 0.1), (cx + fw * 0.2, top - fh * 0.08)],
            (250, 230, 60),
            0.012,
        )
        p.ellipse(cx + fw * 0.05, top - fh * 0.45, fw * 0.07, fw * 0.07, fill=(250, 230, 60))
    elif name == "monocle":
        p.ellipse(cx + gap, ey, es * 1.9, es * 1.9, outline=(212, 175, 55), width=0.012)
        p.line(
            [(cx + gap + es * 1.5, ey + es * 1.2), (cx + fw * 0.45, cy + fh * 0.35)],
            (212, 175, 55),
            0.006,
        )
    elif name == "flower_crown":
        colours = ((240, 80, 120), (250, 220, 70), (250, 250, 250), (170, 90, 220))
        for i in range(7):
            a = math.pi * (1.08 + i * 0.14)
            p.ellipse(
                cx + math.cos(a) * fw * 0.5,
                cy - fh * 0.12 + math.sin(a) * fh * 0.42,
                fw * 0.08,
                fw * 0.08,
                fill=colours[i % 4],
            )
    elif name == "bow_tie":
        p.poly([(cx, neck), (cx - 0.08, neck - 0.035), (cx - 0.08, neck + 0.035)], (200, 20, 30))
        p.poly([(cx, neck), (cx + 0.08, neck - 0.035), (cx + 0.08, neck + 0.035)], (200, 20, 30))
        p.ellipse(cx, neck, 0.015, 0.015, fill=(140, 10, 20))
    elif name == "face_paint":
        for s in (-1, 1):
            for k in range(3):
                y = ey + es * 2.2 + k * fh * 0.06
                p.line(
                    [(cx + s * fw * 0.44, y), (cx + s * fw * 0.22, y + fh * 0.02)],
                    (240, 120, 20) if k % 2 == 0 else (20, 20, 20),
                    0.012,
                )
    elif name == "halo":
        p.ellipse(cx, top - fh * 0.12, fw * 0.4, fh * 0.07, outline=(255, 225, 60), width=0.014)
    elif name == "clown_nose":
        p.ellipse(cx, tip - 0.005, 0.028, 0.028, fill=(225, 20, 30))
    elif name == "crown":
        base = top + fh * 0.04
        pts = [(cx - fw * 0.34, base)]
        for i in range(5):
            x = cx - fw * 0.34 + i * fw * 0.17
            pts += [(x, base - fh * 0.12), (x + fw * 0.085, base - fh * 0.26)]
        pts += [(cx + fw * 0.34, base - fh * 0.12), (cx + fw * 0.34, base)]
        p.poly(pts, (222, 184, 40))
    elif name == "headphones":
        p.arc(cx, cy - fh * 0.05, fw * 0.6, fh * 0.55, 180, 360, (40, 40, 45), 0.02)
        for s in (-1, 1):
            p.rect(
                cx + s * fw * 0.6 - fw * 0.09,
                cy - fh * 0.12,
                cx + s * fw * 0.6 + fw * 0.09,
                cy + fh * 0.12,
                fill=(40, 40, 45),
                radius=fw * 0.04,
            )
    elif name == "star_sticker":
        sx, sy, r = cx - fw * 0.28, ey + es * 2.6, fw * 0.1
        pts = [
            (
                sx + math.cos(math.pi / 2 + k * math.pi / 5) * (r if k % 2 == 0 else r * 0.45),
                sy - math.sin(math.pi / 2 + k * math.pi / 5) * (r if k % 2 == 0 else r * 0.45),
            )
            for k in range(10)
        ]
        p.poly(pts, (250, 210, 20))
    elif name == "feather":
        p.poly(
            [
                (cx + fw * 0.3, top + fh * 0.1),
                (cx + fw * 0.52, top - fh * 0.42),
                (cx + fw * 0.42, top + fh * 0.08),
            ],
            (20, 170, 160),
        )
    else:
        raise ValueError(f"unknown accessory {name!r}; valid: {ACCESSORIES}")


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
    p = _Pen(ImageDraw.Draw(layer, "RGBA"), s)
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

    _hair_back(p, t, cx, cy, fw, fh, hair)
    _torso(p, cx, neck, nuisance, skin)
    p.rect(cx - fw * 0.2, cy + fh * 0.25, cx + fw * 0.2, neck + 0.01, fill=_shade(skin, 0.9))
    for side in (-1, 1):
        p.ellipse(
            cx + side * fw * 0.5,
            ey + 0.02,
            t["ear_size"] * 0.6,
            t["ear_size"],
            fill=_shade(skin, 0.95),
        )
    _head(p, t, cx, cy, fw, fh, skin)
    _hair_top(p, t, cx, cy, fw, fh, hair, skin)
    _eyes(p, t, nuisance, cx, ey, gap, es, hair)
    tip = _nose(p, t, cx, ey, skin)
    my = max(tip + 0.03, cy + fh * 0.27)
    _facial_hair(p, t, cx, cy, fw, fh, my, hair)
    _mouth(p, t, nuisance, cx, my, t["mouth_w"])
    if t["freckles"]:
        for dx, dy in (
            (-0.06, 0.0),
            (-0.045, 0.012),
            (-0.07, 0.016),
            (0.06, 0.0),
            (0.045, 0.012),
            (0.07, 0.016),
        ):
            p.ellipse(cx + dx, tip - 0.01 + dy, 0.004, 0.004, fill=_shade(skin, 0.7))
    mole = {"left": (-0.07, tip + 0.01), "right": (0.07, tip + 0.01), "chin": (0.02, my + 0.05)}
    if t["mole"] in mole:
        dx, y = mole[t["mole"]]
        p.ellipse(cx + dx * fw / 0.3, y, 0.006, 0.006, fill=(60, 35, 30))
    _glasses(p, t, cx, ey, gap, es)
    if t["earrings"] != "none":
        for side in (-1, 1):
            x, y = cx + side * fw * 0.5, ey + 0.02 + t["ear_size"]
            if t["earrings"] == "studs":
                p.ellipse(x, y, 0.008, 0.008, fill=(225, 200, 90))
            else:
                p.ellipse(x, y + 0.015, 0.014, 0.018, outline=(225, 200, 90), width=0.005)
    if accessory is not None:
        _accessory(p, accessory, cx, cy, fw, fh, ey, gap, es, tip, neck)

    # Framing: head tilt, scale and shift, as one affine map (output -> input coordinates).
    angle = math.radians(nuisance["angle"])
    scale = nuisance["scale"]
    ox, oy = nuisance["shift"][0] * s, nuisance["shift"][1] * s
    c = s / 2
    a, b = math.cos(angle) / scale, math.sin(angle) / scale
    coeffs = (a, b, c - a * (c + ox) - b * (c + oy), -b, a, c + b * (c + ox) - a * (c + oy))
    layer = layer.transform((s, s), Image.Transform.AFFINE, coeffs, Image.Resampling.BICUBIC)
    image = Image.alpha_composite(_background(s, nuisance, rng), layer).convert("RGB")
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
