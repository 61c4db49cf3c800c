"""The leaderboard as Markdown (for the repository and DVC) and as one self-contained HTML
page (for the Kubeflow UI's HTML viewer, which shows a single file: figures are inlined)."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from salmubench.report.leaderboard import PRECEDENCE, SCORES, display, label_text
from salmubench.report.paper import PAPER_METRICS

LEADERBOARD_METRICS = (
    "retfail",
    "retfail_r1",
    "genknow",
    "inter_id_sim",
    "intra_id_sim",
    "vis_id_int",
    "frag_sim",
)
HOW_TO_READ = (
    "Each unlearned model starts from the Compromised model, which memorised the forget set, "
    "and should end up like the Clean model, which never saw it. Efficacy metrics (RetFail, "
    "AssocStr, ACS, IdZSC, CoreAssoc) should fall to the Clean level; utility metrics "
    "(GenKnow, InterIdSim, IntraIdSim, VisIdInt, FragSim) should stay at the Compromised "
    "level. The paper names three ways to fail: ineffective (the method forgets little), "
    "over-generalised (it also erases the holdout personas and attributes it was not asked to "
    "forget, pushing their similarity towards or below the Clean level) and collapse (general "
    "knowledge, GenKnow, drops). A method can reach Clean-level RetFail and keep GenKnow yet "
    "be over-generalised; the paper reports that no published method avoids all three."
)
VERDICT_COLOURS = {
    "none": "#d8f0d8",
    "ineffective": "#fbe7b5",
    "over-generalised": "#e6d5f5",
    "collapse": "#f7c6c0",
    "several": "#f4b6a8",
    "borderline": "#fff4cc",
    "reference": "#eeeeee",
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


def fmt(x: Any, digits: int = 4, std: float | None = None) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        text = f"{x:.{digits}f}"
        return f"{text} ± {std:.{digits}f}" if std is not None else text
    return str(x)


def _budget(row: Mapping[str, Any]) -> str:
    return "—" if row["budget"] is None else f"{row['budget']:g}×"


def _seeds(row: Mapping[str, Any]) -> str:
    seeds = [s for s in row["seeds"] if s is not None]
    if len(row.get("worlds", ())) > 1:
        return f"{len(row['worlds'])} worlds × {len(seeds) // len(row['worlds']) or 1} seeds"
    return ", ".join(str(s) for s in seeds) if seeds else "—"


def interval_text(ci: Any, digits: int = 3) -> str:
    return "—" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _score_cell(row: Mapping[str, Any], name: str) -> str:
    """Mean and, where there is one, its confidence interval."""
    ci = row.get("scores_ci", {}).get(name)
    text = fmt(row["scores"][name], 3)
    return text if ci is None else f"{text} {interval_text(ci)}"


def verdict_text(row: Mapping[str, Any]) -> str:
    """The row's label first (its other failure modes in brackets), then borderline ones."""
    if row["rank"] is None:
        return "reference"
    verdicts = sorted(row["verdicts"], key=PRECEDENCE.index)
    parts = []
    if verdicts:
        others = f" (+ {', '.join(verdicts[1:])})" if len(verdicts) > 1 else ""
        parts.append(verdicts[0] + others)
    parts += [
        f"borderline {b['mode']} {interval_text(b['interval'])}" for b in row.get("borderline", ())
    ]
    text = "; ".join(parts) or "none"
    if row.get("interval_source") == "none":
        text += " (1 run: no interval)"
    return text


def _verdict_class(row: Mapping[str, Any]) -> str:
    if row["rank"] is None:
        return "reference"
    v = row["verdicts"]
    if not v:
        return "borderline" if row.get("borderline") else "none"
    return v[0] if len(v) == 1 else "several"


def _method(row: Mapping[str, Any]) -> str:
    return row["method"] or row["label"]


# --------------------------------------------------------------------------- tables as data


