"""Benchmark `salmubench synth`: seconds, images/s (per core), peak RSS, identity probe.

Runs the real command as a subprocess, `--repeat` times per worker count, and reports
medians. Then runs the pixel-space identity probe on the dataset it built.

    python benchmarks/bench_synth.py                       # tiny, 1 and all workers
    python benchmarks/bench_synth.py --profile paper --set general_world=2000 --repeat 1
    python benchmarks/bench_synth.py --against ../ref/src --repeat 5   # old vs new, per core

Writes benchmarks/results/synth-<profile>.json and prints a table. `--against SRC` (the
`src/` folder of another checkout, e.g. a `git worktree` of main) instead runs that code and
this one in alternating rounds on one worker, and reports both speeds, the per-round ratio
(median) and whether the two datasets' digests agree: byte-identical output or not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from salmubench.data.probe import identity_probe
from salmubench.data.synth import default_workers
from salmubench.manifest import read_manifest

RESULTS = Path(__file__).resolve().parent / "results"


def run_synth(
    profile: str, out: Path, workers: int, overrides: list[str], src: Path | None = None
) -> tuple[float, float, float]:
    """One synth run in a fresh process: (wall seconds, peak RSS of the process in MiB, CPU
    seconds: user + system, its worker processes included). `src`: import salmubench from
    that folder instead of this checkout's."""
    env = None
    if src is not None:
        env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [
        sys.executable,
        "-m",
        "salmubench",
        "synth",
        "--profile",
        profile,
        "--seed",
        "0",
        "--out",
        str(out),
        "--force",
        "-q",
        "--workers",
        str(workers),
    ]
    for item in overrides:
        cmd += ["--set", item]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    # This child's own peak and CPU time (its reaped pool workers' included), not those of
    # every child so far.
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def render_costs(repeat: int = 50) -> list[dict]:
    """Milliseconds to render and encode one image, one core, per kind and size."""
    import numpy as np

    from salmubench.data import portraits, scenes
    from salmubench.data.synth import render

    rng = np.random.default_rng(0)
    traits = portraits.sample_traits(rng, "female")
    rows = []
    for size, supersample, fmt in ((32, 4, "png"), (64, 3, "png"), (224, 2, "jpg")):
        for kind in ("portrait", "scene"):
            start = time.perf_counter()
            for _ in range(repeat):
                spec = (
                    ("portrait", traits, portraits.sample_nuisance(rng), None)
                    if kind == "portrait"
                    else ("scene", scenes.sample_scene(rng))
                )
                render((spec, size, supersample, fmt))
            ms = (time.perf_counter() - start) / repeat * 1000
            rows.append({"kind": kind, "size": size, "supersample": supersample,
                         "format": fmt, "ms_per_image": round(ms, 2)})  # fmt: skip
    return rows


