"""The rare concepts of the fragile set (`vocab.ACCESSORIES`), each drawn by its own
function over the face it decorates: a table, `DRAW`, from name to painter."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from salmubench.vocab import ACCESSORIES


@dataclass(frozen=True)
class Face:
    """Where a portrait's face lies (unit coordinates): what an accessory is placed by."""

    cx: float  # centre x
    cy: float  # centre y
    fw: float  # face width
    fh: float  # face height
    ey: float  # eye line
    gap: float  # half the distance between the eyes
    es: float  # eye size
    tip: float  # nose tip
    neck: float  # top of the neck

    @property
    def top(self) -> float:
        return self.cy - self.fh * 0.5


def _eyepatch(p: Any, f: Face) -> None:
    p.line(
        [(f.cx - f.fw * 0.5, f.ey - f.fh * 0.2), (f.cx + f.fw * 0.5, f.ey + f.fh * 0.05)],
        (15, 15, 15),
        0.01,
    )
    p.ellipse(f.cx - f.gap, f.ey, f.es * 1.9, f.es * 1.6, fill=(15, 15, 15))


def _party_hat(p: Any, f: Face) -> None:
    p.poly(
        [
            (f.cx - f.fw * 0.3, f.top + f.fh * 0.05),
            (f.cx + f.fw * 0.3, f.top + f.fh * 0.05),
            (f.cx + f.fw * 0.05, f.top - f.fh * 0.45),
        ],
        (230, 60, 160),
    )
    p.line(
        [(f.cx - f.fw * 0.18, f.top - f.fh * 0.1), (f.cx + f.fw * 0.2, f.top - f.fh * 0.08)],
        (250, 230, 60),
        0.012,
    )
    p.ellipse(
        f.cx + f.fw * 0.05, f.top - f.fh * 0.45, f.fw * 0.07, f.fw * 0.07, fill=(250, 230, 60)
    )


def _monocle(p: Any, f: Face) -> None:
    p.ellipse(f.cx + f.gap, f.ey, f.es * 1.9, f.es * 1.9, outline=(212, 175, 55), width=0.012)
    p.line(
        [(f.cx + f.gap + f.es * 1.5, f.ey + f.es * 1.2), (f.cx + f.fw * 0.45, f.cy + f.fh * 0.35)],
        (212, 175, 55),
        0.006,
    )


def _flower_crown(p: Any, f: Face) -> None:
    colours = ((240, 80, 120), (250, 220, 70), (250, 250, 250), (170, 90, 220))
    for i in range(7):
        a = math.pi * (1.08 + i * 0.14)
        p.ellipse(
            f.cx + math.cos(a) * f.fw * 0.5,
            f.cy - f.fh * 0.12 + math.sin(a) * f.fh * 0.42,
            f.fw * 0.08,
            f.fw * 0.08,
            fill=colours[i % 4],
        )


def _bow_tie(p: Any, f: Face) -> None:
    p.poly(
        [(f.cx, f.neck), (f.cx - 0.08, f.neck - 0.035), (f.cx - 0.08, f.neck + 0.035)],
        (200, 20, 30),
    )
    p.poly(
        [(f.cx, f.neck), (f.cx + 0.08, f.neck - 0.035), (f.cx + 0.08, f.neck + 0.035)],
        (200, 20, 30),
    )
    p.ellipse(f.cx, f.neck, 0.015, 0.015, fill=(140, 10, 20))


def _face_paint(p: Any, f: Face) -> None:
    for s in (-1, 1):
        for k in range(3):
            y = f.ey + f.es * 2.2 + k * f.fh * 0.06
            p.line(
                [(f.cx + s * f.fw * 0.44, y), (f.cx + s * f.fw * 0.22, y + f.fh * 0.02)],
                (240, 120, 20) if k % 2 == 0 else (20, 20, 20),
                0.012,
            )


def _halo(p: Any, f: Face) -> None:
    p.ellipse(
        f.cx, f.top - f.fh * 0.12, f.fw * 0.4, f.fh * 0.07, outline=(255, 225, 60), width=0.014
    )


def _clown_nose(p: Any, f: Face) -> None:
    p.ellipse(f.cx, f.tip - 0.005, 0.028, 0.028, fill=(225, 20, 30))


def _crown(p: Any, f: Face) -> None:
    base = f.top + f.fh * 0.04
    pts = [(f.cx - f.fw * 0.34, base)]
    for i in range(5):
        x = f.cx - f.fw * 0.34 + i * f.fw * 0.17
        pts += [(x, base - f.fh * 0.12), (x + f.fw * 0.085, base - f.fh * 0.26)]
    pts += [(f.cx + f.fw * 0.34, base - f.fh * 0.12), (f.cx + f.fw * 0.34, base)]
    p.poly(pts, (222, 184, 40))


def _headphones(p: Any, f: Face) -> None:
    p.arc(f.cx, f.cy - f.fh * 0.05, f.fw * 0.6, f.fh * 0.55, 180, 360, (40, 40, 45), 0.02)
    for s in (-1, 1):
        p.rect(
            f.cx + s * f.fw * 0.6 - f.fw * 0.09,
            f.cy - f.fh * 0.12,
            f.cx + s * f.fw * 0.6 + f.fw * 0.09,
            f.cy + f.fh * 0.12,
            fill=(40, 40, 45),
            radius=f.fw * 0.04,
        )


def _star_sticker(p: Any, f: Face) -> None:
    sx, sy, r = f.cx - f.fw * 0.28, f.ey + f.es * 2.6, f.fw * 0.1
    pts = [
        (
            sx + math.cos(math.pi / 2 + k * math.pi / 5) * (r if k % 2 == 0 else r * 0.45),
            sy - math.sin(math.pi / 2 + k * math.pi / 5) * (r if k % 2 == 0 else r * 0.45),
        )
        for k in range(10)
    ]
    p.poly(pts, (250, 210, 20))


def _feather(p: Any, f: Face) -> None:
    p.poly(
        [
            (f.cx + f.fw * 0.3, f.top + f.fh * 0.1),
            (f.cx + f.fw * 0.52, f.top - f.fh * 0.42),
            (f.cx + f.fw * 0.42, f.top + f.fh * 0.08),
        ],
        (20, 170, 160),
    )


# `p` is the portrait's pen (`drawing.Pen`).
DRAW: dict[str, Callable[[Any, Face], None]] = {
    "eyepatch": _eyepatch,
    "party_hat": _party_hat,
    "monocle": _monocle,
    "flower_crown": _flower_crown,
    "bow_tie": _bow_tie,
    "face_paint": _face_paint,
    "halo": _halo,
    "clown_nose": _clown_nose,
    "crown": _crown,
    "headphones": _headphones,
    "star_sticker": _star_sticker,
    "feather": _feather,
}


def draw(p: Any, name: str, face: Face) -> None:
    """Paint accessory `name` on `face`."""
    if name not in DRAW:
        raise ValueError(f"unknown accessory {name!r}; valid: {ACCESSORIES}")
    DRAW[name](p, face)
