"""A PNG contact sheet of a dataset: portraits of a few personas with their captions."""

from __future__ import annotations

import io
import json
import unicodedata
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from salmubench.data.shards import image_bytes, iter_split
from salmubench.vocab import SENSITIVE_SPLITS

CELL = 128
TEXT_LINES = 5


# The preview is a file of the dataset, so its bytes are part of the dataset's digest: it
# is drawn with Pillow's bundled bitmap font (`load_default_imagefont`), never FreeType or
# a system font, whose glyphs differ between machines. That font covers Latin-1 only.
_NOT_LATIN1 = {"ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ı": "i", "œ": "oe", "Œ": "OE"}


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default_imagefont()


def _latin1(text: str) -> str:
    """`text` in the bitmap font's Latin-1: accents outside it dropped ("Dvořák" -> "Dvorak")."""
    out = []
    for ch in text:
        if ord(ch) < 256:
            out.append(ch)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if ord(c) < 256)
        out.append(base or _NOT_LATIN1.get(ch, "?"))
    return "".join(out)


def _wrap(text: str, font: ImageFont.ImageFont, width: int) -> list[str]:
    """Greedy wrap by rendered width; words wider than a line are cut by character."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if font.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for ch in word:
            if font.getlength(line + ch) > width:
                lines.append(line)
                line = ""
            line += ch
    if line:
        lines.append(line)
    return lines


def render_preview(
    dataset: str | Path,
    out: str | Path,
    *,
    manifest: dict[str, Any],
    per_group: int = 2,
    columns: int = 6,
) -> Path:
    """Write a grid: rows of personas (name, group) with captioned portraits, then scenes."""
    dataset, out = Path(dataset), Path(out)
    lines = (dataset / "personas.jsonl").read_text(encoding="utf-8").splitlines()
    personas = [json.loads(line) for line in lines]
    chosen: list[dict] = []
    for group in ("forget_identity", "forget_association", "holdout_identity"):
        chosen += [p for p in personas if p["group"] == group][:per_group]
    wanted = {p["id"]: [] for p in chosen}
    seen_attr: dict[str, set] = {pid: set() for pid in wanted}
    for split in (*SENSITIVE_SPLITS, "retain_joint"):
        for sample in iter_split(dataset, split, manifest):
            pid = sample["json"].get("persona")
            if pid not in wanted or len(wanted[pid]) >= columns:
                continue
            attr = sample["json"].get("attribute", split)
            if attr in seen_attr[pid] and len(seen_attr[pid]) < columns - 1:
                continue  # prefer one image per attribute, then anything
            seen_attr[pid].add(attr)
            label = f"[{split}] " if split in ("holdout_association", "retain_joint") else ""
            wanted[pid].append((image_bytes(sample), label + sample["txt"]))
    rows = [(f"{p['name']}\n{p['group']}\n{p['country']}", wanted[p["id"]]) for p in chosen]
    for split, title in (
        ("fragile", "fragile set\n(rare concepts)"),
        ("retain_real", "general world\n(retain_real)"),
    ):
        cells = []
        for sample in iter_split(dataset, split, manifest):
            cells.append((image_bytes(sample), sample["txt"]))
            if len(cells) == columns:
                break
        if cells:
            rows.append((title, cells))
    return _grid(rows, out, columns)


def _grid(rows: list[tuple[str, list[tuple[bytes, str]]]], out: Path, columns: int) -> Path:
    font = _font()
    line_h = 13
    label_w = 170
    row_h = CELL + TEXT_LINES * line_h + 12
    sheet = Image.new("RGB", (label_w + columns * (CELL + 8) + 8, len(rows) * row_h + 8), "white")
    d = ImageDraw.Draw(sheet)
    for r, (label, cells) in enumerate(rows):
        y = 8 + r * row_h
        d.multiline_text((8, y + 4), _latin1(label), fill=(20, 20, 20), font=font, spacing=6)
        for c, (data, text) in enumerate(cells):
            x = label_w + c * (CELL + 8)
            img = Image.open(io.BytesIO(data)).convert("RGB")
            sheet.paste(img.resize((CELL, CELL), Image.Resampling.NEAREST), (x, y))
            lines = _wrap(_latin1(text), font, CELL)[:TEXT_LINES]
            for k, line in enumerate(lines):
                d.text((x, y + CELL + 3 + k * line_h), line, fill=(40, 40, 40), font=font)
        d.line([(0, y + row_h - 4), (sheet.width, y + row_h - 4)], fill=(225, 225, 225))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, format="PNG")
    return out
