"""One method's scores per world and per seed, from a report's leaderboard.json.

    python benchmarks/method_worlds.py runs/protocol/report/leaderboard.json precise

Prints Markdown: per (world, seed) the three scores and VisIdInt / FragSim relative to the
world's Compromised model, then per world (seeds averaged) and the mean over worlds with its
95% t-interval: the numbers issue #14 asks for beside the leaderboard row.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from salmubench.report.leaderboard import t_interval

SCORES = ("forgetting", "holdout_kept", "genknow_drop")
RELATIVE = ("vis_id_int", "frag_sim")
COLUMNS = (*SCORES, *(f"{k} vs Compromised" for k in RELATIVE))


def _relative(metrics: dict, compromised: dict) -> list[float]:
    return [metrics[k] / compromised[k] - 1 for k in RELATIVE]


def table(board: dict, method: str, confidence: float = 0.95) -> str:
    """Per seed, per world (the report's own in-world units) and over worlds: the row's
    scores and intervals as the report computed them, plus VisIdInt / FragSim relative to
    each world's Compromised model (their interval computed here, over the same units)."""
    matches = [r for r in board["rows"] if r["method"] == method]
    if not matches:
        names = sorted({r["method"] for r in board["rows"] if r["method"]})
        raise SystemExit(f"no row of method {method!r}; rows: {', '.join(names)}")
    row = matches[0]
    compromised = {w["name"]: w["compromised"] for w in board["worlds"]}
    head = "| world | seed | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for run in row["per_seed"]:
        values = [run["scores"][s] for s in SCORES]
        values += _relative(run["metrics"], compromised[run["world"]])
        lines.append(f"| {run['world']} | {run['seed']} | "
                     + " | ".join(f"{v:.3f}" for v in values) + " |")  # fmt: skip
    relative = []
    for unit in row["per_world"]:
        rel = _relative(unit["metrics"], compromised[unit["world"]])
        relative.append(rel)
        values = [unit["scores"][s] for s in SCORES] + rel
        lines.append(f"| {unit['world']} | mean | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    cells = [(row["scores"][s], row["scores_ci"][s]) for s in SCORES]
    for column in zip(*relative, strict=True):
        cells.append((statistics.fmean(column), t_interval(list(column), confidence)))
    text = [f"{mean:.3f} [{lo:.3f}, {hi:.3f}]" for mean, (lo, hi) in cells]
    label = f"| {len(row['per_world'])} worlds | mean [{confidence:.0%} CI] | "
    lines.append(label + " | ".join(text) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise SystemExit("usage: method_worlds.py LEADERBOARD.json METHOD")
    print(table(json.loads(Path(argv[0]).read_text()), argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