def against(args: argparse.Namespace) -> None:
    """Reference code vs this checkout, one worker, alternating which runs first."""
    ours = Path(__file__).resolve().parents[1] / "src"
    ref = Path(args.against).resolve()
    if not (ref / "salmubench" / "__init__.py").is_file():
        raise SystemExit(f"--against {args.against}: not a src/ folder holding salmubench/")
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            row: dict = {}
            order = (("reference", ref), ("this", ours))
            for name, src in order if r % 2 == 0 else order[::-1]:
                out = Path(tmp) / name
                seconds, rss, cpu = run_synth(args.profile, out, 1, args.set, src)
                manifest = read_manifest(out)
                images = sum(v for k, v in manifest["counts"].items() if k != "fragile")
                row[name] = {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
                             "peak_rss_mib": round(rss, 1),
                             "images_per_second": round(images / seconds, 1),
                             "images_per_cpu_second": round(images / cpu, 1),
                             "digest": manifest["digest"]}  # fmt: skip
            row["ratio"] = round(row["reference"]["seconds"] / row["this"]["seconds"], 3)
            row["ratio_cpu"] = round(
                row["reference"]["cpu_seconds"] / row["this"]["cpu_seconds"], 3
            )
            row["load1"] = round(os.getloadavg()[0], 2)
            rounds.append(row)
            print(f"round {r}: reference {row['reference']['images_per_second']} images/s "
                  f"({row['reference']['images_per_cpu_second']} per CPU s), this "
                  f"{row['this']['images_per_second']} images/s "
                  f"({row['this']['images_per_cpu_second']} per CPU s), speed-up "
                  f"{row['ratio']} wall, {row['ratio_cpu']} CPU; load {row['load1']}",
                  flush=True)  # fmt: skip

    def median(side: str, key: str) -> float:
        return round(statistics.median(r[side][key] for r in rounds), 2)

    same = all(r["reference"]["digest"] == r["this"]["digest"] for r in rounds)
    result = {
        "benchmark": "synth-against",
        "profile": args.profile,
        "overrides": args.set,
        "command": " ".join(["python", *sys.argv]),
        "cpus": default_workers(),
        "machine_cpus": os.cpu_count(),
        "images": images,
        "reference_src": str(ref),
        "rounds": rounds,
        "images_per_second": {s: median(s, "images_per_second") for s in ("reference", "this")},
        "images_per_cpu_second": {
            s: median(s, "images_per_cpu_second") for s in ("reference", "this")
        },
        "speedup_median": round(statistics.median(r["ratio"] for r in rounds), 3),
        "speedup_cpu_median": round(statistics.median(r["ratio_cpu"] for r in rounds), 3),
        "load1": [r["load1"] for r in rounds],
        "peak_rss_mib": {s: median(s, "peak_rss_mib") for s in ("reference", "this")},
        "same_digest": same,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"synth-against-{args.profile}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    ips, cps = result["images_per_second"], result["images_per_cpu_second"]
    print(f"synth --profile {args.profile}, 1 worker, {images} images, median of "
          f"{args.repeat} alternating rounds: reference {ips['reference']} images/s "
          f"({cps['reference']} per CPU second), this {ips['this']} images/s "
          f"({cps['this']} per CPU second), speed-up {result['speedup_median']}x wall, "
          f"{result['speedup_cpu_median']}x CPU; peak RSS "
          f"{result['peak_rss_mib']['reference']} -> {result['peak_rss_mib']['this']} MiB; "
          f"same dataset digest: {same}")  # fmt: skip
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--no-probe", action="store_true")
    parser.add_argument(
        "--render-only", action="store_true", help="only time rendering one image of each kind"
    )
    parser.add_argument(
        "--against",
        metavar="SRC",
        help="compare with the salmubench package in SRC (another checkout's src/)",
    )
    args = parser.parse_args()
    if args.against:
        against(args)
        return
    if args.render_only:
        rows = render_costs()
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "render.json").write_text(json.dumps(rows, indent=2) + "\n")
        for r in rows:
            print(f"{r['kind']:<9}{r['size']:>4} px x{r['supersample']} {r['format']}: "
                  f"{r['ms_per_image']:.2f} ms")  # fmt: skip
        return

    cores = default_workers()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dataset"
        for workers in sorted({1, cores}):
            runs = [run_synth(args.profile, out, workers, args.set) for _ in range(args.repeat)]
            manifest = read_manifest(out)
            images = sum(v for k, v in manifest["counts"].items() if k != "fragile")
            seconds = statistics.median(r[0] for r in runs)
            rows.append(
                {
                    "workers": workers,
                    "images": images,
                    "seconds_median": round(seconds, 2),
                    "seconds_all": [round(r[0], 2) for r in runs],
                    "images_per_second": round(images / seconds, 1),
                    "images_per_second_per_core": round(images / seconds / workers, 1),
                    "peak_rss_mib": round(max(r[1] for r in runs), 1),
                }
            )
        probe = None if args.no_probe else identity_probe(out, manifest)

    result = {
        "benchmark": "synth",
        "profile": args.profile,
        "overrides": args.set,
        "command": " ".join(["python", *sys.argv]),
        "machine": {
            "cpus": cores,
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "runs": rows,
        "identity_probe": probe,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"synth-{args.profile}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")

    print(
        f"synth --profile {args.profile} {' '.join(args.set)}  ({cores} CPUs, median of "
        f"{args.repeat})"
    )
    print(
        f"{'workers':>7} {'images':>7} {'seconds':>8} {'images/s':>9} {'per core':>9} "
        f"{'peak RSS MiB':>12}"
    )
    for r in rows:
        print(
            f"{r['workers']:>7} {r['images']:>7} {r['seconds_median']:>8} "
            f"{r['images_per_second']:>9} {r['images_per_second_per_core']:>9} "
            f"{r['peak_rss_mib']:>12}"
        )
    if probe:
        print(
            f"identity probe: {probe['personas']} personas, {probe['test_images']} held-out "
            f"images: pixels {probe['pixel_accuracy']:.3f}, border/clothing only "
            f"{probe['border_accuracy']:.3f}, chance {probe['chance']:.3f}"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
