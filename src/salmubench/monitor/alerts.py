"""The alerting rules: resurfacing margins sized from measured noise, staleness, failures."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from salmubench.monitor.settings import K_SIGMA
from salmubench.monitor.store import BASELINE, CURRENT, EFFICACY, LAST_FAILURE, LAST_SUCCESS

log = logging.getLogger(__name__)

# Measured with `salmubench monitor noise runs/protocol/world-*/evals/*`: the tiny profile,
# 9 methods x 2 seeds x 3 worlds at budget 5 (27 groups of 2 evaluations); "margin" is
# K_SIGMA x sd rounded up to 3 decimals. Re-measure at the scale you monitor and paste.
MARGINS: dict[str, dict[str, float]] = {
    "retfail": {"sd": 0.00822, "max_seed_difference": 0.0279, "margin": 0.025},
    "assoc_str": {"sd": 0.01662, "max_seed_difference": 0.07818, "margin": 0.05},
    "core_assoc": {"sd": 0.02192, "max_seed_difference": 0.108, "margin": 0.066},
    "idzsc": {"sd": 0.01371, "max_seed_difference": 0.04889, "margin": 0.042},
}
STALE_HOURS = 36  # the schedule is nightly: one missed night plus the slack of a slow run
GROUP = "salmubench-leakage"
# The label sets that name a re-evaluated model's series (the Pushgateway group).
BY_MODEL = "job, model, dataset"
BY_SERIES = "job, model, dataset, metric"
RESURFACED = "SalmubenchForgottenAssociationResurfaced"
STALE = "SalmubenchReevaluationStale"
FAILED = "SalmubenchReevaluationFailed"
NO_BASELINE = "SalmubenchBaselineMissing"


def measure_noise(eval_dirs: Iterable[str | Path], k_sigma: float = K_SIGMA) -> dict[str, Any]:
    """Per EFFICACY metric: the pooled standard deviation across seeds of evaluations of
    unlearned models grouped by (dataset, method, budget), the largest seed-to-seed
    difference, and the margin = k_sigma x sd rounded up to 3 decimals."""
    from salmubench.manifest import read_manifest

    groups: dict[tuple, list[dict[str, float]]] = defaultdict(list)
    for folder in eval_dirs:
        manifest = read_manifest(folder, kind="eval")
        model = manifest.get("model") or {}
        if not model.get("method"):
            continue
        key = (model.get("dataset"), model["method"], model.get("budget"))
        groups[key].append({m: float(manifest["metrics"][m]) for m in EFFICACY})
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    if not groups:
        raise ValueError("no (dataset, method, budget) was evaluated with two seeds or more")
    result: dict[str, Any] = {}
    for metric in EFFICACY:
        squares, dof, widest = 0.0, 0, 0.0
        for runs in groups.values():
            xs = [r[metric] for r in runs]
            mean = sum(xs) / len(xs)
            squares += sum((x - mean) ** 2 for x in xs)
            dof += len(xs) - 1
            widest = max(widest, max(xs) - min(xs))
        sd = math.sqrt(squares / dof)
        result[metric] = {
            "sd": round(sd, 5),
            "max_seed_difference": round(widest, 5),
            "margin": math.ceil(k_sigma * sd * 1000) / 1000,
        }
    return {
        "k_sigma": k_sigma,
        "groups": len(groups),
        "evaluations": sum(map(len, groups.values())),
        "worlds": len({k[0] for k in groups}),
        "methods": sorted({k[1] for k in groups}),
        "metrics": result,
    }


def margins() -> dict[str, float]:
    return {m: MARGINS[m]["margin"] for m in EFFICACY}


def _value(metric_name: str, metric: str | None = None) -> str:
    """An annotation template: the value of `metric_name` for the alert's model (and
    metric), read from Prometheus when the alert is evaluated."""
    selector = 'model="%s", dataset="%s"'
    args = " $labels.model $labels.dataset"
    if metric is None:
        selector += ', metric="%s"'
        args += " $labels.metric"
    query = f"printf `{metric_name}{{{selector}}}`{args}"
    return f'{{{{ with {query} | query }}}}{{{{ . | first | value | printf "%.4f" }}}}' \
        "{{ else }}none{{ end }}"  # fmt: skip


def _per_metric(expr: str) -> str:
    """`expr` (one series per model) spread over the model's efficacy series: one alert per
    (model, metric), each able to carry its metric's baseline and current value."""
    return f"{expr} * on({BY_MODEL}) group_right() ({CURRENT} * 0 + 1)"