def leaderboard_table(board: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["rank", "method", "budget", "runs"]
    header += [display(n) for n in LEADERBOARD_METRICS] + [display(s) for s in SCORES]
    header.append("verdict")
    body = []
    for row in board["rows"]:
        cells = ["ref" if row["rank"] is None else str(row["rank"]), _method(row), _budget(row)]
        cells.append(_seeds(row))
        for name in LEADERBOARD_METRICS:
            cells.append(fmt(row["metrics"].get(name), std=row["std"].get(name)))
        for name in SCORES:
            cells.append(_score_cell(row, name))
        cells.append(verdict_text(row))
        body.append(cells)
    return header, body


def metrics_table(board: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    arrows = {"lower": "↓", "higher": "↑"}
    names = list(board["metrics"])
    header = ["model", "n"] + [
        f"{display(n)} {arrows[board['metrics'][n]['better']]}" for n in names
    ]
    body = [
        [row["label"], str(row["n"])]
        + [fmt(row["metrics"].get(n), std=row["std"].get(n)) for n in names]
        for row in board["rows"]
    ]
    return header, body


def paper_table(board: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["model", "paper row"]
    for name in PAPER_METRICS:
        header += [f"{display(name)} ours", f"{display(name)} paper"]
    header += ["label ours", "label paper", "agree"]
    paper = {p["name"]: p for p in board["paper"]["rows"]}
    agreement = board["paper"]["agreement"]["methods"]
    body, covered = [], set()
    for row in board["rows"]:
        p = paper.get(row["paper"]) if row["paper"] else None
        cells = [row["label"], p["name"] if p else "no paper row"]
        for name in PAPER_METRICS:
            cells += [fmt(row["metrics"].get(name), 3), fmt(p["metrics"][name], 3) if p else "—"]
        if p is not None:
            covered.add(p["name"])
        if row["rank"] is None:
            cells += ["reference", "reference", "—"]
        else:
            theirs = row.get("paper_label", "—")
            agree = agreement.get(row["method"], {}).get("agree", "—")
            cells += [verdict_text(row), "—" if theirs == "—" else label_text(theirs), agree]
        body.append(cells)
    for name, p in paper.items():
        if name not in covered:
            cells = [f"({p['method']}: not run)", name]
            for metric in PAPER_METRICS:
                cells += ["—", fmt(p["metrics"][metric], 3)]
            cells += ["—", label_text(p["paper_label"]), "—"]
            body.append(cells)
    return header, body


def paper_scores_table(board: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["paper row", "method", *(display(s) for s in SCORES)]
    header += ["our rules (label first)", "the paper's label", "agree"]
    body = []
    for p in board["paper"]["rows"]:
        if p["method"] is None:
            body.append([p["name"], "—", *(fmt(p["scores"][s], 3) for s in SCORES),
                         "reference", "reference", "—"])  # fmt: skip
            continue
        ours = sorted(p["verdicts"], key=PRECEDENCE.index)
        text = ", ".join(ours) or "none"
        agree = "yes" if p["label"] == p["paper_label"] else "no"
        body.append([p["name"], p["method"], *(fmt(p["scores"][s], 3) for s in SCORES), text,
                     label_text(p["paper_label"]), agree])  # fmt: skip
    return header, body


def worlds_table(board: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per world: how much Compromised memorised, and its GenKnow against Clean's."""
    header = ["world", "dataset", "RetFail Clean", "RetFail Compromised", "ratio",
              "GenKnow Clean", "GenKnow Compromised", "difference"]  # fmt: skip
    body = []
    for w in board["worlds"]:
        ratio = "—" if w["retfail_ratio"] is None else f"{w['retfail_ratio']:.0f}×"
        clean, compromised = w["clean"], w["compromised"]
        body.append([w["name"], w["dataset"][:12], fmt(clean["retfail"]),
                     fmt(compromised["retfail"]), ratio, fmt(clean["genknow"]),
                     fmt(compromised["genknow"]), f"{w['genknow_difference']:+.4f}"])  # fmt: skip
    return header, body


def sweep_table(tuning: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["method", "lr", *(display(s) for s in SCORES), "chosen"]
    body = []
    for method, rows in tuning["results"].items():
        for r in rows:
            mark = "←" if r["lr"] == tuning["chosen"][method] else ""
            body.append([method, f"{r['lr']:g}", *(fmt(r["scores"][s], 3) for s in SCORES), mark])
    return header, body


# --------------------------------------------------------------------------- Markdown


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(_md_cell(c) for c in cells) + " |" for cells in body]
    return lines


def _provenance(board: Mapping[str, Any]) -> list[str]:
    return [f"{e['path']} ({e['row']}, digest {e['digest'][:12]})" for e in board["evals"]]


def method_code_lines(board: Mapping[str, Any]) -> list[str]:
    """Where each method from outside the package came from, and the sha256 of its code
    (leaderboard.json rows carry `method_code` for every method whose models record it)."""
    rows = [r for r in board["rows"] if (r.get("method_code") or {}).get("origin", "built-in")
            != "built-in"]  # fmt: skip
    if not rows:
        return []
    lines = ["Methods from outside the package:", ""]
    for r in rows:
        c = r["method_code"]
        lines.append(f"- {r['label']}: {c['origin']} ({c['module']}), sha256 `{c['code_digest']}`")
    return [*lines, ""]


def dataset_text(board: Mapping[str, Any]) -> str:
    if board["dataset"]:
        return f"Dataset digest `{board['dataset']}`."
    return f"{len(board['worlds'])} worlds: " + ", ".join(
        f"{w['name']} (dataset `{w['dataset'][:12]}`)" for w in board["worlds"]
    )


def uncertainty_text(board: Mapping[str, Any]) -> str:
    return (
        "Methods are ranked with no verdict first, then by fewer verdicts, then by fewer "
        "borderline calls, then by forgetting. Each score is the mean over independent "
        "units: the worlds (each a dataset with its own Clean and Compromised model; a method's "
        "seeds are averaged inside its world) when there are several, else the unlearning seeds. "
        f"Brackets are {board['confidence']:.0%} Student-t confidence intervals over those "
        "units; ± is their sample standard deviation. A failure mode is stated only when its "
        "interval clears the threshold; otherwise the cell says borderline with the interval."
    )


def agreement_text(board: Mapping[str, Any]) -> str:
    a = board["paper"]["agreement"]
    text = (
        f"The paper's stated labels are reproduced for {a['reproduced']} of the "
        f"{a['labelled']} labelled methods that were run"
    )
    extra = [f"{a[k]} {k}" for k in ("partly", "borderline") if a.get(k)]
    return text + (f" ({', '.join(extra)})." if extra else ".")


def markdown(
    board: Mapping[str, Any],
    title: str,
    figures: Mapping[str, str],
    tuning: Mapping[str, Any] | None = None,
) -> str:
    lines = [f"# {title}", "", dataset_text(board), ""]
    lines += ["## How to read this", "", HOW_TO_READ, ""]
    lines += ["## Verdicts", "", "A method is judged"]
    lines += [f"- {rule};" for rule in board["rules"].values()]
    lines += ["", uncertainty_text(board), ""]
    if board["warnings"]:
        lines += ["**Warnings:**", ""] + [f"- {w}" for w in board["warnings"]] + [""]
    lines += ["## Leaderboard", "", *_md_table(*leaderboard_table(board)), ""]
    notes = [f"- {row['label']}: {n}" for row in board["rows"] for n in row["notes"]]
    if notes:
        lines += ["Notes:", "", *notes, ""]
    lines += method_code_lines(board)
    lines += ["## Worlds", "", *_md_table(*worlds_table(board)), ""]
    lines += ["## All metrics", "", *_md_table(*metrics_table(board)), ""]
    lines += [
        f"## Ours vs paper ({board['paper']['source']})",
        "",
        "Absolute values depend on the model and data scale; the labels are comparable. "
        + agreement_text(board),
        "",
        *_md_table(*paper_table(board)),
        "",
        "The paper's rows judged by the same rules, beside the label the paper states:",
        "",
        *_md_table(*paper_scores_table(board)),
        "",
    ]
    if tuning:
        lines += [
            "## Tuning (validation world)",
            "",
            f"Settings were chosen on {tuning['world']['name']} (dataset "
            f"`{tuning['world']['dataset'][:12]}`), which no leaderboard world is. Rule, fixed "
            f"before looking: {tuning['rule']}",
            "",
            *_md_table(*sweep_table(tuning)),
            "",
        ]
    lines += ["## Figures", ""]
    for name, caption in figures.items():
        lines += [f"- `{name}`: {caption}", "", f"  ![{name}]({name})", ""]
    lines += ["## Inputs", "", *(f"- {p}" for p in _provenance(board)), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- HTML


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
    classes = [_verdict_class(row) for row in board["rows"]]
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
    parts += [
        "<h2>Leaderboard</h2>",
        _html_table(header, body, classes, left=4, verdict_cols=(len(header) - 1,)),
    ]
    notes = [f"{row['label']}: {n}" for row in board["rows"] for n in row["notes"]]
    if notes:
        parts += ["<p>Notes:</p><ul>", *(f"<li>{e(n)}</li>" for n in notes), "</ul>"]
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
    parts += ["<h2>Inputs</h2><ul>", *(f"<li>{e(p)}</li>" for p in _provenance(board))]
    parts += ["</ul>", "</body></html>", ""]
    return "\n".join(parts)
