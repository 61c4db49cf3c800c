"""Baselines and the re-evaluation's pushes: a model's efficacy now, beside the one it was
accepted with."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from salmubench import telemetry
from salmubench.config import ConfigError
from salmubench.monitor.settings import baselines

log = logging.getLogger(__name__)

JOB = "salmubench_reevaluation"
# The efficacy metrics whose rise means a forgotten association is back (the four;
# ACS, a probe accuracy, is left out: it is the noisiest and reads the same leak as
# AssocStr). Each is "lower = more forgotten" in the registry; a test holds that.
EFFICACY = ("retfail", "assoc_str", "core_assoc", "idzsc")
CURRENT = "salmubench_efficacy_current"
BASELINE = "salmubench_efficacy_baseline"
LAST_SUCCESS = "salmubench_reevaluation_last_success_timestamp_seconds"
LAST_FAILURE = "salmubench_reevaluation_last_failure_timestamp_seconds"


class BaselineError(ConfigError):
    """A baseline that cannot be recorded or read (the CLI reports it as an error)."""


def _path(store: str, labels: dict[str, str]) -> str:
    if "dataset" not in labels:
        raise BaselineError(
            f"model {labels['model']!r} names no dataset: a baseline belongs to one world"
        )
    return f"{str(store).rstrip('/')}/{labels['dataset']}/{labels['model']}.json"


def _write(location: str, text: str) -> None:
    from salmubench.manifest import is_url, write_atomic

    if is_url(location):
        from salmubench.s3 import Store

        Store().put_bytes(text.encode(), location)
        return
    Path(location).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(location, text)


def _read(location: str) -> str | None:
    from salmubench.manifest import is_url

    if is_url(location):
        from salmubench.s3 import Store

        store = Store()
        return store.get_bytes(location).decode() if store.stat(location) else None
    path = Path(location)
    return path.read_text(encoding="utf-8") if path.is_file() else None


def efficacy(evaluation: dict[str, Any]) -> dict[str, float]:
    """The EFFICACY values of an eval manifest."""
    missing = [m for m in EFFICACY if m not in evaluation.get("metrics", {})]
    if missing:
        raise BaselineError(f"the evaluation has no {', '.join(missing)} (an older format?)")
    return {m: float(evaluation["metrics"][m]) for m in EFFICACY}


def record_baseline(evaluation: str | os.PathLike, store: str, force: bool = False) -> str:
    """Record the efficacy of the evaluation folder `evaluation` as its model's baseline
    in `store`; where it was written. An existing baseline is kept unless `force`: the
    baseline is what the model knew when it was accepted, not what it knows now."""
    from salmubench.manifest import read_manifest

    manifest = read_manifest(evaluation, kind="eval", verify=True)
    model = manifest.get("model") or {}
    if not model.get("method"):
        raise BaselineError(
            f"{evaluation} evaluates the {model.get('variant')!r} model: baselines are for "
            "unlearned models"
        )
    labels = telemetry.identity(model)
    location = _path(store, labels)
    if _read(location) is not None and not force:
        raise BaselineError(f"{location} exists: pass --force to replace the model's baseline")
    record = {
        **labels,
        "metrics": efficacy(manifest),
        "model_digest": model.get("digest"),
        "evaluation_digest": manifest["digest"],
    }
    _write(location, json.dumps(record, indent=2, sort_keys=True) + "\n")
    log.info("baseline of %s recorded at %s", labels, location)
    return location


def load_baseline(store: str, labels: dict[str, str]) -> dict[str, float] | None:
    text = _read(_path(store, labels))
    return None if text is None else {m: float(v) for m, v in json.loads(text)["metrics"].items()}


def collect_reevaluation(
    evaluation: dict[str, Any], baseline: dict[str, float] | None, now: float | None = None
):
    """(registry, grouping key) of one re-evaluated model: current and baseline efficacy
    per metric, and the last-success timestamp."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    current = Gauge(
        CURRENT,
        "Efficacy of the model at its last re-evaluation (lower = more forgotten).",
        ["metric"],
        registry=registry,
    )
    for metric, value in efficacy(evaluation).items():
        current.labels(metric=metric).set(value)
    if baseline is not None:
        base = Gauge(
            BASELINE,
            "Efficacy recorded when the model was unlearned and evaluated.",
            ["metric"],
            registry=registry,
        )
        for metric in EFFICACY:
            base.labels(metric=metric).set(baseline[metric])
    Gauge(
        LAST_SUCCESS,
        "When the model's re-evaluation last succeeded (Unix time).",
        registry=registry,
    ).set(time.time() if now is None else now)
    return registry, telemetry.identity(evaluation.get("model") or {})


def report_reevaluation(evaluation: dict[str, Any], url: str, store: str | None = None) -> bool:
    """Push a finished re-evaluation of an unlearned model (eval manifest `evaluation`)
    with its baseline from `store` (default $SALMUBENCH_BASELINES). The group is replaced,
    which also clears an earlier failure. Warns, never raises: True if pushed."""
    from prometheus_client import push_to_gateway

    if not (evaluation.get("model") or {}).get("method"):
        return False  # Clean/Compromised references have no baseline to keep
    store = store or baselines()
    try:
        labels = telemetry.identity(evaluation["model"])
        baseline = load_baseline(store, labels) if store else None
        if baseline is None:
            log.warning(
                "monitoring: no baseline for %s in %s: pushing the current values only "
                "(record one with `salmubench monitor baseline`)",
                labels,
                store,
            )
        registry, grouping = collect_reevaluation(evaluation, baseline)
        push_to_gateway(url, job=JOB, registry=registry, grouping_key=grouping, timeout=10)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        # RuntimeError: a StorageError reading the baseline.
        log.warning("monitoring: could not push the re-evaluation to %s: %s", url, e)
        return False
    log.info("monitoring: pushed the re-evaluation of %s to %s", grouping, url)
    return True


def report_failure(model: str | os.PathLike, url: str, now: float | None = None) -> dict:
    """Add a failure timestamp to the re-evaluation group of the model folder `model`
    (POST: the last current/baseline values stay beside it). Its grouping key."""
    from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

    from salmubench.manifest import read_manifest

    labels = telemetry.identity(read_manifest(model, kind="model"))
    registry = CollectorRegistry()
    Gauge(
        LAST_FAILURE,
        "When the model's re-evaluation last failed (Unix time); cleared by a success.",
        registry=registry,
    ).set(time.time() if now is None else now)
    pushadd_to_gateway(url, job=JOB, registry=registry, grouping_key=labels, timeout=10)
    return labels


def report_failure_quietly(model: str | os.PathLike, url: str) -> bool:
    """`report_failure` for a stage that is already failing: warns instead of raising
    (the model itself may be what cannot be read). True if pushed."""
    from salmubench.manifest import ManifestError

    try:
        labels = report_failure(model, url)
    except (OSError, ValueError, KeyError, RuntimeError, ManifestError) as e:
        log.warning("monitoring: could not push the failure of %s to %s: %s", model, url, e)
        return False
    log.info("monitoring: pushed the failed re-evaluation of %s to %s", labels, url)
    return True
