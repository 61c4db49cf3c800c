"""Prometheus telemetry: after a stage, push what it did to a Pushgateway when configured.

Stages are short batch jobs, so they push (Prometheus would never scrape them in time).
`SALMUBENCH_PUSHGATEWAY` (a URL) turns it on; unset, nothing is built and nothing touches
the network. Everything pushed is read from the stage's output manifest, so it reports
what was published, not what was attempted. A push that fails warns and never fails the
stage: a finished model is worth more than its metrics line.

Grouping key: job=salmubench, stage, the run id (`SALMUBENCH_RUN_ID`) when given, and the
model (variant, or method-s<seed> for unlearned models) for stages that run once per model,
so two evaluations of one run do not replace each other's group.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GATEWAY_ENV = "SALMUBENCH_PUSHGATEWAY"
RUN_ID_ENV = "SALMUBENCH_RUN_ID"
JOB = "salmubench"
PREFIX = "salmubench_"
STAGES = ("synth", "train", "unlearn", "eval", "report")


def gateway() -> str | None:
    return os.environ.get(GATEWAY_ENV) or None


def _model_label(model: dict[str, Any]) -> tuple[str, str, str]:
    """(variant, method, model key) of a model manifest or an eval's `model` block."""
    method = model.get("method") or ""
    variant = model.get("variant") or ("unlearned" if method else "")
    key = f"{method}-s{model.get('seed', 0)}" if method else variant
    return variant, method, key


def collect(stage: str, manifest: dict[str, Any], seconds: float):
    """The registry to push for `stage` and its output `manifest`, and its grouping key."""
    from prometheus_client import CollectorRegistry, Gauge

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")
    registry = CollectorRegistry()
    grouping = {"stage": stage}
    if os.environ.get(RUN_ID_ENV):
        grouping["run_id"] = os.environ[RUN_ID_ENV]
    Gauge(
        f"{PREFIX}stage_duration_seconds", "Wall time of the stage command.", registry=registry
    ).set(seconds)
    if stage == "train":
        variant, _, key = _model_label(manifest)
        grouping["model"] = key
        labels = {"variant": variant}
        Gauge(
            f"{PREFIX}train_samples_total",
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
        variant, method, key = _model_label(manifest)
        grouping["model"] = key
        loss = Gauge(
            f"{PREFIX}unlearn_final_loss",
            "Final unlearning loss terms (mean of the last logged steps).",
            ["method", "term"],
            registry=registry,
        )
        for term, value in manifest["unlearning"]["final"].items():
            loss.labels(method=method, term=term).set(value)
        Gauge(
            f"{PREFIX}unlearn_steps_total",
            "Unlearning optimiser steps.",
            ["method"],
            registry=registry,
        ).labels(method=method).set(manifest["steps"])
    elif stage == "eval":
        from salmubench.eval.metrics import METRICS

        variant, method, key = _model_label(manifest.get("model") or {})
        grouping["model"] = key
        values = manifest["metrics"]
        for name, metric in METRICS.items():
            Gauge(
                f"{PREFIX}eval_{name}",
                metric.description.split(".")[0] + ".",
                ["variant", "method"],
                registry=registry,
            ).labels(variant=variant, method=method).set(values[name])
    elif stage == "synth":
        counts = Gauge(
            f"{PREFIX}dataset_samples_total", "Samples per split.", ["split"], registry=registry
        )
        for split, n in manifest.get("counts", {}).items():
            counts.labels(split=split).set(n)
    return registry, grouping


def report_stage(stage: str, out: str | os.PathLike | None, seconds: float) -> bool:
    """Push the finished `stage`'s metrics if a gateway is configured; True if pushed."""
    url = gateway()
    if url is None or stage not in STAGES or out is None:
        return False
    if int(os.environ.get("RANK", "0")) != 0:
        return False  # only rank 0 publishes the output, so only it reports
    from prometheus_client import push_to_gateway

    from salmubench.manifest import ManifestError, read_manifest

    try:
        manifest = read_manifest(Path(out))
        registry, grouping = collect(stage, manifest, seconds)
        push_to_gateway(url, job=JOB, registry=registry, grouping_key=grouping, timeout=10)
    except (OSError, ValueError, KeyError, ManifestError) as e:
        # URLError is an OSError; a missing manifest field is a KeyError.
        log.warning("telemetry: could not push %s metrics to %s: %s", stage, url, e)
        return False
    log.info("telemetry: pushed %s metrics to %s %s", stage, url, grouping)
    return True
