"""Leakage monitoring: an unlearned model's efficacy now, beside its recorded baseline.

A model that forgot an association can re-learn it (fine-tuning on new data, a checkpoint
rolled back, a distillation from old weights). The recurring re-evaluation measures each
stored model again; this package gives those numbers a reference and a place in Prometheus:

- `record_baseline`: when a model is unlearned and evaluated, its efficacy (EFFICACY) is
  written as the model's baseline, one JSON file per model in a store (a folder or an
  s3:// prefix): `<store>/<dataset>/<model>.json`, named by `telemetry.identity`.
- `report_reevaluation`: after a re-evaluation, push the current efficacy and the
  baseline side by side (job `salmubench_reevaluation`, grouped by model and dataset) with
  a last-success timestamp; `report_failure` adds a failure timestamp to the same group.
- `drill`: re-teach an unlearned model its forget set, to check the alerting end to end.
- `rules`, `prometheus_rule`, `dashboard`: the alerts and the Grafana dashboard, rendered
  from MARGINS (`salmubench monitor rules` writes them into k8s/monitoring/; a test
  holds the committed files equal to what it renders, so they never drift apart).

A model keeps its identity (method, budget, seed, dataset) when its weights change: that
is the point, the registry entry is the same and what it knows is not.

The resurfacing margin of each efficacy metric is sized from that metric's measured noise
across unlearning seeds (`measure_noise`): the pooled within-group standard deviation of
the same method, budget and world unlearned with different seeds, times K_SIGMA. A model
re-evaluated unchanged measures exactly its baseline (evaluation is deterministic), so a
rise above the margin is larger than the spread between two honest unlearning runs of the
same recipe: not an accident of the seed.
"""

from __future__ import annotations

import importlib
from typing import Any

# The package in pieces: settings (what the parser needs), store (baselines, the pushes),
# relearn (the drill), alerts (noise, margins, rules), grafana (the dashboard), files (what
# `salmubench monitor rules` writes), commands (the CLI). No submodule shares a name with
# what it defines, so `monitor.drill` is always the function.
# Loaded on first use (PEP 562): the CLI builds its parser from `commands` alone, so a
# stage command does not import (and dvc.yaml does not list) the rest.
_HOME = {
    "BY_MODEL": "alerts",
    "BY_SERIES": "alerts",
    "FAILED": "alerts",
    "GROUP": "alerts",
    "K_SIGMA": "settings",
    "MARGINS": "alerts",
    "NO_BASELINE": "alerts",
    "RESURFACED": "alerts",
    "STALE": "alerts",
    "STALE_HOURS": "alerts",
    "margins": "alerts",
    "measure_noise": "alerts",
    "prometheus_rule": "alerts",
    "rules": "alerts",
    "add_commands": "commands",
    "dashboard": "grafana",
    "DrillConfig": "settings",
    "drill": "relearn",
    "HEADER": "files",
    "render_all": "files",
    "rendered": "files",
    "BASELINE": "store",
    "BASELINES_ENV": "settings",
    "CURRENT": "store",
    "EFFICACY": "store",
    "JOB": "store",
    "LAST_FAILURE": "store",
    "LAST_SUCCESS": "store",
    "BaselineError": "store",
    "baselines": "settings",
    "collect_reevaluation": "store",
    "efficacy": "store",
    "load_baseline": "store",
    "record_baseline": "store",
    "report_failure": "store",
    "report_failure_quietly": "store",
    "report_reevaluation": "store",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value
