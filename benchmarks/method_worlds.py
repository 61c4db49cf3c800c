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


def rows(board: dict, method: str) -> list[tuple[str, int, list[float]]]:
    worlds = {w["name"]: w for w in board["worlds"]}
    matches = [r for r in board["rows"] if r["method"] == method]
    if not matches:
        names = sorted({r["method"] for r in board["rows"] if r["method"]})
        raise SystemExit(f"no row of method {method!r}; rows: {', '.join(names)}")
    out = []
    for run in matches[0]["per_seed"]:
        comp = worlds[run["world"]]["compromised"]
        rel = [run["metrics"][k] / comp[k] - 1 for k in RELATIVE]
        out.append((run["world"], run["seed"], [run["scores"][s] for s in SCORES] + rel))
    return out


def table(board: dict, method: str, confidence: float = 0.95) -> str:
    runs = rows(board, method)
    head = "| world | seed | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for world, seed, values in runs:
        lines.append(f"| {world} | {seed} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    per_world: dict[str, list[list[float]]] = {}
    for world, _, values in runs:
        per_world.setdefault(world, []).append(values)
    means = {w: [statistics.fmean(c) for c in zip(*v, strict=True)] for w, v in per_world.items()}
    for world, values in means.items():
        lines.append(f"| {world} | mean | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    cells = []
    for column in zip(*means.values(), strict=True):
        lo, hi = t_interval(list(column), confidence)
        cells.append(f"{statistics.fmean(column):.3f} [{lo:.3f}, {hi:.3f}]")
    label = f"| {len(means)} worlds | mean [{confidence:.0%} CI] | "
    lines.append(label + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise SystemExit("usage: method_worlds.py LEADERBOARD.json METHOD")
    print(table(json.loads(Path(argv[0]).read_text()), argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
