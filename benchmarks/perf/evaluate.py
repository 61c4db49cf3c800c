"""eval: `salmubench eval` against a naive evaluator that re-embeds per metric."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

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


def naive_eval(data: str, model: str, profile: str) -> dict[str, Any]:
    """Each metric with a fresh evaluator: every split it reads decoded and embedded anew."""
    from salmubench.config import stage_config
    from salmubench.data.shards import open_dataset
    from salmubench.eval.embed import DatasetEmbeddings
    from salmubench.eval.metrics import METRICS, EvalSettings
    from salmubench.eval.stage import REQUIRED_SPLITS, flatten
    from salmubench.models import load_model

    cfg = stage_config("eval", profile)
    dataset = open_dataset(data, REQUIRED_SPLITS)
    loaded = load_model(model)
    settings = EvalSettings(
        seed=0, retfail_distractors=cfg.retfail_distractors, acs_test_fraction=cfg.acs_test_fraction
    )
    start = time.perf_counter()
    results, images = {}, 0
    for name, metric in METRICS.items():
        emb = DatasetEmbeddings(loaded, data, dataset, settings, batch_size=cfg.batch_size)
        results[name] = metric.fn(emb)
        images += emb.counts["images"]
    return {
        "seconds_total": round(time.perf_counter() - start, 3),
        "images_embedded": images,
        "metrics": flatten(results),
    }


def suite(ctx: Bench) -> None:
    args = ctx.args
    data = ensure_dataset(args)
    model = ensure_model(args, data)
    tmp = Path(tempfile.mkdtemp(prefix="perf-eval-"))
    values: dict[str, dict] = {}

    def ours() -> dict:
        out = tmp / "eval"
        row = run(
            salmubench(
                "eval",
                "--data",
                str(data),
                "--model",
                str(model),
                "--profile",
                args.profile,
                "--out",
                str(out),
                "--force",
                "-q",
            )
        )
        summary = json.loads((out / "summary.json").read_text())
        values["ours"] = json.loads((out / "metrics.json").read_text())
        row.update(summary["timing"])
        row["metrics_vs_embedding"] = round(row["seconds_metrics"] / row["seconds_embedding"], 4)
        return row

    def naive() -> dict:
        row = run(
            worker(
                "_naive_eval", "--data", str(data), "--model", str(model), "--profile", args.profile
            )
        )
        result = last_json(row["stdout"])
        values["naive"] = result.pop("metrics")
        row.update(result)
        return row

    try:
        rows = interleave(args.repeat, {"salmubench eval": ours, "naive evaluator": naive})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    a, b = rows["salmubench eval"], rows["naive evaluator"]
    keys = (
        "seconds_total",
        "seconds_decode",
        "seconds_embedding",
        "seconds_metrics",
        "metrics_vs_embedding",
        "seconds",
        "peak_rss_mib",
    )
    summary = {
        "salmubench eval": {k: summarise(a, k) for k in keys},
        "naive evaluator": {
            k: summarise(b, k) for k in ("seconds_total", "seconds", "peak_rss_mib")
        },
    }
    summary["salmubench eval"]["images_embedded"] = a[0]["images_embedded"]
    summary["salmubench eval"]["texts_embedded"] = a[0]["texts_embedded"]
    summary["naive evaluator"]["images_embedded"] = b[0]["images_embedded"]
    same = values["ours"] == values["naive"]
    ctx.write(
        "eval",
        {
            "repeat": args.repeat,
            "model": model_info(model),
            "dataset": str(data),
            "runs": rows,
            "summary": summary,
            "ratios": {"naive_vs_ours": paired(b, a, "seconds_total")},
            "naive_gives_the_same_metrics": same,
        },
    )
    if not same:
        raise SystemExit("the naive evaluator's metrics differ from salmubench eval's")
    print(doc_eval(ctx.result("eval")))


def doc_eval(r: dict | None) -> str:
    if r is None:
        return "_not measured yet: `python benchmarks/perf.py eval`_"
    a, b = r["summary"]["salmubench eval"], r["summary"]["naive evaluator"]
    m = r["model"]
    return "\n\n".join(
        [
            _header(r),
            f"Model `{m['path']}` ({m['architecture']}, {m['steps']} steps). Seconds inside "
            "the process, from the evaluator's own clock (model loading excluded, as in the "
            "naive one).",
            table(
                (
                    "run",
                    "decode s",
                    "embedding s",
                    "metrics s",
                    "total s",
                    "images embedded",
                    "process s",
                    "peak RSS MiB",
                ),
                [
                    (
                        "salmubench eval",
                        a["seconds_decode"]["median"],
                        a["seconds_embedding"]["median"],
                        a["seconds_metrics"]["median"],
                        a["seconds_total"]["median"],
                        a["images_embedded"],
                        a["seconds"]["median"],
                        a["peak_rss_mib"]["median"],
                    ),
                    (
                        "naive (re-embeds per metric)",
                        "",
                        "",
                        "",
                        b["seconds_total"]["median"],
                        b["images_embedded"],
                        b["seconds"]["median"],
                        b["peak_rss_mib"]["median"],
                    ),
                ],
            ),
            f"Metric time / embedding time: **{a['metrics_vs_embedding']['median']:.1%}** "
            f"(rounds: {a['metrics_vs_embedding']['all']}); naive / ours: "
            f"**{r['ratios']['naive_vs_ours']['median']:.2f}×** (rounds: "
            f"{r['ratios']['naive_vs_ours']['all']}); the naive evaluator's ten metrics equal "
            f"ours: {r['naive_gives_the_same_metrics']}.",
        ]
    )
