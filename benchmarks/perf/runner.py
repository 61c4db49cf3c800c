"""runner: the main job under kfp's local runner (`make run`: `salmubench run`) against the
same work in one process (`salmubench bench`), each from scratch (a fresh run folder and
decoded-split cache), in alternating rounds; wall time, peak RSS, and whether the two
leaderboards agree (the same seeds and thread counts: they should, to the last digit)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from perf.common import Bench, _header, interleave, paired, run, salmubench, summarise, table

VARIANTS = {"bench": "bench", "run (kfp local)": "run"}


def suite(ctx: Bench) -> None:
    args = ctx.args
    work = Path(args.work) / "runner"

    def variant(command: str):
        def once() -> dict[str, Any]:
            out = work / command
            shutil.rmtree(out, ignore_errors=True)  # from scratch: nothing reused
            with tempfile.TemporaryDirectory() as cache:  # nor decoded splits
                env = {**os.environ, "SALMUBENCH_CACHE": cache}
                row = run(salmubench(command, "--profile", args.profile, "--out", str(out)),
                          env=env)  # fmt: skip
            row["scores"] = _scores(out / "report" / "leaderboard.json")
            return row

        return once

    rows = interleave(args.repeat, {n: variant(c) for n, c in VARIANTS.items()})
    bench, kfp = rows["bench"], rows["run (kfp local)"]
    ctx.write(
        "runner",
        {
            "command_run": f"salmubench bench|run --profile {args.profile} --out OUT",
            "repeat": args.repeat,
            "runs": rows,
            "seconds": {n: summarise(rows[n], "seconds") for n in rows},
            "ratio": paired(kfp, bench, "seconds"),
            "same_scores": [a["scores"] == b["scores"] for a, b in zip(bench, kfp, strict=True)],
        },
    )
    print(doc_runner(ctx.result("runner")))


def _scores(path: Path) -> dict[str, Any]:
    """method -> its leaderboard scores (what the two runs must agree on)."""
    return {row["method"]: row["scores"] for row in json.loads(path.read_text())["rows"]}


def doc_runner(r: dict | None) -> str:
    if r is None:
        return "_not measured yet: `python benchmarks/perf.py runner`_"
    rows = [(n, round(r["seconds"][n]["median"] / 60, 2), r["seconds"][n]["all"],
             max(x["peak_rss_mib"] for x in r["runs"][n])) for n in r["seconds"]]  # fmt: skip
    ratio = r["ratio"]
    return "\n\n".join([
        _header(r),
        f"`{r['command_run']}`, from scratch each round (fresh run folder and decoded-split "
        "cache):",
        table(("command", "minutes (median)", "seconds, all rounds",
               "peak RSS MiB (largest process)"), rows),
        f"Per-round ratio run / bench: **{ratio['median']:.3f}** (rounds {ratio['all']}); "
        f"identical leaderboard scores in each round: {r['same_scores']}.",
    ])  # fmt: skip
