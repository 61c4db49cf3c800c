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

# The package in pieces: store (baselines, the pushes), drill, alerts (noise, margins, rules),
# dashboard, files (what `salmubench monitor rules` writes), commands (the CLI).
from salmubench.monitor.alerts import (  # noqa: F401
    BY_MODEL,
    BY_SERIES,
    FAILED,
    GROUP,
    K_SIGMA,
    MARGINS,
    NO_BASELINE,
    RESURFACED,
    STALE,
    STALE_HOURS,
    margins,
    measure_noise,
    prometheus_rule,
    rules,
)
from salmubench.monitor.commands import add_commands  # noqa: F401
from salmubench.monitor.dashboard import dashboard  # noqa: F401
from salmubench.monitor.drill import DrillConfig, drill  # noqa: F401
from salmubench.monitor.files import HEADER, render_all, rendered  # noqa: F401
from salmubench.monitor.store import (  # noqa: F401
    BASELINE,
    BASELINES_ENV,
    CURRENT,
    EFFICACY,
    JOB,
    LAST_FAILURE,
    LAST_SUCCESS,
    BaselineError,
    baselines,
    collect_reevaluation,
    efficacy,
    load_baseline,
    record_baseline,
    report_failure,
    report_failure_quietly,
    report_reevaluation,
)
