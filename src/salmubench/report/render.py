"""The leaderboard as Markdown (for the repository and DVC) and as one self-contained HTML
page (for the Kubeflow UI's HTML viewer, which shows a single file: figures are inlined)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    if not seeds:
        return "—"
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(str(s) for s in seeds)


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


def verdict_class(row: Mapping[str, Any]) -> str:
    if row["rank"] is None:
        return "reference"
    v = row["verdicts"]
    if not v:
        return "borderline" if row.get("borderline") else "none"
    return v[0] if len(v) == 1 else "several"


def _method(row: Mapping[str, Any]) -> str:
    return row["method"] or row["label"]


NOT_RECORDED = "not recorded"  # a model from before manifests carried `method_code`


def code_cell(row: Mapping[str, Any]) -> str:
    """Where the row's method code comes from and its sha256, short (the leaderboard's
    `code` column; `method_code_lines` gives the whole of both)."""
    if row["rank"] is None:
        return "—"
    code = row.get("method_code")
    if not code:
        return NOT_RECORDED
    origin = code["origin"]
    if origin.startswith("file "):  # a path: its name says enough in a table cell
        origin = "file " + origin.removeprefix("file ").rsplit("/", 1)[-1]
    return f"{origin}, sha256 {code['code_digest'][:12]}"


# --------------------------------------------------------------------------- tables as data


def robust_text(row: Mapping[str, Any]) -> str:
    """The "robust" cell: the verdict, and the interval(s) that decide it."""
    if row["rank"] is None:
        return "—"
    r = row.get("robust")
    if r is None:
        return "not attacked"
    if r["verdict"] is None:
        return "no recovery gap defined"
    if r["verdict"] == "not robust":
        gap = row["attacks"][r["worst"]]["retfail"]
        text = f"not robust: {r['worst']} {fmt(gap['mean'], 3)}"
        text += f" {interval_text(gap['ci'])}" if gap["ci"] is not None else ""
    elif r["verdict"] == "borderline":
        text = "borderline " + "; ".join(
            f"{b['attack']} {interval_text(b['interval'])}" for b in r["borderline"]
        )
    else:
        text = "robust"
    return text + (" (1 run: no interval)" if r["no_interval"] else "")


def _gap_cell(row: Mapping[str, Any], attack: str, gap: str = "retfail") -> str:
    summary = row.get("attacks", {}).get(attack)
    if row["rank"] is None or summary is None:
        return "—"
    g = summary[gap]
    return fmt(g["mean"], 3) + (f" {interval_text(g['ci'])}" if g["ci"] is not None else "")


def leaderboard_table(board: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    attacks = board.get("attacks", {}).get("names", [])
    header = ["rank", "method", "budget", "runs"]
    header += [display(n) for n in LEADERBOARD_METRICS] + [display(s) for s in SCORES]
    header += ["verdict"]
    if "attacks" in board:
        header += ["robust", *(f"{a} gap" for a in attacks)]
    header += ["code"]
    body = []
    for row in board["rows"]:
        cells = ["ref" if row["rank"] is None else str(row["rank"]), _method(row), _budget(row)]
        cells.append(_seeds(row))
        for name in LEADERBOARD_METRICS:
            cells.append(fmt(row["metrics"].get(name), std=row["std"].get(name)))
        for name in SCORES:
            cells.append(_score_cell(row, name))
        cells.append(verdict_text(row))
        if "attacks" in board:
            cells += [robust_text(row), *(_gap_cell(row, a) for a in attacks)]
        cells.append(code_cell(row))
        body.append(cells)
    return header, body


def recovery_table(board: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per ranked row and attack: the recovery gaps (mean ± sd [interval]) over the row's
    units, and the sweep point that was worst for each run."""
    header = ["method", "attack", "runs", "RetFail gap", "AssocStr gap", "worst point per run"]
    body = []
    for row in board["rows"]:
        for attack, s in row.get("attacks", {}).items():
            cells = [row["label"], attack, _units_text(s)]
            for gap in ("retfail", "assoc_str"):
                g = s[gap]
                text = fmt(g["mean"], 3, std=g["std"])
                cells.append(text + (f" {interval_text(g['ci'])}" if g["ci"] is not None else ""))
            cells.append("; ".join(f"{p['world']} s{p['seed']}: {p['point']}"
                                   for p in s["per_seed"]))  # fmt: skip
            body.append(cells)
    return header, body


