"""The Grafana dashboard: efficacy over time per model against its baseline, freshness."""

from __future__ import annotations

import logging
from typing import Any

from salmubench.monitor.alerts import STALE_HOURS, margins
from salmubench.monitor.store import BASELINE, CURRENT, EFFICACY, LAST_FAILURE, LAST_SUCCESS

log = logging.getLogger(__name__)


def _panel(pid: int, title: str, targets: list[tuple[str, str]], pos: dict, **extra) -> dict:
    return {
        "id": pid,
        "type": extra.pop("type", "timeseries"),
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": pos,
        "targets": [
            {"refId": chr(65 + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
        **extra,
    }


def dashboard(margin: dict[str, float] | None = None) -> dict[str, Any]:
    """Grafana dashboard: each efficacy metric over time per model against its baseline
    and the alert threshold; re-evaluation freshness and failures."""
    margin = margin or margins()
    sel = 'model=~"$model"'
    panels = []
    for i, metric in enumerate(EFFICACY):
        s = f'{sel},metric="{metric}"'
        panels.append(
            _panel(
                i + 1,
                f"{metric}: current vs baseline (alert above baseline + {margin[metric]})",
                [
                    (f"{CURRENT}{{{s}}}", "{{model}} current"),
                    (f"{BASELINE}{{{s}}}", "{{model}} baseline"),
                    (f"{BASELINE}{{{s}}} + {margin[metric]}", "{{model}} alert threshold"),
                ],
                {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                fieldConfig={"defaults": {"unit": "none", "decimals": 3}, "overrides": []},
            )
        )
    panels.append(
        _panel(
            len(panels) + 1,
            "Hours since the last successful re-evaluation",
            [(f"(time() - {LAST_SUCCESS}{{{sel}}}) / 3600", "{{model}}")],
            {"h": 6, "w": 12, "x": 0, "y": 16},
            type="bargauge",
            fieldConfig={
                "defaults": {
                    "unit": "h",
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [
                            {"color": "green", "value": None},
                            {"color": "red", "value": STALE_HOURS},
                        ],
                    },
                },
                "overrides": [],
            },
        )
    )
    panels.append(
        _panel(
            len(panels) + 1,
            "Unrecovered re-evaluation failures",
            [(f"{LAST_FAILURE}{{{sel}}} * 1000", "{{model}}")],
            {"h": 6, "w": 12, "x": 12, "y": 16},
            type="table",
            fieldConfig={"defaults": {"unit": "dateTimeAsIso"}, "overrides": []},
        )
    )
    return {
        "uid": "salmubench-leakage",
        "title": "SALMUBench: leakage monitoring",
        "description": "Efficacy of unlearned models at each re-evaluation against the "
        "baseline recorded when they were unlearned; lower = more forgotten.",
        "tags": ["salmubench", "unlearning"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-30d", "to": "now"},
        "refresh": "5m",
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus",
                 "label": "Prometheus"},
                {
                    "name": "model",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": f"label_values({CURRENT}, model)",
                    "includeAll": True,
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                },
            ]
        },
        "panels": panels,
    }  # fmt: skip
