"""jobs: `salmubench bench` from scratch with `--jobs 1` against `--jobs 2`, in alternating
rounds; wall time, peak RSS, and how far the metrics move (the thread count per stage
differs, so the last bits of every float do)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from perf.common import Bench, _header, interleave, paired, run, salmubench, summarise, table

# The metrics the leaderboard scores (the ten of the benchmark), as metrics.json names them.
METRICS = ("retfail", "assoc_str", "core_assoc", "idzsc", "acs", "frag_sim", "vis_id_int",
           "genknow", "intra_id_sim", "inter_id_sim")  # fmt: skip


def suite(ctx: Bench) -> None:
    args = ctx.args
    work = Path(args.work) / "jobs"
    worlds = ["--worlds", str(args.worlds)] if args.worlds else []

    def variant(jobs: int):
        def once() -> dict[str, Any]:
            out = work / f"jobs-{jobs}"
            shutil.rmtree(out, ignore_errors=True)  # from scratch: nothing reused
            with tempfile.TemporaryDirectory() as cache:  # nor decoded splits
                env = {**os.environ, "SALMUBENCH_CACHE": cache}
                row = run(salmubench("bench", "--profile", args.profile, "--out", str(out),
                                     "--jobs", str(jobs), "-q", *worlds), env=env)  # fmt: skip
            row["stages"] = json.loads((out / "bench.json").read_text())["stages"]
            row["metrics"] = _metrics(out)
            return row

        return once

    rows = interleave(args.repeat, {f"jobs {j}": variant(j) for j in args.jobs})
    names = [f"jobs {j}" for j in args.jobs]
    ctx.write(
        "jobs",
        {
            "command_run": f"salmubench bench --profile {args.profile} --out OUT --jobs J -q "
            + " ".join(worlds),
            "worlds": args.worlds or 1,
            "repeat": args.repeat,
            "runs": rows,
            "seconds": {n: summarise(rows[n], "seconds") for n in names},
            "ratio": {n: paired(rows[n], rows[names[0]], "seconds") for n in names[1:]},
            "metric_change": {n: _change(rows[names[0]], rows[n]) for n in names[1:]},
        },
    )
    print(doc_jobs(ctx.result("jobs")))


def _metrics(out: Path) -> dict[str, dict[str, float]]:
    """model folder (relative to `out`) -> its ten metrics."""
    found = {}
    for path in sorted(out.glob("**/metrics.json")):
        if path.parent.name.startswith("eval") or path.parent.parent.name == "evals":
            values = json.loads(path.read_text())
            found[str(path.parent.relative_to(out))] = {m: values[m] for m in METRICS}
    return found


def _change(base: list[dict], other: list[dict]) -> dict[str, Any]:
    """Per metric, the largest |difference| over models and rounds (same round compared)."""
    worst: dict[str, float] = {}
    for a, b in zip(base, other, strict=True):
        for model, values in a["metrics"].items():
            for m in METRICS:
                d = abs(values[m] - b["metrics"][model][m])
                worst[m] = max(worst.get(m, 0.0), d)
    return {m: round(v, 6) for m, v in worst.items()}


def doc_jobs(r: dict | None) -> str:
    if r is None:
        return "_not measured yet: `python benchmarks/perf.py jobs`_"
    names = list(r["seconds"])
    rows = [(n, round(r["seconds"][n]["median"] / 60, 2), r["seconds"][n]["all"],
             max(x["peak_rss_mib"] for x in r["runs"][n])) for n in names]  # fmt: skip
    ratio = "; ".join(f"{n} / {names[0]}: **{v['median']:.3f}** (rounds {v['all']})"
                      for n, v in r["ratio"].items())  # fmt: skip
    change = table(("metric", *(f"largest change, {n} vs {names[0]}" for n in r["metric_change"])),
                   [(m, *(f"{r['metric_change'][n][m]:.6f}" for n in r["metric_change"]))
                    for m in METRICS])  # fmt: skip
    return "\n\n".join([
        _header(r),
        f"`{r['command_run']}`, {r['worlds']} world(s), from scratch each round (fresh run "
        "folder and decoded-split cache):",
        table(("jobs", "minutes (median)", "seconds, all rounds", "peak RSS MiB (largest "
               "process)"), rows),
        f"Per-round ratio of wall times: {ratio}.",
        "How far the metrics move between the two (every model's ten metrics, same round):",
        change,
    ])  # fmt: skip