def _units_text(summary: Mapping[str, Any]) -> str:
    n, worlds = summary["n"], len(summary["worlds"])
    if summary["interval_source"] == "worlds":
        return f"{worlds} worlds ({n} runs)"
    return f"{n} run{'s' if n != 1 else ''}, 1 world"


def robustness_text(board: Mapping[str, Any]) -> str:
    a = board["attacks"]
    return (
        "Recovery gap: the share of the memorised Compromised-Clean RetFail gap that a "
        "relearning attack restores on the unlearned model beyond what the same attack gives "
        "Clean (0 = nothing beyond Clean, 1 = all of it); each run's score is the worst case "
        "over the attack's sweep, its seeds are averaged inside its world, and the mean, ± sd "
        "and interval are taken over the same units as the other scores. Rule, fixed before "
        f"the table was seen: {a['rule']}."
    )


def attack_settings_lines(board: Mapping[str, Any]) -> list[str]:
    return [f"{name}: {', '.join(f'{k}={v}' for k, v in sorted(cfg.items()))}"
            for name, cfg in board["attacks"]["settings"].items()]  # fmt: skip


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


def md_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(_md_cell(c) for c in cells) + " |" for cells in body]
    return lines


def provenance(board: Mapping[str, Any]) -> list[str]:
    return [f"{e['path']} ({e['row']}, digest {e['digest'][:12]})" for e in board["evals"]]


METHOD_CODE_TITLE = "Method code (origin, defining module, sha256 of the file that defines it):"


def method_code_items(board: Mapping[str, Any], quote: str = "`") -> list[str]:
    """Each ranked row's method code, built-in or not: where it came from and the sha256 of
    the file defining its class (leaderboard.json rows carry it as `method_code`)."""
    items = []
    for r in board["rows"]:
        if r["rank"] is None:
            continue
        c = r.get("method_code")
        text = (f"{c['origin']} ({c['module']}), sha256 {quote}{c['code_digest']}{quote}" if c
                else f"{NOT_RECORDED} (its models predate code digests in manifests)")  # fmt: skip
        items.append(f"{r['label']}: {text}")
    return items


def method_code_lines(board: Mapping[str, Any]) -> list[str]:
    items = method_code_items(board)
    return [METHOD_CODE_TITLE, "", *(f"- {i}" for i in items), ""] if items else []


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
    lines += ["## Leaderboard", "", *md_table(*leaderboard_table(board)), ""]
    notes = [f"- {row['label']}: {n}" for row in board["rows"] for n in row["notes"]]
    if notes:
        lines += ["Notes:", "", *notes, ""]
    lines += method_code_lines(board)
    if "attacks" in board:
        lines += ["## Robustness to relearning attacks", "", robustness_text(board), ""]
        lines += [*md_table(*recovery_table(board)), "", "Attack settings:", ""]
        lines += [f"- {line}" for line in attack_settings_lines(board)] + [""]
    lines += ["## Worlds", "", *md_table(*worlds_table(board)), ""]
    lines += ["## All metrics", "", *md_table(*metrics_table(board)), ""]
    lines += [
        f"## Ours vs paper ({board['paper']['source']})",
        "",
        "Absolute values depend on the model and data scale; the labels are comparable. "
        + agreement_text(board),
        "",
        *md_table(*paper_table(board)),
        "",
        "The paper's rows judged by the same rules, beside the label the paper states:",
        "",
        *md_table(*paper_scores_table(board)),
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
            *md_table(*sweep_table(tuning)),
            "",
        ]
    lines += ["## Figures", ""]
    for name, caption in figures.items():
        lines += [f"- `{name}`: {caption}", "", f"  ![{name}]({name})", ""]
    lines += ["## Inputs", "", *(f"- {p}" for p in provenance(board)), ""]
    return "\n".join(lines)
