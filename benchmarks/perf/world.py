"""world: where one tiny world's time goes. Per stage (from a `salmubench bench` run: the
e2e suite's JSON, or a bench.json), each evaluation split into decoding and embedding (from
a world's eval manifests), and inside training per phase (data, forward, loss, backward,
optimiser: the `_breakdown` worker, fp32 and bf16 side by side); then the real `salmubench
train` at `precision: bf16` against fp32 in interleaved rounds (the default stays fp32).

    python benchmarks/perf.py world --data DATASET --world runs/protocol/world-0 \\
        --train-steps 50 --repeat 3
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perf.common import (
    Bench,
    _header,
    ensure_dataset,
    interleave,
    last_json,
    load_result,
    paired,
    run,
    salmubench,
    summarise,
    table,
    worker,
)

PRECISIONS = ("fp32", "bf16")


def stage_seconds(bench: dict[str, Any]) -> list[tuple[str, float]]:
    """(stage, seconds) of one world of a bench run, grouped in the order they run."""
    stages = bench["stages"]
    order = ("synth", "train clean", "train compromised")
    rows = [(s, stages[s]) for s in order if s in stages]
    rows += sorted((s, v) for s, v in stages.items() if s.startswith("unlearn "))
    rows += sorted((s, v) for s, v in stages.items() if s.startswith("eval "))
    rows += [(s, stages[s]) for s in ("report",) if s in stages]
    return rows


def eval_timing(world: Path) -> list[dict[str, Any]]:
    """Each evaluation folder's own timing (decode, embedding, metrics) under `world`."""
    rows = []
    for manifest in sorted(world.glob("**/manifest.json")):
        m = json.loads(manifest.read_text())
        if m.get("kind") == "eval" and "timing" in m:
            rows.append({"eval": str(manifest.parent.relative_to(world)), **m["timing"]})
    return rows


def suite(ctx: Bench) -> None:
    args = ctx.args
    from salmubench.manifest import read_manifest

    data = ensure_dataset(args)
    steps = args.train_steps
    e2e = load_result(ctx.results, "e2e", args.profile)
    bench = e2e["bench"] if e2e else None
    world = Path(args.world) if args.world else None

    breakdown = {}
    for precision in PRECISIONS:
        row = run(worker("_breakdown", str(data), args.profile, str(steps), precision))
        row.update(last_json(row.pop("stdout")))
        breakdown[precision] = row
        print(f"  step breakdown {precision}: {row}", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="perf-world-"))
    overrides = ["--set", f"steps={steps}", "--set", f"checkpoint_every={steps}",
                 "--set", "warmup_steps=5"]  # fmt: skip

    def train(precision: str) -> Callable[[], dict]:
        def go() -> dict:
            out = tmp / precision
            row = run(salmubench("train", "--data", str(data), "--variant", "compromised",
                                 "--profile", args.profile, "--out", str(out), "--force", "-q",
                                 *overrides, "--set", f"precision={precision}"))  # fmt: skip
            t = read_manifest(out, kind="model")["training"]
            row.update(samples_per_second=t["samples_per_second"], loop_seconds=t["seconds"])
            return row

        return go

    rows = interleave(args.repeat, {p: train(p) for p in PRECISIONS})
    ctx.write(
        "world",
        {
            "bench_source": e2e["command"] if e2e else None,
            "bench_date": e2e["date"] if e2e else None,
            "bench_stages": stage_seconds(bench) if bench else None,
            "bench_seconds_total": bench["seconds_total"] if bench else None,
            "world": str(world) if world else None,
            "eval_timing": eval_timing(world) if world else [],
            "repeat": args.repeat,
            "train_steps": steps,
            "step_breakdown": breakdown,
            "runs": rows,
            "summary": {p: summarise(rows[p], "samples_per_second") for p in PRECISIONS},
            "bf16_vs_fp32": paired(rows["bf16"], rows["fp32"], "samples_per_second"),
        },
    )


def doc_world(r: dict[str, Any] | None) -> str:
    if r is None:
        return "_No results yet: `python benchmarks/perf.py world` writes them._"
    parts = [_header(r)]
    if r["bench_stages"]:
        total = r["bench_seconds_total"]
        stage_rows = [(s, v, f"{v / total:.1%}") for s, v in r["bench_stages"]]
        parts += [
            f"Per stage, from `{r['bench_source']}` of {r.get('bench_date')} (the code "
            f"before issue #18, both cores; one world, seed 0; {total / 60:.1f} min in all):",
            table(("stage", "seconds", "share"), stage_rows),
        ]
    if r["eval_timing"]:
        ev = r["eval_timing"]
        decode = sum(e["seconds_decode"] for e in ev) / len(ev)
        embed = sum(e["seconds_embedding"] for e in ev) / len(ev)
        metrics = sum(e["seconds_metrics"] for e in ev) / len(ev)
        total = sum(e["seconds_total"] for e in ev) / len(ev)
        parts.append(
            f"Inside an evaluation (the mean of the {len(ev)} evaluation manifests of "
            f"`{r['world']}`): decoding {decode:.2f} s, embedding {embed:.2f} s, metrics "
            f"{metrics:.3f} s of {total:.2f} s."
        )
    phases = list(r["step_breakdown"]["fp32"]["ms_per_step"])
    b = r["step_breakdown"]
    phase_rows = [
        (p, *(b[x]["ms_per_step"][p] for x in PRECISIONS),
         f"{b['fp32']['ms_per_step'][p] / sum(b['fp32']['ms_per_step'].values()):.1%}")
        for p in phases
    ]  # fmt: skip
    phase_rows.append(("step", *(round(sum(b[x]["ms_per_step"].values()), 1) for x in PRECISIONS),
                       "100%"))  # fmt: skip
    parts += [
        f"Inside a training step (`_breakdown` worker: the loop's pieces on the real pools, "
        f"timed in turn, {r['train_steps']} steps after 2 warm-up, "
        f"{b['fp32'].get('threads', '?')} thread(s)); data = batch plan + gather + "
        f"normalise: fp32 {b['fp32']['data_share']:.1%} of a step:",
        table(("phase", "fp32 ms", "bf16 ms", "fp32 share"), phase_rows),
    ]
    s = r["summary"]
    run_rows = [
        (p, s[p]["median"], s[p]["all"], max(row["peak_rss_mib"] for row in r["runs"][p]))
        for p in PRECISIONS
    ]
    ratio = r["bf16_vs_fp32"]
    parts += [
        f"`salmubench train --variant compromised --set steps={r['train_steps']}` at each "
        "precision, interleaved rounds (samples/s of the step loop, the command's own figure):",
        table(("precision", "samples/s (median)", "all rounds", "peak RSS MiB"), run_rows),
        f"bf16 / fp32 (per-round ratio, median): **{ratio['median']:.3f}** "
        f"(rounds {ratio['all']}). The default stays `precision: fp32`.",
    ]
    return "\n\n".join(parts)
