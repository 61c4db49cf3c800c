"""The README's relearning-attack table, from a report's leaderboard.json (docs/ATTACKS.md):
per method, the "robust" verdict and each attack's RetFail recovery gap, mean and 95%
interval over the worlds (seeds averaged inside a world).

    python benchmarks/attack_table.py runs/protocol/report/leaderboard.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from salmubench.vocab import ATTACKS


def cell(gap: dict | None) -> str:
    if not gap or gap["retfail"]["mean"] is None:
        return "—"
    r = gap["retfail"]
    ci = f" [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]" if r.get("ci") else ""
    return f"{r['mean']:.2f}{ci}"


def verdict(robust: dict | None) -> str:
    if not robust or robust.get("verdict") is None:
        return "—"
    if robust["verdict"] == "borderline":
        return "borderline (" + ", ".join(b["attack"] for b in robust["borderline"]) + ")"
    return robust["verdict"]


def table(board: dict) -> str:
    header = ["method", "robust", *ATTACKS, "runs (worlds × seeds)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in board["rows"]:
        attacks = row.get("attacks") or {}
        if row["rank"] is None or not attacks:
            continue
        runs = {len(a.get("per_seed", [])) for a in attacks.values()}
        n = "/".join(str(k) for k in sorted(runs))
        cells = [cell(attacks.get(a)) for a in ATTACKS]
        lines.append(f"| `{row['method']}` | {verdict(row.get('robust'))} | "
                     + " | ".join(cells) + f" | {n} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("leaderboard", type=Path, help="a report's leaderboard.json")
    args = parser.parse_args()
    print(table(json.loads(args.leaderboard.read_text(encoding="utf-8"))))


if __name__ == "__main__":
    main()
