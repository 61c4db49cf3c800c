"""unlearn: steps/s of every method; DELETE and CLIPErase also with the original model
embedding the forget batch (before `Method.original_reads`)."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from perf.common import (
    Bench,
    _header,
    ensure_dataset,
    ensure_model,
    interleave,
    last_json,
    model_info,
    paired,
    run,
    salmubench,
    summarise,
    table,
    worker,
)


def suite(ctx: Bench) -> None:
    args = ctx.args
    from salmubench.manifest import read_manifest

    data = ensure_dataset(args)
    model = ensure_model(args, data)
    tmp = Path(tempfile.mkdtemp(prefix="perf-unlearn-"))
    declared = last_json(run(worker("_methods"))["stdout"])
    methods = args.methods or list(declared)

    def method_run(name: str, reads: str | None = None) -> Callable[[], dict]:
        def go() -> dict:
            out = tmp / f"{name}-{reads or 'declared'}"
            cmd = [
                "unlearn",
                "--data",
                str(data),
                "--model",
                str(model),
                "--method",
                name,
                "--profile",
                args.profile,
                "--budget",
                str(args.budget),
                "--out",
                str(out),
                "--force",
                "-q",
            ]
            if args.cpu_clock:
                # One thread, and the loop's clock is this process's CPU time: the work
                # of a step, whatever the neighbours do to the wall clock.
                row = run(
                    worker("_unlearn_reads", reads or "declared", "cpu", *cmd, "--set", "threads=1")
                )
            elif reads is None:
                row = run(salmubench(*cmd))
            else:
                row = run(worker("_unlearn_reads", reads, "wall", *cmd))
            u = read_manifest(out, kind="model")["unlearning"]
            row.update(
                steps=read_manifest(out)["steps"],
                steps_per_second=u["steps_per_second"],
                loop_seconds=u["seconds"],
                seconds_loading_data=u["seconds_loading_data"],
            )
            return row

        return go

    # Each "before" variant runs right after its method (pairs stay adjacent in every round).
    variants, before = {}, {}
    for m in methods:
        variants[m] = method_run(m)
        reads = declared[m]["original_reads"]
        if "original" in declared[m]["uses"] and reads != ["forget", "retain"]:
            before[m] = f"{m} (original embeds forget too)"
            variants[before[m]] = method_run(m, "forget,retain")
    try:
        rows = interleave(args.repeat, variants)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {
        n: {k: summarise(r, k) for k in ("steps_per_second", "seconds", "peak_rss_mib")}
        for n, r in rows.items()
    }
    ratios = {m: paired(rows[m], rows[b], "steps_per_second") for m, b in before.items()}
    suite = "unlearn-cpu" if args.cpu_clock else "unlearn"
    ctx.write(
        suite,
        {
            "clock": "cpu, 1 thread" if args.cpu_clock else "wall",
            "repeat": args.repeat,
            "budget": args.budget,
            "model": model_info(model),
            "dataset": str(data),
            "steps": rows[methods[0]][0]["steps"],
            "runs": rows,
            "summary": summary,
            "before_after": before,
            "ratios": {"declared_vs_original_embeds_all": ratios},
        },
    )
    print(doc_unlearn(ctx.result(suite)))


def unlearn_with_reads(reads: str, clock: str, argv: list[str]) -> int:
    """The real `salmubench unlearn`, with every method's original_reads overridden (unless
    `reads` is "declared") and, for clock "cpu", its timings in CPU seconds."""
    from salmubench.cli import main
    from salmubench.unlearn import METHODS, method_names

    method_names()
    if reads != "declared":
        for cls in METHODS.values():
            cls.original_reads = frozenset(reads.split(","))
    if clock == "cpu":
        time.perf_counter = time.process_time
    return main(argv)


def doc_unlearn(r: dict | None) -> str:
    if r is None:
        return "_not measured yet: `python benchmarks/perf.py unlearn`_"
    m = r["model"]
    rows = [
        (n, v["steps_per_second"]["median"], v["seconds"]["median"], v["peak_rss_mib"]["median"])
        for n, v in r["summary"].items()
    ]
    ratios = r["ratios"]["declared_vs_original_embeds_all"]
    clock = r.get("clock", "wall")
    unit = "steps per CPU second, 1 thread" if clock.startswith("cpu") else "steps/s"
    return "\n\n".join(
        [
            _header(r),
            f"Budget {r['budget']:g}× = {r['steps']} steps from `{m['path']}`; {unit} from the "
            "command's manifest (the step loop); seconds = the whole process (wall clock).",
            table(("method", unit, "seconds (process)", "peak RSS MiB"), rows),
            table(
                (
                    "original embeds only what the method reads, vs forget too",
                    "speed-up",
                    "all rounds",
                ),
                [(k, v["median"], v["all"]) for k, v in ratios.items()],
            ),
        ]
    )
