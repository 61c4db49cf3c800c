"""synth: `salmubench synth` with 1 and all workers, and the render cost per image
extrapolated to the paper profile."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perf.common import (
    Bench,
    _header,
    interleave,
    last_json,
    run,
    salmubench,
    summarise,
    table,
    worker,
)


def render_sample(profile: str, sample: int) -> dict[str, Any]:
    """Render `sample` images of each kind at the profile's settings on one core; the
    profile's totals follow from its own counts of portraits and scenes (its plan)."""
    import numpy as np

    from salmubench.config import stage_config
    from salmubench.data import portraits, scenes
    from salmubench.data.synth import plan, render

    cfg = stage_config("synth", profile)
    _, items = plan(cfg, 0)
    kinds = {"portrait": 0, "scene": 0}
    for split, split_items in items.items():
        if split != "fragile":
            for it in split_items:
                kinds[it.render[0]] += 1
    rng = np.random.default_rng(0)
    ms = {}
    for kind in kinds:
        jobs = []
        for _ in range(sample):
            if kind == "portrait":
                traits = portraits.sample_traits(rng, "female")
                spec = ("portrait", traits, portraits.sample_nuisance(rng), None)
            else:
                spec = ("scene", scenes.sample_scene(rng))
            jobs.append((spec, cfg.image_size, cfg.supersample, cfg.image_format))
        start = time.perf_counter()
        for job in jobs:
            render(job)
        ms[kind] = (time.perf_counter() - start) / len(jobs) * 1000
    core_seconds = sum(kinds[k] * ms[k] / 1000 for k in kinds)
    return {
        "profile": profile,
        "image_size": cfg.image_size,
        "format": cfg.image_format,
        "sample_per_kind": sample,
        "ms_per_image": {k: round(v, 3) for k, v in ms.items()},
        "images": kinds,
        "render_core_seconds": round(core_seconds, 1),
        "images_per_second_per_core": round(sum(kinds.values()) / core_seconds, 1),
    }


def suite(ctx: Bench) -> None:
    args = ctx.args
    cores = ctx.machine()["cpus"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dataset"

        def synth(workers: int) -> Callable[[], dict]:
            def go() -> dict:
                row = run(
                    salmubench(
                        "synth",
                        "--profile",
                        args.profile,
                        "--out",
                        str(out),
                        "--force",
                        "-q",
                        "--workers",
                        str(workers),
                    )
                )
                from salmubench.manifest import read_manifest

                counts = read_manifest(out)["counts"]
                row["images"] = sum(v for k, v in counts.items() if k != "fragile")
                row["images_per_second"] = round(row["images"] / row["seconds"], 1)
                row["images_per_second_per_core"] = round(row["images_per_second"] / workers, 1)
                return row

            return go

        variants = {f"{w} worker(s)": synth(w) for w in sorted({1, cores})}
        rows = interleave(args.repeat, variants)

    extrapolated = []
    for profile in dict.fromkeys([args.profile, "paper"]):
        sample = run(worker("_render_sample", profile, str(args.sample)))
        extrapolated.append(last_json(sample["stdout"]))
        extrapolated[-1]["hours_on_this_machine"] = round(
            extrapolated[-1]["render_core_seconds"] / cores / 3600, 3
        )
    measured = {
        n: {
            k: summarise(r, k)
            for k in ("seconds", "images_per_second", "images_per_second_per_core", "peak_rss_mib")
        }
        for n, r in rows.items()
    }
    for name, r in rows.items():
        measured[name]["images"] = r[0]["images"]
    ctx.write(
        "synth",
        {
            "repeat": args.repeat,
            "runs": rows,
            "summary": measured,
            "extrapolated": extrapolated,
        },
    )
    print(doc_synth(ctx.result("synth")))


def doc_synth(r: dict | None) -> str:
    if r is None:
        return "_not measured yet: `python benchmarks/perf.py synth`_"
    rows = [
        (
            n,
            s["images"],
            s["seconds"]["median"],
            s["images_per_second"]["median"],
            s["images_per_second_per_core"]["median"],
            s["peak_rss_mib"]["median"],
        )
        for n, s in r["summary"].items()
    ]
    ext = [
        (
            e["profile"],
            f"{e['image_size']} px {e['format']}",
            e["sample_per_kind"],
            e["ms_per_image"]["portrait"],
            e["ms_per_image"]["scene"],
            e["images"]["portrait"] + e["images"]["scene"],
            e["images_per_second_per_core"],
            e["hours_on_this_machine"],
        )
        for e in r["extrapolated"]
    ]
    return "\n\n".join(
        [
            _header(r),
            table(
                (
                    "synth --profile " + r["profile"],
                    "images",
                    "seconds",
                    "images/s",
                    "images/s per core",
                    "peak RSS MiB",
                ),
                rows,
            ),
            "Extrapolated (render + encode only, one core, from a measured sample of each kind; "
            "the totals are the profile's own image counts × the sample's ms per image):",
            table(
                (
                    "profile",
                    "image",
                    "sample per kind",
                    "ms/portrait",
                    "ms/scene",
                    "images in profile",
                    "images/s per core",
                    f"hours on {r['machine']['cpus']} cores",
                ),
                ext,
            ),
        ]
    )


HEADER_AGAINST = (
    "code",
    "images/s (wall)",
    "images per CPU second",
    "wall s, all rounds",
    "CPU s, all rounds",
    "peak RSS MiB",
)


def doc_synth_against(results: Path, profile: str) -> str:
    """The old-vs-new synth comparison of `benchmarks/bench_synth.py --against`."""
    import json

    path = results / f"synth-against-{profile}.json"
    if not path.is_file():
        return "_Not measured yet: `python benchmarks/bench_synth.py --against REF/src`._"
    r = json.loads(path.read_text())
    rounds = r["rounds"]
    rows = [
        (
            side,
            r["images_per_second"][side],
            r["images_per_cpu_second"][side],
            [x[side]["seconds"] for x in rounds],
            [x[side]["cpu_seconds"] for x in rounds],
            r["peak_rss_mib"][side],
        )
        for side in ("reference", "this")
    ]
    same = "identical" if r["same_digest"] else "**different**"
    return "\n\n".join(
        [
            f"`{r['command']}` — {len(rounds)} alternating rounds, one worker, "
            f"{r['images']:,} images; 1-min load average {min(r['load1']):.2f}–"
            f"{max(r['load1']):.2f}; reference = `{r['reference_src']}`; JSON: "
            f"`benchmarks/results/synth-against-{profile}.json`",
            table(HEADER_AGAINST, rows),
            f"Speed-up (per-round ratio, median): **{r['speedup_cpu_median']:.2f}×** in CPU "
            f"time, {r['speedup_median']:.2f}× in wall time. Dataset digest: {same} "
            f"(`{rounds[0]['this']['digest'][:16]}…`).",
        ]
    )
