"""Benchmark the Clean and Compromised models: train both, evaluate both, compare to the paper.

    python benchmarks/bench_models.py                      # tiny: synth, 2 trainings, 2 evals
    python benchmarks/bench_models.py --data runs/tiny/dataset --workdir runs/tiny

Every stage runs as the real `salmubench` command in a fresh process. Prints the paper's
Clean/Compromised table next to ours, the memorisation checks, and the timings (training
samples/s and seconds, evaluation seconds split into embedding and metrics, peak RSS);
writes benchmarks/results/models-<profile>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# SPEC.md §4: the official evaluator on the official ViT-B/16 models.
PAPER = {
    "retfail": (0.0008, 0.236), "retfail_r1": (0.000, 0.102), "assoc_str": (0.142, 0.322),
    "acs": (0.602, 0.951), "idzsc": (0.011, 0.084), "core_assoc": (0.151, 0.183),
    "genknow": (0.633, 0.638), "inter_id_sim": (0.143, 0.322), "intra_id_sim": (0.143, 0.321),
    "vis_id_int": (0.331, 0.305), "frag_sim": (0.309, 0.280),
}  # fmt: skip


def salmubench(*args: str) -> tuple[float, float]:
    """Run one stage command; (seconds, peak RSS of the largest child so far in MiB)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "salmubench", *args], check=True)
    seconds = time.perf_counter() - start
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", help="an existing dataset folder (default: synthesise one)")
    parser.add_argument("--workdir", default=None, help="where models and evals go")
    args = parser.parse_args()

    work = Path(args.workdir or f"runs/bench-{args.profile}")
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, dict] = {}
    data = Path(args.data) if args.data else work / "dataset"
    if not args.data:
        s, rss = salmubench("synth", "--profile", args.profile, "--seed", str(args.seed),
                            "--out", str(data), "--force", "-q")  # fmt: skip
        timings["synth"] = {"seconds": round(s, 1), "peak_rss_mib": round(rss)}
    for variant in ("clean", "compromised"):
        s, rss = salmubench("train", "--data", str(data), "--variant", variant, "--profile",
                            args.profile, "--seed", str(args.seed), "--out",
                            str(work / variant), "--force", "-q")  # fmt: skip
        manifest = json.loads((work / variant / "manifest.json").read_text())
        timings[f"train_{variant}"] = {
            "seconds_command": round(s, 1),
            **manifest["training"],
            "global_batch": manifest["global_batch"],
            "peak_rss_mib": round(rss),
        }
    for variant in ("clean", "compromised"):
        s, rss = salmubench("eval", "--data", str(data), "--model", str(work / variant),
                            "--profile", args.profile, "--out", str(work / f"eval-{variant}"),
                            "--force", "-q")  # fmt: skip
        manifest = json.loads((work / f"eval-{variant}" / "manifest.json").read_text())
        timings[f"eval_{variant}"] = {"seconds_command": round(s, 1), **manifest["timing"],
                                      "peak_rss_mib": round(rss)}  # fmt: skip
    ours = {v: json.loads((work / f"eval-{v}" / "metrics.json").read_text())
            for v in ("clean", "compromised")}  # fmt: skip

    clean, comp = ours["clean"], ours["compromised"]
    chance = clean["genknow_chance"]
    checks = {
        "retfail_mrr_ratio_ge_5": comp["retfail"] >= 5 * clean["retfail"],
        "assoc_str_above_clean": comp["assoc_str"] > clean["assoc_str"],
        "acs_above_clean": comp["acs"] > clean["acs"],
        "inter_id_sim_above_clean": comp["inter_id_sim"] > clean["inter_id_sim"],
        "intra_id_sim_above_clean": comp["intra_id_sim"] > clean["intra_id_sim"],
        "genknow_ge_3x_chance_both": min(clean["genknow"], comp["genknow"]) >= 3 * chance,
        "genknow_within_5_points": abs(clean["genknow"] - comp["genknow"]) <= 0.05,
    }
    train_total = (
        timings["train_clean"]["seconds_command"] + timings["train_compromised"]["seconds_command"]
    )
    result = {
        "benchmark": "models",
        "profile": args.profile,
        "command": " ".join(["python", *sys.argv]),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "metrics": ours,
        "paper": {k: {"clean": c, "compromised": m} for k, (c, m) in PAPER.items()},
        "checks": checks,
        "timings": timings,
        "train_both_seconds": round(train_total, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"models-{args.profile}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\n{'metric':<14}{'paper Clean':>12}{'paper Comp.':>12}{'ours Clean':>12}"
          f"{'ours Comp.':>12}")  # fmt: skip
    for name, (pc, pm) in PAPER.items():
        print(f"{name:<14}{pc:>12.4f}{pm:>12.4f}{clean[name]:>12.4f}{comp[name]:>12.4f}")
    print(f"(GenKnow chance: paper 0.001 (ImageNet-1k), ours {chance:.4f}; RetFail gallery: "
          f"paper 2,001, ours {int(clean['retfail_gallery'])})")  # fmt: skip
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    for name, t in timings.items():
        print(f"  {name}: {json.dumps(t)}")
    print(f"both trainings: {train_total:.0f} s; wrote {path}")


if __name__ == "__main__":
    main()
