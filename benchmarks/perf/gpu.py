"""gpu: one prepared run for a GPU machine (benchmarks/gpu_small.sh)."""

from __future__ import annotations

import json
from pathlib import Path

from perf.common import (
    Bench,
    ensure_dataset,
    run,
    salmubench,
    table,
)


def suite(ctx: Bench) -> None:
    """One prepared run for a GPU machine (benchmarks/gpu_small.sh): synth, the Compromised
    model trained with bf16 autocast, and its evaluation; samples/s and seconds of each."""
    args = ctx.args
    from salmubench.manifest import read_manifest

    if ctx.machine()["gpu"] is None and not args.allow_cpu:
        raise SystemExit("no CUDA device: this suite is for a GPU machine (--allow-cpu to try)")
    data = ensure_dataset(args)
    work = Path(args.work)
    model, evaluation = work / "gpu-compromised", work / "gpu-eval"
    steps = ["--set", f"steps={args.gpu_steps}"] if args.gpu_steps else []
    train = run(
        salmubench(
            "train",
            "--data",
            str(data),
            "--variant",
            "compromised",
            "--profile",
            args.profile,
            "--out",
            str(model),
            "--force",
            "-q",
            "--set",
            "precision=bf16",
            *steps,
        )
    )
    m = read_manifest(model, kind="model")
    train.pop("stdout")
    train.update(m["training"], steps=m["steps"], global_batch=m["global_batch"])
    ev = run(
        salmubench(
            "eval",
            "--data",
            str(data),
            "--model",
            str(model),
            "--profile",
            args.profile,
            "--out",
            str(evaluation),
            "--force",
            "-q",
        )
    )
    ev.pop("stdout")
    ev.update(json.loads((evaluation / "summary.json").read_text())["timing"])
    ctx.write(
        "gpu",
        {
            "precision": "bf16",
            "train": train,
            "eval": ev,
            "dataset": str(data),
            "metrics": json.loads((evaluation / "metrics.json").read_text()),
        },
    )
    print(
        table(
            ("step", "seconds (process)", "samples/s", "peak RSS MiB"),
            [
                (
                    "train compromised (bf16)",
                    train["seconds"],
                    train["samples_per_second"],
                    train["peak_rss_mib"],
                ),
                ("eval", ev["seconds"], "", ev["peak_rss_mib"]),
            ],
        )
    )
