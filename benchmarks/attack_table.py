"""The recovery-gap table of a folder of attack runs (docs/ATTACKS.md): one row per attacked
model, one column per attack, each cell the worst case over the sweep (RetFail gap, with the
AssocStr gap of the same point).

    python benchmarks/attack_table.py /work/exp/attacks-w0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from salmubench.vocab import ATTACKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="folder holding attack output folders")
    args = parser.parse_args()
    cells: dict[str, dict[str, str]] = {}
    for f in sorted(args.folder.glob("*/attack.json")):
        record = json.loads(f.read_text(encoding="utf-8"))
        model = record["model"]
        name = model.get("method") or model.get("variant") or f.parent.name
        worst = (record.get("recovery") or {}).get("worst")
        if worst is None:
            continue  # a reference run (Clean) holds no gap
        cells.setdefault(name, {})[record["attack"]] = (
            f"{worst['retfail']:+.2f} / {worst['assoc_str']:+.2f} ({worst['point']})"
        )
    print("| model | " + " | ".join(ATTACKS) + " |")
    print("|---|" + "---|" * len(ATTACKS))
    for name, row in cells.items():
        print(f"| {name} | " + " | ".join(row.get(a, "—") for a in ATTACKS) + " |")


if __name__ == "__main__":
    main()
