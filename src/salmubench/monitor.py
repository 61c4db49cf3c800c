"""Leakage monitoring: an unlearned model's efficacy now, beside its recorded baseline.

A model that forgot an association can re-learn it (fine-tuning on new data, a checkpoint
rolled back, a distillation from old weights). The recurring re-evaluation measures each
stored model again; this module gives those numbers a reference and a place in Prometheus:

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

import json
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from salmubench import __version__, telemetry
from salmubench.config import ConfigError

log = logging.getLogger(__name__)

BASELINES_ENV = "SALMUBENCH_BASELINES"
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


def baselines() -> str | None:
    """The baseline store the re-evaluation reads ($SALMUBENCH_BASELINES), or None."""
    return os.environ.get(BASELINES_ENV) or None


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


# --------------------------------------------------------------------------- drill


@dataclass(frozen=True)
class DrillConfig:
    """How hard the drill re-teaches the forget set."""

    steps: int = 30  # optimiser steps on forget batches
    batch: int = 32  # forget samples per step
    lr: float = 1.0e-3  # AdamW learning rate (constant: a drill, not a schedule)
    seed: int = 0  # which forget samples each step draws

    def validate(self) -> None:
        if self.steps < 1 or self.batch < 2:
            raise ConfigError(
                f"drill steps={self.steps}, batch={self.batch}: need steps >= 1 and batch >= 2 "
                "(the contrastive loss needs two samples)"
            )
        if not self.lr > 0:
            raise ConfigError(f"drill lr={self.lr}: expected a positive learning rate")


def drill(
    data: str | os.PathLike,
    model: str | os.PathLike,
    out: str | os.PathLike,
    cfg: DrillConfig = DrillConfig(),
    force: bool = False,
) -> dict[str, Any]:
    """Re-expose the unlearned `model` (a model folder) to the forget set of `data` and
    publish the result at `out`; its manifest.

    What an accidental fine-tune on data that mentions the forgotten people does, on
    purpose: the CLIP objective on forget batches. The result keeps the source's identity
    (method, budget, seed, dataset), as a checkpoint changed under the same registry entry
    would, and records the drill in its manifest (`drill`, `inputs.model`), so nobody
    mistakes it for an unlearned model. Re-evaluated and pushed, it should fire the
    resurfacing alert."""
    import torch

    from salmubench.manifest import staged_output, write_manifest
    from salmubench.models import image_normalisation, image_size, load_model, save_model
    from salmubench.models import tokenizer as get_tokenizer
    from salmubench.unlearn.base import clip_loss
    from salmubench.unlearn.data import load_unlearn_pools, open_for_unlearning

    cfg.validate()
    loaded = load_model(model)
    source = loaded.manifest or {}
    if source.get("variant") != "unlearned":
        raise ConfigError(
            f"{model} is a {source.get('variant')!r} model: the drill re-teaches an unlearned "
            "one (the output keeps its identity, so the monitoring compares it with its "
            "baseline)"
        )
    dataset = open_for_unlearning(data, ())
    if source["inputs"].get("dataset") != dataset["digest"]:
        raise ConfigError(
            f"{model} was unlearned on dataset {source['inputs'].get('dataset')}, not on "
            f"{data} ({dataset['digest']}): the drill must re-teach its own forget set"
        )
    net = loaded.model
    torch.manual_seed(cfg.seed)
    pools = load_unlearn_pools(
        data,
        dataset,
        (),
        get_tokenizer(loaded.arch),
        image_size(net),
        retain_size=0,
        seed=cfg.seed,
        with_retain=False,
    )
    forget = pools["forget"]
    mean, std = image_normalisation(net)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(cfg.seed)
    batch = min(cfg.batch, len(forget))
    net.train()
    losses = []
    for _ in range(cfg.steps):
        idx = torch.randperm(len(forget), generator=generator)[:batch]
        x = (forget.images[idx].float() / 255.0 - mean) / std
        output = net(x, forget.tokens[idx])
        loss = clip_loss(
            output["image_features"].float(),
            output["text_features"].float(),
            output["logit_scale"].float(),
            forget.caption_ids[idx],
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    net.eval()
    log.info("drill: %d steps on %d forget samples, loss %.4f -> %.4f",
             cfg.steps, len(forget), losses[0], losses[-1])  # fmt: skip
    with staged_output(out, force) as tmp:
        tmp = Path(tmp)
        save_model(tmp, net, loaded.arch, {"variant": "unlearned", "drill": asdict(cfg),
                                           "package_version": __version__})  # fmt: skip
        keep = ("method", "method_params", "method_code", "budget", "seed", "profile",
                "dataset_profile")  # fmt: skip
        manifest = write_manifest(
            tmp,
            "model",
            config=asdict(cfg),
            inputs={"dataset": dataset["digest"], "model": source["digest"]},
            architecture=loaded.arch,
            variant="unlearned",
            **{k: source[k] for k in keep if k in source},
            source={"path": str(model), "digest": source["digest"], "variant": "unlearned"},
            drill={
                **asdict(cfg),
                "forget_samples": len(forget),
                "first_loss": round(losses[0], 5),
                "final_loss": round(losses[-1], 5),
            },
        )
    return manifest


# Measured with `salmubench monitor noise runs/protocol/world-*/evals/*`: the tiny profile,
# 9 methods x 2 seeds x 3 worlds at budget 5 (27 groups of 2 evaluations); "margin" is
# K_SIGMA x sd rounded up to 3 decimals. Re-measure at the scale you monitor and paste.
MARGINS: dict[str, dict[str, float]] = {
    "retfail": {"sd": 0.00822, "max_seed_difference": 0.0279, "margin": 0.025},
    "assoc_str": {"sd": 0.01662, "max_seed_difference": 0.07818, "margin": 0.05},
    "core_assoc": {"sd": 0.02192, "max_seed_difference": 0.108, "margin": 0.066},
    "idzsc": {"sd": 0.01371, "max_seed_difference": 0.04889, "margin": 0.042},
}
K_SIGMA = 3.0  # a one-sided 3-sigma rise: ~0.13 % false alarms per series under Gaussian noise
STALE_HOURS = 36  # the schedule is nightly: one missed night plus the slack of a slow run
GROUP = "salmubench-leakage"
# The label sets that name a re-evaluated model's series (the Pushgateway group).
BY_MODEL = "job, model, dataset"
BY_SERIES = "job, model, dataset, metric"
RESURFACED = "SalmubenchForgottenAssociationResurfaced"
STALE = "SalmubenchReevaluationStale"
FAILED = "SalmubenchReevaluationFailed"
NO_BASELINE = "SalmubenchBaselineMissing"


# --------------------------------------------------------------------------- noise


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


# --------------------------------------------------------------------------- rules


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


# --------------------------------------------------------------------------- dashboard


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


# --------------------------------------------------------------------------- files


class _Dumper(yaml.SafeDumper):
    """Long strings folded (`>-`), so that every line fits yamllint's 100 columns; a
    folded scalar reads back as the same one-line string."""


def _fold(dumper: yaml.SafeDumper, text: str):
    style = ">" if len(text) > 60 and "\n" not in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _fold)


def _yaml(obj: Any, header: str) -> str:
    body = yaml.dump(obj, Dumper=_Dumper, sort_keys=False, width=60, allow_unicode=True)
    return "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + body


HEADER = (
    "Generated by `salmubench monitor rules` from MARGINS in src/salmubench/monitor.py\n"
    f"(job {JOB}): edit and regenerate; a test fails on drift."
)


def rendered(margin: dict[str, float] | None = None) -> dict[str, str]:
    """File name -> text of everything `render_all` writes."""
    margin = margin or margins()
    return {
        "salmubench-rules.yaml": _yaml(rules(margin), HEADER),
        "prometheusrule.yaml": _yaml(
            prometheus_rule(margin),
            HEADER + "\nSelected by kube-prometheus-stack's default ruleSelector (release label).",
        ),
        "grafana-dashboard.json": json.dumps(dashboard(margin), indent=2) + "\n",
    }


def render_all(out: str | Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return written


# --------------------------------------------------------------------------- command line


def add_commands(sub, common) -> None:
    """`salmubench drill` and `salmubench monitor baseline|push|failed|noise|rules`: parse,
    call one function above, print where the result went."""
    p = sub.add_parser(
        "drill",
        help="re-teach an unlearned model its forget set (should fire the resurfacing alert)",
        parents=[common],
    )
    p.add_argument("--data", required=True, help="the dataset folder the model was unlearned on")
    p.add_argument("--model", required=True, help="the unlearned model folder")
    p.add_argument("--out", required=True, help="the drilled model folder to write")
    for name, field in DrillConfig.__dataclass_fields__.items():
        p.add_argument(f"--{name}", type=type(field.default), default=field.default,
                       help=f"default {field.default}")  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.set_defaults(func=_cmd_drill)

    # The options of `common` go on each action only: on both levels, the action's defaults
    # would overwrite what was given before it.
    p = sub.add_parser("monitor", help="leakage monitoring: baselines, pushes, rules")
    msub = p.add_subparsers(dest="monitor_command", required=True, metavar="ACTION")
    q = msub.add_parser("baseline", help="record an evaluation as its model's baseline",
                        parents=[common])  # fmt: skip
    q.add_argument("--eval", required=True, help="the evaluation folder of the unlearned model")
    q.add_argument("--store", default=baselines(), required=baselines() is None,
                   help=f"baselines folder or s3:// prefix (${BASELINES_ENV})")  # fmt: skip
    q.add_argument("--force", action="store_true", help="replace the model's baseline")
    q.set_defaults(func=_cmd_baseline)
    q = msub.add_parser("push", help="push a re-evaluation beside its baseline",
                        parents=[common])  # fmt: skip
    q.add_argument("--eval", required=True, help="the evaluation folder of the re-evaluation")
    q.add_argument("--store", default=baselines(), help=f"baselines (default ${BASELINES_ENV})")
    q.add_argument("--gateway", default=telemetry.gateway(), required=telemetry.gateway() is None,
                   help=f"Pushgateway URL (default ${telemetry.GATEWAY_ENV})")  # fmt: skip
    q.set_defaults(func=_cmd_push)
    q = msub.add_parser("failed", help="report a failed re-evaluation of a model (one run "
                        "outside the pipeline)", parents=[common])  # fmt: skip
    q.add_argument("--model", required=True, help="the model folder (or s3:// URL) re-evaluated")
    q.add_argument("--gateway", default=telemetry.gateway(), required=telemetry.gateway() is None,
                   help=f"Pushgateway URL (default ${telemetry.GATEWAY_ENV})")  # fmt: skip
    q.set_defaults(func=_cmd_failed)
    q = msub.add_parser("noise", help="measure each efficacy metric's noise across seeds",
                        parents=[common])  # fmt: skip
    q.add_argument("evals", nargs="+", help="evaluation folders of unlearned models")
    q.add_argument("--k-sigma", type=float, default=K_SIGMA, help=f"default {K_SIGMA:g}")
    q.set_defaults(func=_cmd_noise)
    q = msub.add_parser("rules", help="write the rules, PrometheusRule and dashboard",
                        parents=[common])  # fmt: skip
    q.add_argument("--out", default="k8s/monitoring", help="default k8s/monitoring")
    q.set_defaults(func=_cmd_rules)


def _cmd_drill(args) -> int:
    cfg = DrillConfig(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed)
    manifest = drill(args.data, args.model, args.out, cfg, force=args.force)
    if not args.quiet:
        d = manifest["drill"]
        print(f"drilled {telemetry.identity(manifest)}: {d['steps']} steps on "
              f"{d['forget_samples']} forget samples, loss {d['first_loss']} -> "
              f"{d['final_loss']} -> {args.out}")  # fmt: skip
    return 0


def _cmd_baseline(args) -> int:
    location = record_baseline(args.eval, args.store, force=args.force)
    if not args.quiet:
        print(f"baseline recorded at {location}")
    return 0


def _cmd_push(args) -> int:
    from salmubench.manifest import read_manifest

    ok = report_reevaluation(read_manifest(args.eval, kind="eval"), args.gateway, args.store)
    return 0 if ok else 1


def _cmd_failed(args) -> int:
    labels = report_failure(args.model, args.gateway)
    if not args.quiet:
        print(f"re-evaluation failure of {labels} pushed to {args.gateway}")
    return 0


def _cmd_noise(args) -> int:
    print(json.dumps(measure_noise(args.evals, args.k_sigma), indent=2))
    return 0


def _cmd_rules(args) -> int:
    for path in render_all(args.out):
        print(path)
    return 0
