"""The README's leaderboard table, side by side with the paper, from a report's leaderboard.json.

    python benchmarks/protocol_table.py runs/protocol/report/leaderboard.json

Prints Markdown: per method, our three scores (mean and 95% interval over worlds), our
label (with borderline calls), the paper's scores and its stated label, and the tuned rate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from salmubench.report.leaderboard import SCORES, display, label_text
from salmubench.report.render import interval_text, verdict_text


def table(board: dict) -> str:
    paper = {p["method"]: p for p in board["paper"]["rows"] if p["method"]}
    agreement = board["paper"]["agreement"]["methods"]
    chosen = board.get("tuning", {}).get("chosen", {})
    header = ["rank", "method", "lr"]
    header += [f"{display(s)} (ours)" for s in SCORES] + ["ours", "paper: scores", "paper"]
    header.append("agree")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in board["rows"]:
        if row["rank"] is None:
            continue
        m = row["method"]
        cells = [str(row["rank"]), f"`{m}`", f"{chosen[m]:g}" if m in chosen else "—"]
        for s in SCORES:
            x, ci = row["scores"][s], row["scores_ci"].get(s)
            cells.append("—" if x is None else f"{x:.2f} {interval_text(ci, 2)}".strip())
        cells.append(verdict_text(row))
        p = paper.get(m)
        cells.append(" / ".join(f"{p['scores'][s]:.2f}" for s in SCORES) if p else "(no row)")
        stated = row.get("paper_label")
        cells.append("—" if stated in (None, "—") and m not in agreement else label_text(stated))
        cells.append(agreement.get(m, {}).get("agree", "—"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    board = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    print(table(board))
    a = board["paper"]["agreement"]
    print(f"\nThe paper's labels reproduced: {a['reproduced']} of {a['labelled']}.")


if __name__ == "__main__":
    main()
