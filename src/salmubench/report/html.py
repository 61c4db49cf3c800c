"""The report as one self-contained HTML page: the tables of `render.py` with verdict
colours, the figures inlined."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from salmubench.report.render import (
    HOW_TO_READ,
    METHOD_CODE_TITLE,
    agreement_text,
    attack_settings_lines,
    dataset_text,
    leaderboard_table,
    method_code_items,
    metrics_table,
    paper_scores_table,
    paper_table,
    provenance,
    recovery_table,
    robustness_text,
    sweep_table,
    uncertainty_text,
    verdict_class,
    worlds_table,
)

VERDICT_COLOURS = {
    "none": "#d8f0d8",
    "ineffective": "#fbe7b5",
    "over-generalised": "#e6d5f5",
    "collapse": "#f7c6c0",
    "several": "#f4b6a8",
    "borderline": "#fff4cc",
    "reference": "#eeeeee",
    "robust": "#d8f0d8",
    "not robust": "#f7c6c0",
}


CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif;
       margin: 1.5em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
tr.ref td { background: #fafafa; font-style: italic; }
.muted { color: #777; font-size: 0.85em; } figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
code { font-size: 0.9em; }
"""


def _html_table(
    header: Sequence[str],
    body: Sequence[Sequence[str]],
    verdict_classes: Sequence[str] | None = None,
    left: int = 2,
    verdict_cols: Sequence[int] = (),
) -> str:
    e = html.escape
    out = ["<table>", "<tr>"]
    out += [
        f'<th class="l">{e(h)}</th>' if i < left else f"<th>{e(h)}</th>"
        for i, h in enumerate(header)
    ]
    out.append("</tr>")
    for r, cells in enumerate(body):
        ref = verdict_classes is not None and verdict_classes[r] == "reference"
        out.append('<tr class="ref">' if ref else "<tr>")
        for i, c in enumerate(cells):
            if i in verdict_cols:
                colour = VERDICT_COLOURS.get(_class_of_text(c), "")
                style = f' style="background:{colour}"' if colour else ""
                out.append(f'<td class="l"{style}>{e(c)}</td>')
            elif i < left:
                out.append(f'<td class="l">{e(c)}</td>')
            else:
                out.append(f"<td>{e(c)}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "\n".join(out)


def _class_of_text(text: str) -> str:
    text = text.removesuffix(" (1 run: no interval)")
    if text in VERDICT_COLOURS:
        return text
    if text.startswith("not robust"):
        return "not robust"
    if text.startswith("borderline"):
        return "borderline"
    head = text.split(" (+")[0].split(";")[0]
    return "several" if "(+" in text or "," in head else head if head in VERDICT_COLOURS else ""


def page(
    board: Mapping[str, Any],
    title: str,
    figures: Mapping[str, str],
    folder: str | Path,
    tuning: Mapping[str, Any] | None = None,
) -> str:
    """The report as one HTML page; figures are read from `folder` and inlined as base64."""
    e = html.escape
    folder = Path(folder)
    classes = [verdict_class(row) for row in board["rows"]]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="muted">{e(dataset_text(board))}</p>',
        "<h2>How to read this</h2>",
        f"<p>{e(HOW_TO_READ)}</p>",
        "<p>A method is judged</p><ul>",
        *(f"<li>{e(rule)};</li>" for rule in board["rules"].values()),
        "</ul>",
        f"<p>{e(uncertainty_text(board))}</p>",
    ]
    if board["warnings"]:
        parts += ["<p><strong>Warnings:</strong></p><ul>"]
        parts += [f"<li>{e(w)}</li>" for w in board["warnings"]] + ["</ul>"]
    header, body = leaderboard_table(board)
    verdict_cols = [header.index(c) for c in ("verdict", "robust") if c in header]
    parts += [
        "<h2>Leaderboard</h2>",
        _html_table(header, body, classes, left=4, verdict_cols=verdict_cols),
    ]
    notes = [f"{row['label']}: {n}" for row in board["rows"] for n in row["notes"]]
    if notes:
        parts += ["<p>Notes:</p><ul>", *(f"<li>{e(n)}</li>" for n in notes), "</ul>"]
    if items := method_code_items(board, quote=""):
        parts += [f"<p>{e(METHOD_CODE_TITLE)}</p><ul>", *(f"<li>{e(i)}</li>" for i in items)]
        parts.append("</ul>")
    if "attacks" in board:
        parts += [
            "<h2>Robustness to relearning attacks</h2>",
            f"<p>{e(robustness_text(board))}</p>",
            _html_table(*recovery_table(board), left=2),
            "<p>Attack settings:</p><ul>",
            *(f"<li>{e(line)}</li>" for line in attack_settings_lines(board)),
            "</ul>",
        ]
    parts += ["<h2>Worlds</h2>", _html_table(*worlds_table(board), left=2)]
    parts += ["<h2>All metrics</h2>", _html_table(*metrics_table(board), classes, left=1)]
    header, body = paper_table(board)
    n = len(header)
    parts += [
        f"<h2>Ours vs paper ({e(board['paper']['source'])})</h2>",
        "<p>Absolute values depend on the model and data scale; the labels are comparable. "
        f"{e(agreement_text(board))}</p>",
        _html_table(header, body, left=2, verdict_cols=(n - 3, n - 2)),
        "<p>The paper's rows judged by the same rules, beside the label the paper states:</p>",
    ]
    header, body = paper_scores_table(board)
    n = len(header)
    parts.append(_html_table(header, body, left=2, verdict_cols=(n - 3, n - 2)))
    if tuning:
        parts += [
            "<h2>Tuning (validation world)</h2>",
            f"<p>Settings were chosen on {e(tuning['world']['name'])}, which no leaderboard "
            f"world is. Rule, fixed before looking: {e(tuning['rule'])}</p>",
            _html_table(*sweep_table(tuning), left=1),
        ]
    parts.append("<h2>Figures</h2>")
    for name, caption in figures.items():
        data = base64.b64encode((folder / name).read_bytes()).decode("ascii")
        parts += [
            "<figure>",
            f'<img alt="{e(name)}" src="data:image/png;base64,{data}">',
            f"<figcaption>{e(name)}: {e(caption)}</figcaption>",
            "</figure>",
        ]
    parts += ["<h2>Inputs</h2><ul>", *(f"<li>{e(p)}</li>" for p in provenance(board))]
    parts += ["</ul>", "</body></html>", ""]
    return "\n".join(parts)