def _annotations(summary: str, description: str) -> dict[str, str]:
    return {
        "summary": summary,
        "description": description,
        "baseline": _value(BASELINE),
        "current": _value(CURRENT),
        "runbook": "docs/MONITORING.md",
    }


def rules(margin: dict[str, float] | None = None) -> dict[str, Any]:
    """The Prometheus rules file (one group)."""
    margin = margin or margins()
    out: list[dict[str, Any]] = []
    for metric in EFFICACY:
        m = margin[metric]
        out.append(
            {
                "alert": RESURFACED,
                "expr": f'{CURRENT}{{metric="{metric}"}} - on({BY_SERIES}) '
                f'{BASELINE}{{metric="{metric}"}} > {m}',
                "labels": {"severity": "critical", "margin": f"{m}"},
                "annotations": _annotations(
                    "{{ $labels.model }}: a forgotten association is back ({{ $labels.metric }})",
                    "{{ $labels.metric }} of {{ $labels.model }} (dataset {{ $labels.dataset }}) "
                    'rose by {{ $value | printf "%.4f" }} over its baseline, more than the '
                    f"margin {m} ({K_SIGMA:g} x its noise across unlearning seeds).",
                ),
            }
        )
    out += [
        {
            "alert": STALE,
            "expr": _per_metric(f"(time() - {LAST_SUCCESS})") + f" > {STALE_HOURS * 3600}",
            "labels": {"severity": "warning"},
            "annotations": _annotations(
                "{{ $labels.model }}: no successful re-evaluation for " + f"{STALE_HOURS} hours",
                "The last successful re-evaluation of {{ $labels.model }} (dataset "
                "{{ $labels.dataset }}) was {{ $value | humanizeDuration }} ago; the values "
                "below are from then.",
            ),
        },
        {
            "alert": FAILED,
            # After a success the group is replaced, so a failure timestamp newer than
            # the last success is a failure not yet recovered from; a model that never
            # succeeded has no efficacy series and alerts per model.
            "expr": _per_metric(f"({LAST_FAILURE} > on({BY_MODEL}) {LAST_SUCCESS})")
            + f" or on({BY_MODEL}) ({LAST_FAILURE} unless on({BY_MODEL}) {LAST_SUCCESS})",
            "labels": {"severity": "warning"},
            "annotations": _annotations(
                "{{ $labels.model }}: the re-evaluation failed",
                "The last re-evaluation of {{ $labels.model }} (dataset {{ $labels.dataset }}) "
                "failed; the values below are from the last one that succeeded.",
            ),
        },
        {
            "alert": NO_BASELINE,
            "expr": f"{CURRENT} unless on({BY_SERIES}) {BASELINE}",
            "labels": {"severity": "warning"},
            "annotations": _annotations(
                "{{ $labels.model }}: re-evaluated without a baseline",
                "{{ $labels.model }} (dataset {{ $labels.dataset }}) is re-evaluated but has "
                "no recorded baseline, so a resurfacing cannot be seen: record one with "
                "`salmubench monitor baseline`.",
            ),
        },
    ]
    return {"groups": [{"name": GROUP, "rules": out}]}


def prometheus_rule(margin: dict[str, float] | None = None) -> dict[str, Any]:
    """The same rules as a Prometheus Operator PrometheusRule."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "salmubench-leakage",
            "labels": {
                "app.kubernetes.io/component": "monitoring",
                "release": "kube-prometheus-stack",
            },
        },
        "spec": rules(margin),
    }
