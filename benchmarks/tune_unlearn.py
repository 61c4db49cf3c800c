"""Tune each unlearning method's learning rate on a profile, by a rule fixed in advance.

    python benchmarks/tune_unlearn.py --run runs/tiny            # all methods, lr grid
    python benchmarks/tune_unlearn.py --run runs/tiny --methods neg_grad --lrs 1e-5 1e-4

The run folder must hold `dataset`, `clean` and `compromised` (e.g. from
`salmubench bench`). For every method and learning rate it unlearns at the profile's
budget and evaluates. The rule, chosen before looking at any result: per method, the
learning rate with the lowest forget RetFail among those that keep GenKnow within 10% of
the Compromised model's (no collapse); if none does, the grid is extended downwards
(--lrs 1e-6 3e-6 ...) and otherwise the smallest is taken. Holdout metrics are
never used for tuning: over-generalisation is what the benchmark must reveal, not
something tuned away. Writes benchmarks/results/tune-<profile>.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

from salmubench.config import stage_config
from salmubench.eval.stage import evaluate
from salmubench.unlearn import method_names
from salmubench.unlearn.loop import unlearn

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("retfail", "genknow", "inter_id_sim", "intra_id_sim", "vis_id_int", "frag_sim")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run folder with dataset, clean, compromised")
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--methods", nargs="+", default=None)
    parser.add_argument("--lrs", nargs="+", type=float, default=[1e-5, 1e-4, 1e-3])
    parser.add_argument("--max-genknow-drop", type=float, default=0.1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    run = Path(args.run)
    work = run / "tuning"
    ucfg = stage_config("unlearn", args.profile)
    ecfg = stage_config("eval", args.profile)
    refs = {}
    for variant in ("clean", "compromised"):
        target = run / f"eval-{variant}"
        if not (target / "manifest.json").is_file():
            evaluate(run / "dataset", run / variant, target, cfg=ecfg)
        refs[variant] = json.loads((target / "metrics.json").read_text())
    floor = (1 - args.max_genknow_drop) * refs["compromised"]["genknow"]
    results: dict[str, list[dict]] = {}
    for method in args.methods or method_names():
        results[method] = []
        for lr in args.lrs:
            name = f"{method}-lr{lr:g}"
            t = time.perf_counter()
            cfg = stage_config("unlearn", args.profile, [f"methods.{method}.lr={lr}"])
            done = work / f"eval-{name}" / "manifest.json"
            cached = done.is_file()
            if not cached:  # an interrupted tuning run continues where it stopped
                unlearn(run / "dataset", run / "compromised", method, cfg, work / name,
                        force=True, profile=args.profile)  # fmt: skip
                evaluate(run / "dataset", work / name, work / f"eval-{name}", cfg=ecfg,
                         force=True)  # fmt: skip
            metrics = json.loads((work / f"eval-{name}" / "metrics.json").read_text())
            seconds = None if cached else round(time.perf_counter() - t, 1)
            row = {"lr": lr, "seconds": seconds,
                   **{c: metrics[c] for c in COLUMNS}}  # fmt: skip
            results[method].append(row)
            print(method, json.dumps(row), flush=True)
            shutil.rmtree(work / name, ignore_errors=True)
    out = RESULTS / f"tune-{args.profile}.json"
    if out.is_file():  # runs of other methods (or other invocations) are kept
        previous = json.loads(out.read_text())["results"]
        results = {**previous, **results}
    chosen = {}
    for method, rows in results.items():
        ok = [r for r in rows if r["genknow"] >= floor]
        best = min(ok, key=lambda r: r["retfail"]) if ok else min(rows, key=lambda r: r["lr"])
        chosen[method] = best["lr"]
    print(f"\nbudget {ucfg.budget:g}x; GenKnow floor {floor:.4f}; refs", refs["clean"]["retfail"],
          refs["compromised"]["retfail"])  # fmt: skip
    print(f"{'method':<18} {'lr':>8} " + " ".join(f"{c:>12}" for c in COLUMNS))
    for method, rows in results.items():
        for r in rows:
            mark = " <- chosen" if r["lr"] == chosen[method] else ""
            cells = " ".join(f"{r[c]:>12.4f}" for c in COLUMNS)
            print(f"{method:<18} {r['lr']:>8g} {cells}{mark}")
    RESULTS.mkdir(exist_ok=True)
    out.write_text(json.dumps({"profile": args.profile, "budget": ucfg.budget,
                               "rule": "lowest RetFail with GenKnow >= (1 - max_genknow_drop) x "
                               "Compromised; else the smallest lr",
                               "genknow_floor": floor, "references": refs,
                               "results": results, "chosen": chosen}, indent=2) + "\n")  # fmt: skip
    print(f"-> {out}")


if __name__ == "__main__":
    main()
