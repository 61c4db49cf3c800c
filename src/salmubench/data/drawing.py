"""The painter of a portrait's parts, in unit coordinates on a supersampled canvas: the pen,
background, torso, hair, head, eyes, nose, mouth, facial hair and glasses (`portraits.py`
composes them; accessories are `accessories.py`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from salmubench.data.looks import (
    BACKGROUNDS,
    BROWS,
    CLOTHING_COLOURS,
    EYE_COLOURS,
    FRAME_COLOURS,
    LIPS,
    RGB,
)


def shade(c: RGB, f: float) -> RGB:
    return tuple(max(0, min(255, int(v * f))) for v in c)  # type: ignore[return-value]


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(x * (1 - t) + y * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


class Pen:
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


def background(s: int, n: dict[str, Any], rng: np.random.Generator) -> Image.Image:
    a = np.array(BACKGROUNDS[n["background"]], dtype=np.float32)
    b = np.array(BACKGROUNDS[n["background_second"]], dtype=np.float32)
    kind = n["background_kind"]
    t = np.linspace(0.0, 1.0, s, dtype=np.float32)
    # The weight of the second colour. Only "spots" varies along both axes: the others are
    # one row or one column (or one value), blended once and repeated, which gives the same
    # bytes as blending every pixel.
    if kind == "solid":
        w = np.zeros((1, 1), np.float32)
    elif kind == "vertical":
        w = t[:, None] * 0.6
    elif kind == "horizontal":
        w = t[None, :] * 0.6
    elif kind == "split":
        w = np.zeros((1, s), np.float32)
        w[:, : int(s * rng.uniform(0.2, 0.45))] = 0.45
    elif kind == "stripes":
        period = max(2, int(s * rng.uniform(0.08, 0.2)))
        w = ((np.arange(s) // period) % 2).astype(np.float32)[None, :] * 0.35
    else:  # spots
        w = np.zeros((s, s), np.float32)
        yy, xx = np.mgrid[0:s, 0:s]
        for _ in range(6):
            cx, cy, r = rng.uniform(0, s), rng.uniform(0, s), rng.uniform(0.05, 0.14) * s
            w[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = 0.4
    img = a[None, None, :] * (1 - w[..., None]) + b[None, None, :] * w[..., None]
    pixels = np.ascontiguousarray(np.broadcast_to(img.astype(np.uint8), (s, s, 3)))
    return Image.fromarray(pixels, "RGB").convert("RGBA")


def torso(p: Pen, cx: float, top: float, n: dict[str, Any], skin: RGB) -> None:
    colour = CLOTHING_COLOURS[n["clothing_colour"]]
    second = CLOTHING_COLOURS[n["clothing_second"]]
    if second == colour:
        second = shade(colour, 0.6)
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
        p.ellipse(cx, top + 0.01, 0.13, 0.05, fill=shade(colour, 0.7))
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


def hair_back(
    p: Pen, t: dict[str, Any], cx: float, cy: float, fw: float, fh: float, hair: RGB
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


def hair_top(
    p: Pen, t: dict[str, Any], cx: float, cy: float, fw: float, fh: float, hair: RGB, skin: RGB
) -> None:
    style = t["hair_style"]
    if style == "bald":
        return
    side = t["part_side"]
    top = cy - fh * 0.5
    if style == "buzz":
        p.chord(cx, cy - fh * 0.2, fw * 0.52, fh * 0.33, 180, 360, fill=mix(hair, skin, 0.45))
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
            fill=shade(hair, 0.7),
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
            fill=shade(hair, 0.8),
            width=0.005,
        )


def head(p: Pen, t: dict[str, Any], cx: float, cy: float, fw: float, fh: float, skin: RGB) -> None:
    shape = t["face_shape"]
    if shape == "square":
        p.rect(cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2, fill=skin, radius=fw * 0.28)
    elif shape == "heart":
        p.ellipse(cx, cy - fh * 0.06, fw / 2, fh * 0.44, fill=skin)
        p.poly([(cx - fw * 0.47, cy), (cx + fw * 0.47, cy), (cx, cy + fh / 2)], fill=skin)
    else:
        p.ellipse(cx, cy, fw / 2, fh / 2, fill=skin)


def mouth(p: Pen, t: dict[str, Any], n: dict[str, Any], cx: float, my: float, mw: float) -> None:
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


def facial_hair(
    p: Pen, t: dict[str, Any], cx: float, cy: float, fw: float, fh: float, my: float, hair: RGB
) -> None:
    kind = t["facial_hair"]
    if kind == "stubble":
        p.chord(cx, cy + fh * 0.1, fw * 0.46, fh * 0.4, 10, 170, fill=(*shade(hair, 0.9), 90))
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


def eyes(
    p: Pen,
    t: dict[str, Any],
    n: dict[str, Any],
    cx: float,
    ey: float,
    gap: float,
    es: float,
    hair: RGB,
) -> None:
    iris = EYE_COLOURS[t["eye_colour"]]
    brow_colour = shade(hair, 0.75) if t["hair_style"] != "bald" else (60, 45, 40)
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


def nose(p: Pen, t: dict[str, Any], cx: float, ey: float, skin: RGB) -> float:
    dark = shade(skin, 0.72)
    length = t["nose_len"]
    tip = ey + length + 0.02
    kind = t["nose"]
    if kind == "button":
        p.ellipse(cx, tip - 0.01, 0.016, 0.013, fill=shade(skin, 0.85))
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


def glasses(p: Pen, t: dict[str, Any], cx: float, ey: float, gap: float, es: float) -> None:
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
