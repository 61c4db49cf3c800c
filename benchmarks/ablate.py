"""Variants of one method on a VALIDATION world: the ablation table (and design trials).

    python benchmarks/ablate.py --world-dir runs/protocol/validation-1000 --method precise \
        --lr 1e-3 --variant full: --variant no-anchor:anchor_weight=0 ... \
        --out benchmarks/results/ablation-precise-tiny.json
    python benchmarks/ablate.py --world-dir runs/protocol/validation-1000 --list   # every trial

Each variant is the method with some settings changed (`k=v,k=v`, the method's Params),
unlearned from the world's Compromised model at one learning rate and evaluated against the
world's Clean and Compromised evals. The world must be a validation world (seed >= 1000):
settings are chosen there, never on a leaderboard world. Finished runs are reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from salmubench.bench import World, _Stages, stage_configs, unlearn_and_evaluate
from salmubench.config import stage_config
from salmubench.manifest import dumps, read_manifest, write_atomic
from salmubench.report.leaderboard import score
from salmubench.tune import check_validation_world

# Utility metrics reported relative to the Compromised model (issue #14's must-show).
RELATIVE = ("vis_id_int", "frag_sim")
SHOWN = ("assoc_str", "core_assoc", "idzsc", "inter_id_sim", "intra_id_sim")


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, _, settings = text.partition(":")
    if not name:
        raise SystemExit(f"--variant {text!r}: give NAME:k=v,k=v (or NAME: for the defaults)")
    return name, [s for s in settings.split(",") if s]


def list_trials(folder: Path, refs: dict) -> int:
    """Every finished trial in the world's ablation folder, oldest first, with its settings."""
    rows = []
    for run in (folder / "ablation").glob("eval-*"):
        model = folder / "ablation" / run.name.removeprefix("eval-")
        manifest = read_manifest(model, kind="model")
        metrics = json.loads((run / "metrics.json").read_text())
        scores, _ = score(metrics, refs["clean"], refs["compromised"])
        rows.append((model.stat().st_mtime, model.name, manifest["method_params"], scores, metrics))
    comp = refs["compromised"]
    for _, name, params, s, m in sorted(rows, key=lambda r: r[0]):
        rel = "  ".join(f"{k} {m[k] / comp[k] - 1:+.3f}" for k in RELATIVE)
        print(f"{name:<40} forgetting {s['forgetting']:.3f}  holdout kept {s['holdout_kept']:.3f}"
              f"  GenKnow drop {s['genknow_drop']:+.3f}  {rel}  {params}")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world-dir", required=True, help="a validation world built by tune")
    ap.add_argument("--method")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--variant", action="append", help="NAME:k=v,k=v")
    ap.add_argument("--list", action="store_true", help="print every finished trial, oldest first")
    ap.add_argument("--profile", default="tiny")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an unlearn setting for every variant, e.g. warmup_steps=20",
    )
    ap.add_argument("--out", help="JSON file for the table")
    args = ap.parse_args(argv)

    folder = Path(args.world_dir)
    dataset = read_manifest(folder / "dataset", kind="dataset")
    seed = dataset["seed"]
    check_validation_world(seed)
    world = World(seed, folder, dataset["digest"])
    cfg = stage_configs(args.profile, None, None, ())
    refs = {v: json.loads((world.eval(v) / "metrics.json").read_text())
            for v in ("clean", "compromised")}  # fmt: skip
    comp = refs["compromised"]
    if args.list:
        return list_trials(folder, refs)
    if not (args.method and args.lr and args.variant):
        ap.error("give --method, --lr and at least one --variant (or --list)")
    variants = [parse_variant(v) for v in args.variant]
    stages = _Stages(2 * len(variants), True, print, None, False)
    rows = []
    for name, settings in variants:
        overrides = [*args.set, *(f"methods.{args.method}.{s}" for s in settings)]
        overrides.append(f"methods.{args.method}.lr={args.lr}")
        ucfg = stage_config("unlearn", args.profile, overrides, None)
        tag = f"{args.method}-{name}-lr{args.lr:g}"
        target = folder / "ablation" / tag
        start = time.perf_counter()
        unlearn_and_evaluate(world, args.method, 0, ucfg, target,
                             folder / "ablation" / f"eval-{tag}", cfg, stages,
                             args.profile)  # fmt: skip
        metrics = json.loads((folder / "ablation" / f"eval-{tag}" / "metrics.json").read_text())
        scores, _ = score(metrics, refs["clean"], comp)
        rel = {f"{k}_vs_compromised": round(metrics[k] / comp[k] - 1, 4) for k in RELATIVE}
        row = {"variant": name, "settings": settings, **scores, **rel,
               **{k: metrics[k] for k in SHOWN}}  # fmt: skip
        rows.append(row)
        print(f"{name:<22} forgetting {scores['forgetting']:.3f}  holdout kept "
              f"{scores['holdout_kept']:.3f}  GenKnow drop {scores['genknow_drop']:+.3f}  "
              f"VisIdInt {rel['vis_id_int_vs_compromised']:+.3f}  FragSim "
              f"{rel['frag_sim_vs_compromised']:+.3f}  ({time.perf_counter() - start:.0f} s)",
              flush=True)  # fmt: skip
    if args.out:
        record = {"world": {"seed": seed, "dataset": world.digest}, "method": args.method,
                  "lr": args.lr, "profile": args.profile, "set": args.set,
                  "rows": rows}  # fmt: skip
        write_atomic(Path(args.out), dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
