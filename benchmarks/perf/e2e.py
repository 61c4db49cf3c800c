"""e2e: `salmubench bench` on a fresh folder, once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from perf.common import (
    Bench,
    _header,
    run,
    salmubench,
    table,
)


def suite(ctx: Bench) -> None:
    args = ctx.args
    out = Path(args.work) / "e2e"
    if out.exists():
        shutil.rmtree(out)  # a fresh run: nothing reused
    row = run(salmubench("bench", "--profile", args.profile, "--out", str(out), "-q"))
    row.pop("stdout")
    bench = json.loads((out / "bench.json").read_text())
    ctx.write(
        "e2e",
        {
            "command_run": f"salmubench bench --profile {args.profile} --out {out} -q",
            "run": row,
            "bench": bench,
            "target_seconds": 20 * 60 if args.profile == "tiny" else None,
        },
    )
    print(doc_e2e(ctx.result("e2e")))


def doc_e2e(r: dict | None) -> str:
    if r is None:
        return "_not measured yet: `python benchmarks/perf.py e2e`_"
    b, run_ = r["bench"], r["run"]
    stages = b["stages"]
    groups = {"synth": 0.0, "train": 0.0, "eval": 0.0, "unlearn": 0.0, "report": 0.0}
    for name, sec in stages.items():
        groups[name.split()[0]] += sec
    target = r.get("target_seconds")
    verdict = ""
    if target:
        verdict = (
            f" — target < {target / 60:.0f} min: "
            f"**{'met' if run_['seconds'] < target else 'NOT met'}**"
        )
    return "\n\n".join(
        [
            _header(r),
            f"`{r['command_run']}` on a fresh folder: **{run_['seconds'] / 60:.1f} min** "
            f"({run_['seconds']:.0f} s, peak RSS {run_['peak_rss_mib']:.0f} MiB){verdict}.",
            table(
                ("stage group", "seconds", "stages"),
                [
                    (g, round(s, 1), sum(1 for n in stages if n.split()[0] == g))
                    for g, s in groups.items()
                ],
            ),
            table(("stage", "seconds"), list(stages.items())),
        ]
    )
