"""evaltask: one evaluation as a pipeline task (`salmubench eval` in a fresh process, what a
kfp task runs) against the same evaluation in-process (`evaluate()` in a warm process, what
`salmubench bench` does), before and after the decoded-split cache; where a task's time
goes (interpreter and imports, dataset checksums, model load, decode, embed, metrics); and
the peak RSS of each. Every run is pinned to one core (`taskset -c 0`, 1 torch thread), the
variants run in rotating order round after round, and the figures are medians.

    python benchmarks/perf.py evaltask --against /tmp/old/src --repeat 5 \\
        --data WORLD/dataset --model WORLD/compromised --clean-eval WORLD/eval-clean

`--against SRC` (e.g. `git archive <commit> src | tar -x -C /tmp/old`) is the code before
(run through PYTHONPATH); without it only this code runs (cache off = the code before's
decoding path). The in-process worker imports once, evaluates twice and reports the second
evaluation (warm, as inside `bench`) and the first (cold).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from perf.common import (
    PY,
    ROOT,
    SCRIPT,
    Bench,
    _header,
    ensure_dataset,
    ensure_model,
    interleave,
    last_json,
    paired,
    run,
    summarise,
    table,
)

PIN = ["taskset", "-c", "0"]
IMPORTS = "import salmubench.cli, salmubench.commands, salmubench.eval.stage"
HEADER = ("variant", "seconds", "cold s", "open dataset", "load model", "decode", "embed",
          "metrics", "rest", "peak RSS MiB")  # fmt: skip
PARTS = ("seconds_open_dataset", "seconds_load_model", "seconds_decode", "seconds_embedding",
         "seconds_metrics")  # fmt: skip


def eval_args(data: str, model: str, out: str, profile: str, clean: str | None) -> list[str]:
    args = ["--data", data, "--model", model, "--profile", profile, "--out", out, "--force"]
    if clean:  # as bench evaluates Compromised: Clean's finished eval, itself by digest
        args += ["--clean", clean, "--compromised", model]
    return args


def in_process(argv: list[str]) -> dict[str, Any]:
    """The `_eval_inprocess` worker: imports, then `evaluate()` twice in this process."""
    start = time.perf_counter()
    import salmubench.commands  # noqa: F401
    from salmubench.cli import main  # what the CLI imports, then the stage
    from salmubench.eval.stage import evaluate  # noqa: F401

    imports = time.perf_counter() - start
    runs = []
    for _ in range(2):
        t = time.perf_counter()
        code = main(["eval", *argv, "-q"])
        if code:
            raise SystemExit(code)
        seconds = time.perf_counter() - t
        out = Path(argv[argv.index("--out") + 1])
        timing = json.loads((out / "summary.json").read_text())["timing"]
        runs.append({"seconds": round(seconds, 3), **timing})
    return {"imports": round(imports, 3), "cold": runs[0], "warm": runs[1]}


def suite(ctx: Bench) -> None:
    args = ctx.args
    data = ensure_dataset(args)
    model = ensure_model(args, data)
    tmp = Path(tempfile.mkdtemp(prefix="perf-evaltask-"))
    cache = Path(args.work) / "decoded-cache"
    ref = Path(args.against).resolve() if args.against else None
    base = {**os.environ, "OMP_NUM_THREADS": "1"}
    this = {**base, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), base.get("PYTHONPATH", "")])}
    old = {**base, "PYTHONPATH": str(ref)} if ref else None

    def env(code: dict, cache_dir: str | Path) -> dict[str, str]:
        return {**code, "SALMUBENCH_CACHE": str(cache_dir)}

    def cli(name: str, environ: dict[str, str]) -> dict:
        out = tmp / name
        argv = eval_args(str(data), str(model), str(out), args.profile, args.clean_eval)
        row = run([*PIN, PY, "-m", "salmubench", "eval", *argv, "-q"], env=environ)
        timing = json.loads((out / "summary.json").read_text())["timing"]
        row.update({k: timing.get(k) for k in (*PARTS, "seconds_total")})
        known = sum(timing.get(k) or 0 for k in PARTS)
        row["rest"] = round(row["seconds"] - known, 3)  # interpreter, imports, writing, exit
        return row

    def inproc(name: str, environ: dict[str, str]) -> dict:
        out = tmp / name
        argv = eval_args(str(data), str(model), str(out), args.profile, args.clean_eval)
        row = run([*PIN, PY, str(SCRIPT), "_eval_inprocess", *argv], env=environ)
        result = last_json(row["stdout"])
        row["process_seconds"] = row["seconds"]
        row["seconds"] = result["warm"]["seconds"]  # the evaluation, in a warm process
        row["cold_seconds"] = result["cold"]["seconds"]
        row["imports"] = result["imports"]
        row.update({k: result["warm"].get(k) for k in (*PARTS, "seconds_total")})
        return row

    def cold_cli() -> dict:
        shutil.rmtree(tmp / "cold-cache", ignore_errors=True)
        return cli("cold", env(this, tmp / "cold-cache"))

    def imports(environ: dict[str, str]) -> dict:
        return run([*PIN, PY, "-c", IMPORTS], env=environ)

    variants = {
        "after: process (cache warm)": lambda: cli("a-proc", env(this, cache)),
        "after: in-process (cache warm)": lambda: inproc("a-in", env(this, cache)),
        "after: process (cache cold)": cold_cli,
        "after: imports only": lambda: imports(this),
    }
    if old:
        variants |= {
            "before: process": lambda: cli("b-proc", env(old, "off")),
            "before: in-process": lambda: inproc("b-in", env(old, "off")),
            "before: imports only": lambda: imports(old),
        }
    else:
        variants |= {
            "cache off: process": lambda: cli("b-proc", env(this, "off")),
            "cache off: in-process": lambda: inproc("b-in", env(this, "off")),
        }
    print(f"filling the decoded cache {cache} (once) ...", flush=True)
    cli("fill", env(this, cache))
    try:
        rows = interleave(args.repeat, variants)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    b = "before" if old else "cache off"
    keys = ("seconds", "peak_rss_mib", "rest", *PARTS, "seconds_total", "imports", "cold_seconds",
            "process_seconds")  # fmt: skip
    summary = {
        name: {k: summarise(r, k) for k in keys if all(k in x and x[k] is not None for x in r)}
        for name, r in rows.items()
    }
    ratios = {
        "after: process / in-process": paired(
            rows["after: process (cache warm)"], rows["after: in-process (cache warm)"], "seconds"
        ),
        f"{b}: process / in-process": paired(
            rows[f"{b}: process"], rows[f"{b}: in-process"], "seconds"
        ),
        f"after / {b}, process": paired(
            rows["after: process (cache warm)"], rows[f"{b}: process"], "seconds"
        ),
        f"after / {b}, in-process": paired(
            rows["after: in-process (cache warm)"], rows[f"{b}: in-process"], "seconds"
        ),
        f"after / {b}, process peak RSS": paired(
            rows["after: process (cache warm)"], rows[f"{b}: process"], "peak_rss_mib"
        ),
    }
    if old:
        ratios["after / before, imports"] = paired(
            rows["after: imports only"], rows["before: imports only"], "seconds"
        )
    ctx.write(
        "evaltask",
        {
            "repeat": args.repeat,
            "reference": str(ref) if ref else None,
            "dataset": str(data),
            "model": str(model),
            "clean_eval": args.clean_eval,
            "pinned": "taskset -c 0, OMP_NUM_THREADS=1",
            "runs": rows,
            "summary": summary,
            "ratios": ratios,
        },
    )
    print(doc_evaltask(ctx.result("evaltask")))


def doc_evaltask(r: dict | None) -> str:
    if r is None:
        return "_not measured yet: `python benchmarks/perf.py evaltask`_"
    s = r["summary"]

    def med(name: str, key: str) -> Any:
        return s.get(name, {}).get(key, {}).get("median")

    rows = [
        (
            name,
            med(name, "seconds"),
            med(name, "cold_seconds"),
            med(name, "seconds_open_dataset"),
            med(name, "seconds_load_model"),
            med(name, "seconds_decode"),
            med(name, "seconds_embedding"),
            med(name, "seconds_metrics"),
            med(name, "rest"),
            med(name, "peak_rss_mib"),
        )
        for name in s
    ]
    ratio_rows = [(k, v["median"], v["all"]) for k, v in r["ratios"].items()]
    return "\n\n".join(
        [
            _header(r),
            f"Each run pinned to core 0 (`{r['pinned']}`); reference code: "
            f"`{r['reference'] or 'none (cache off)'}`. Seconds: the process's wall time "
            "(process rows), the warm `evaluate()` call (in-process rows: the worker imports "
            "once, evaluates twice, reports the second; the first, cold, in its own column). "
            "The parts come from the eval's `summary.json`; *rest* = process seconds − parts "
            "(interpreter start, imports, writing the folder, exit).",
            table(
                HEADER,
                rows,
            ),
            table(("ratio (per round, median)", "median", "all rounds"), ratio_rows),
        ]
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run through benchmarks/perf.py evaltask")
