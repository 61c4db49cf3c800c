"""Prometheus telemetry: after a stage, push what it did to a Pushgateway when configured.

Stages are short batch jobs, so they push (Prometheus would never scrape them in time).
`SALMUBENCH_PUSHGATEWAY` (a URL) turns it on; unset, nothing is built and nothing touches
the network. Everything pushed is read from the stage's output manifest, so it reports
what was published, not what was attempted. A push that fails warns and never fails the
stage: a finished model is worth more than its metrics line.

Names follow Prometheus's conventions: the `salmubench_` prefix, base units (`_seconds`),
`_total` for counters only (everything here is a gauge: a stage reports a snapshot once).
The grouping key says which *job* pushed, never which run (a run id in the key makes a
group per run that the Pushgateway keeps for ever): job=salmubench, the stage, and for
the stages that run once per model or dataset the `model` and `dataset` labels of
`identity`. Each group carries `salmubench_stage_last_success_timestamp_seconds`, so
"when did this last work" is a query, not a run id to look up.

With `SALMUBENCH_BASELINES` set (a folder or s3:// prefix of recorded baselines, see
`salmubench.monitor`), the CLI also pushes an unlearned model's evaluated efficacy beside
its recorded baseline (`monitor.report_reevaluation`): what the recurring re-evaluation
does. This module knows nothing of baselines, so monitor may build on it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GATEWAY_ENV = "SALMUBENCH_PUSHGATEWAY"
RUN_ID_ENV = "SALMUBENCH_RUN_ID"  # logged with each push; never part of a grouping key
JOB = "salmubench"
PREFIX = "salmubench_"
STAGES = ("synth", "train", "unlearn", "eval", "report")
# Digits of a dataset's digest in the `dataset` label: unique among a site's worlds and
# short enough to read in an alert.
DATASET_DIGITS = 12


def gateway() -> str | None:
    return os.environ.get(GATEWAY_ENV) or None


def model_key(model: dict[str, Any]) -> str:
    """The `model` label of a model manifest or an eval's `model` block: the variant
    (clean, compromised) or `<method>-b<budget>-s<seed>` for an unlearned model."""
    method = model.get("method") or ""
    if not method:
        return model.get("variant") or "external"
    budget = model.get("budget")
    b = f"-b{float(budget):g}" if budget is not None else ""
    return f"{method}{b}-s{model.get('seed', 0)}"


def identity(model: dict[str, Any]) -> dict[str, str]:
    """{model, dataset} labels that name a model across runs: what it is and which
    world (dataset digest) it belongs to. A model manifest names its dataset under
    `inputs`, an eval's `model` block under `dataset`."""
    labels = {"model": model_key(model)}
    dataset = model.get("dataset") or (model.get("inputs") or {}).get("dataset")
    if dataset:
        labels["dataset"] = str(dataset)[:DATASET_DIGITS]
    return labels


def _variant_method(model: dict[str, Any]) -> tuple[str, str]:
    method = model.get("method") or ""
    return model.get("variant") or ("unlearned" if method else ""), method


def collect(stage: str, manifest: dict[str, Any], seconds: float, now: float | None = None):
    """The registry to push for `stage` and its output `manifest`, and its grouping key."""
    from prometheus_client import CollectorRegistry, Gauge

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")
    registry = CollectorRegistry()
    grouping = {"stage": stage}
    Gauge(
        f"{PREFIX}stage_duration_seconds", "Wall time of the stage command.", registry=registry
    ).set(seconds)
    Gauge(
        f"{PREFIX}stage_last_success_timestamp_seconds",
        "When the stage last finished successfully (Unix time).",
        registry=registry,
    ).set(time.time() if now is None else now)
    if stage == "train":
        grouping.update(identity(manifest))
        labels = {"variant": manifest.get("variant") or ""}
        Gauge(
            f"{PREFIX}train_samples",
            "Training samples seen (all ranks).",
            ["variant"],
            registry=registry,
        ).labels(**labels).set(manifest["samples_seen"])
        Gauge(
            f"{PREFIX}train_final_loss",
            "Final training loss (CLIP contrastive).",
            ["variant"],
            registry=registry,
        ).labels(**labels).set(manifest["training"]["final_loss"])
    elif stage == "unlearn":
        grouping.update(identity(manifest))
        _, method = _variant_method(manifest)
        loss = Gauge(
            f"{PREFIX}unlearn_final_loss",
            "Final unlearning loss terms (mean of the last logged steps).",
            ["method", "term"],
            registry=registry,
        )
        for term, value in manifest["unlearning"]["final"].items():
            loss.labels(method=method, term=term).set(value)
        Gauge(
            f"{PREFIX}unlearn_steps",
            "Unlearning optimiser steps.",
            ["method"],
            registry=registry,
        ).labels(method=method).set(manifest["steps"])
    elif stage == "eval":
        from salmubench.eval.metrics import METRICS

        model = manifest.get("model") or {}
        grouping.update(identity(model))
        variant, method = _variant_method(model)
        values = manifest["metrics"]
        for name, metric in METRICS.items():
            Gauge(
                f"{PREFIX}eval_{name}",
                metric.description.split(".")[0] + ".",
                ["variant", "method"],
                registry=registry,
            ).labels(variant=variant, method=method).set(values[name])
    elif stage == "synth":
        if manifest.get("digest"):
            grouping["dataset"] = str(manifest["digest"])[:DATASET_DIGITS]
        counts = Gauge(
            f"{PREFIX}dataset_samples", "Samples per split.", ["split"], registry=registry
        )
        for split, n in manifest.get("counts", {}).items():
            counts.labels(split=split).set(n)
    return registry, grouping


def push(url: str, registry, grouping: dict[str, str]) -> None:
    """PUT `registry` as the group `grouping` of job salmubench (replacing the group)."""
    from prometheus_client import push_to_gateway

    push_to_gateway(url, job=JOB, registry=registry, grouping_key=grouping, timeout=10)


def report_stage(stage: str, out: str | os.PathLike | None, seconds: float) -> bool:
    """Push the finished `stage`'s metrics if a gateway is configured; True if pushed."""
    url = gateway()
    if url is None or stage not in STAGES or out is None:
        return False
    if int(os.environ.get("RANK", "0")) != 0:
        return False  # only rank 0 publishes the output, so only it reports
    from salmubench.manifest import ManifestError, read_manifest

    try:
        manifest = read_manifest(Path(out))
        registry, grouping = collect(stage, manifest, seconds)
        push(url, registry, grouping)
    except (OSError, ValueError, KeyError, ManifestError) as e:
        # URLError is an OSError; a missing manifest field is a KeyError.
        log.warning("telemetry: could not push %s metrics to %s: %s", stage, url, e)
        return False
    log.info(
        "telemetry: pushed %s metrics to %s %s (run %s)",
        stage,
        url,
        grouping,
        os.environ.get(RUN_ID_ENV, "-"),
    )
    return True
