"""The leakage alerts under `promtool test rules` (Prometheus 2.42 from Debian), and the
committed rules, PrometheusRule and dashboard equal to what `salmubench monitor rules`
renders from the measured margins."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from salmubench import monitor
from salmubench.eval.metrics import METRICS

REPO = Path(__file__).resolve().parents[1]
DEPLOYED = REPO / "k8s/monitoring"
JOB = {"job": monitor.JOB}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: `make test` installs Debian's prometheus package")
    return path


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    body = ", ".join(f'{k}="{v}"' for k, v in {**JOB, **labels}.items())
    return {"series": f"{name}{{{body}}}", "values": values}


def efficacy(model: str, baseline: dict[str, float] | None, current: dict[str, float]):
    """Series of one re-evaluated model, constant over the test (1 m steps, 1 h)."""
    out = []
    for metric in monitor.EFFICACY:
        labels = {"model": model, "dataset": "d", "metric": metric}
        out.append(series(monitor.CURRENT, labels, f"{current[metric]}x60"))
        if baseline is not None:
            out.append(series(monitor.BASELINE, labels, f"{baseline[metric]}x60"))
    return out


def expected(alert_labels: dict, model: str, metric: str | None, base, cur, **annotations):
    labels = {**JOB, "model": model, "dataset": "d", **alert_labels}
    if metric is not None:
        labels["metric"] = metric
    return {"exp_labels": labels, "exp_annotations": annotations, "_values": (base, cur)}


def annotations_of(rule: dict, labels: dict, value: float, base: str, cur: str) -> dict:
    """The rule's annotations with the alert's labels, value, baseline and current filled
    in the way Prometheus's templates render them (checked by promtool, not trusted)."""
    out = {}
    for key, text in rule["annotations"].items():
        if key == "baseline":
            out[key] = base
        elif key == "current":
            out[key] = cur
        else:
            rendered = text
            for name in ("model", "dataset", "metric"):
                rendered = rendered.replace(f"{{{{ $labels.{name} }}}}", labels.get(name, ""))
            rendered = rendered.replace('{{ $value | printf "%.4f" }}', f"{value:.4f}")
            out[key] = rendered
    return out


def run_promtool(
    tmp_path: Path, tests: list[dict], every: str = "1m"
) -> subprocess.CompletedProcess:
    rules = tmp_path / "rules.yaml"
    shutil.copy(DEPLOYED / "salmubench-rules.yaml", rules)
    spec = tmp_path / "tests.yaml"
    spec.write_text(
        yaml.safe_dump({"rule_files": [str(rules)], "evaluation_interval": every, "tests": tests})
    )
    return subprocess.run(
        [promtool(), "test", "rules", str(spec)], capture_output=True, text=True, check=False
    )


def rule(alert: str, metric: str | None = None) -> dict:
    for r in monitor.rules()["groups"][0]["rules"]:
        if r["alert"] == alert and (metric is None or f'metric="{metric}"' in r["expr"]):
            return r
    raise KeyError(alert)


def test_the_efficacy_metrics_mean_more_forgotten_when_lower():
    # The alert fires on a rise: it would be backwards for a "higher is better" metric.
    for name in monitor.EFFICACY:
        assert METRICS[name].family == "efficacy" and METRICS[name].better == "lower"


def test_resurfacing_fires_above_the_margin_and_not_inside_the_noise(tmp_path):
    margin = monitor.margins()
    base = {"retfail": 0.30, "assoc_str": 0.10, "core_assoc": 0.12, "idzsc": 0.05}
    # "leaky": RetFail rose by its margin + 0.01; the rest unchanged.
    leaky = {**base, "retfail": base["retfail"] + margin["retfail"] + 0.01}
    # "noisy": every metric rose by 80 % of its margin: within seed-to-seed noise.
    noisy = {m: v + 0.8 * margin[m] for m, v in base.items()}
    r = rule(monitor.RESURFACED, "retfail")
    labels = {"model": "leaky", "dataset": "d", "metric": "retfail"}
    alert = {
        "exp_labels": {**JOB, **labels, **r["labels"]},
        "exp_annotations": annotations_of(
            r, labels, leaky["retfail"] - base["retfail"], "0.3000", f"{leaky['retfail']:.4f}"
        ),
    }
    test = {
        "interval": "1m",
        "input_series": efficacy("leaky", base, leaky) + efficacy("noisy", base, noisy),
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": monitor.RESURFACED, "exp_alerts": [alert]}
        ],
    }
    proc = run_promtool(tmp_path, [test])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout

    # The test can fail: claiming the noisy model fires is refused by promtool.
    test["alert_rule_test"][0]["exp_alerts"].append(
        {**alert, "exp_labels": {**alert["exp_labels"], "model": "noisy"}}
    )
    proc = run_promtool(tmp_path, [test])
    assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr


def test_stale_failed_and_missing_baseline_alerts(tmp_path):
    values = {"retfail": 0.3, "assoc_str": 0.1, "core_assoc": 0.1, "idzsc": 0.05}
    steps = 6 * (monitor.STALE_HOURS + 2)  # 10-minute samples

    def stamp(model: str, name: str, value: int) -> dict:
        return series(name, {"model": model, "dataset": "d"}, f"{value}x{steps}")

    def model(name: str, baseline=values) -> list[dict]:
        out = []
        for metric in monitor.EFFICACY:
            labels = {"model": name, "dataset": "d", "metric": metric}
            out.append(series(monitor.CURRENT, labels, f"{values[metric]}x{steps}"))
            if baseline is not None:
                out.append(series(monitor.BASELINE, labels, f"{baseline[metric]}x{steps}"))
        return out

    inputs = [
        # "old" last succeeded at t=0; "fresh" 35 h later.
        *model("old"), stamp("old", monitor.LAST_SUCCESS, 0),
        *model("fresh"), stamp("fresh", monitor.LAST_SUCCESS, 35 * 3600),
        # "broken" failed after its last success; "recovered" succeeded after a failure;
        # "never" has only ever failed.
        *model("broken"), stamp("broken", monitor.LAST_SUCCESS, 35 * 3600),
        stamp("broken", monitor.LAST_FAILURE, 36 * 3600),
        *model("recovered"), stamp("recovered", monitor.LAST_FAILURE, 35 * 3600),
        stamp("recovered", monitor.LAST_SUCCESS, 36 * 3600),
        stamp("never", monitor.LAST_FAILURE, 36 * 3600),
        # "orphan" is re-evaluated but has no baseline.
        *model("orphan", baseline=None), stamp("orphan", monitor.LAST_SUCCESS, 35 * 3600),
    ]  # fmt: skip

    def alerts(alert: str, name: str, per_metric: bool, base: str = "") -> list[dict]:
        r = rule(alert)
        metrics = monitor.EFFICACY if per_metric else (None,)
        out = []
        for metric in metrics:
            labels = {"model": name, "dataset": "d", **({"metric": metric} if metric else {})}
            b = base or (f"{values[metric]:.4f}" if metric else "")
            c = f"{values[metric]:.4f}" if metric else ""
            ann = annotations_of(r, labels, 0.0, b, c)
            if not metric:  # no efficacy series: the templates find nothing
                ann["baseline"] = ann["current"] = "none"
            out.append({"exp_labels": {**JOB, **labels, **r["labels"]}, "exp_annotations": ann})
        return out

    stale = alerts(monitor.STALE, "old", per_metric=True)
    for a in stale:  # humanizeDuration of the age at 37 h
        a["exp_annotations"]["description"] = a["exp_annotations"]["description"].replace(
            "{{ $value | humanizeDuration }}", "1d 13h 0m 0s"
        )
    tests = [
        {
            "interval": "10m",
            "input_series": inputs,
            "alert_rule_test": [
                {"eval_time": "35h", "alertname": monitor.STALE, "exp_alerts": []},
                {"eval_time": "37h", "alertname": monitor.STALE, "exp_alerts": stale},
                {
                    "eval_time": "37h",
                    "alertname": monitor.FAILED,
                    "exp_alerts": alerts(monitor.FAILED, "broken", per_metric=True)
                    + alerts(monitor.FAILED, "never", per_metric=False),
                },
                {
                    "eval_time": "37h",
                    "alertname": monitor.NO_BASELINE,
                    "exp_alerts": alerts(monitor.NO_BASELINE, "orphan", True, base="none"),
                },
                # The models above are all inside the margin: nothing resurfaced.
                {"eval_time": "37h", "alertname": monitor.RESURFACED, "exp_alerts": []},
            ],
        }
    ]
    proc = run_promtool(tmp_path, tests, every="10m")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_committed_rules_prometheusrule_and_dashboard_are_rendered_from_the_margins():
    for name, text in monitor.rendered().items():
        assert (DEPLOYED / name).read_text(encoding="utf-8") == text, (
            f"k8s/monitoring/{name} is stale: run `salmubench monitor rules`"
        )
    proc = subprocess.run(
        [promtool(), "check", "rules", str(DEPLOYED / "salmubench-rules.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    spec = yaml.safe_load((DEPLOYED / "prometheusrule.yaml").read_text())["spec"]
    assert spec == yaml.safe_load((DEPLOYED / "salmubench-rules.yaml").read_text())
    # Every resurfacing rule's threshold is its metric's measured margin.
    for metric, margin in monitor.margins().items():
        assert rule(monitor.RESURFACED, metric)["expr"].endswith(f"> {margin}")
        assert margin == pytest.approx(monitor.K_SIGMA * monitor.MARGINS[metric]["sd"], abs=1e-3)
    board = json.loads((DEPLOYED / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    assert all(any(f'metric="{m}"' in e for e in exprs) for m in monitor.EFFICACY)
    assert any(monitor.LAST_SUCCESS in e for e in exprs)


def test_noise_is_the_pooled_spread_of_seeds(tmp_path):
    """measure_noise on hand-made evaluations: two groups of two seeds."""
    from salmubench.manifest import write_manifest

    values = {("a", 0): 0.10, ("a", 1): 0.14, ("b", 0): 0.50, ("b", 1): 0.48}
    dirs = []
    for (method, seed), v in values.items():
        folder = tmp_path / f"{method}-s{seed}"
        folder.mkdir()
        write_manifest(
            folder,
            "eval",
            config={},
            model={"method": method, "seed": seed, "budget": 5.0, "dataset": "x"},
            metrics=dict.fromkeys(monitor.EFFICACY, v),
        )
        dirs.append(folder)
    noise = monitor.measure_noise(dirs)
    # Pooled variance: ((0.02^2 * 2) + (0.01^2 * 2)) / 2 dof = 0.0005
    sd = 0.0005**0.5
    assert noise["groups"] == 2 and noise["evaluations"] == 4
    for metric in monitor.EFFICACY:
        assert noise["metrics"][metric]["sd"] == pytest.approx(sd, abs=1e-5)
        assert noise["metrics"][metric]["max_seed_difference"] == pytest.approx(0.04)
        assert noise["metrics"][metric]["margin"] == pytest.approx(0.068)  # ceil(3 sd, 3 dp)
    with pytest.raises(ValueError, match="two seeds"):
        monitor.measure_noise(dirs[::2])


LINT_PYTHON = Path(os.environ.get("SALMUBENCH_LINT_PYTHON", REPO / ".venv-lint/bin/python"))


def lint(*args: str) -> subprocess.CompletedProcess:
    if not LINT_PYTHON.exists():
        pytest.fail(f"{LINT_PYTHON} missing: create the checkers' venv with `make lint-venv`")
    return subprocess.run([str(LINT_PYTHON), str(REPO / "k8s/lint.py"), *args],
                          capture_output=True, text=True, cwd=REPO, check=False)  # fmt: skip


def test_the_component_renders_into_an_overlay_against_the_operator_schema(tmp_path):
    """A site overlay on ours (which includes `components: [k8s/monitoring]`) renders, its
    core objects validate strictly and the PrometheusRule matches the Prometheus Operator's
    CRD schema."""
    k8s = os.path.relpath(REPO / "k8s", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {k8s}/overlays/cpu\n"
    )
    proc = lint("--overlay", str(tmp_path), "--only", "render", "validate", "schemas")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "2 custom resources" in out  # the PodMonitor and the PrometheusRule
    rendered = subprocess.run(
        [str(LINT_PYTHON.parent / "kubectl"), "kustomize", str(tmp_path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(rendered) if d}
    rule_doc = docs[("PrometheusRule", "salmubench-leakage")]
    assert rule_doc["metadata"]["namespace"] == "salmubench"
    assert rule_doc["spec"] == monitor.rules()
    board = docs[("ConfigMap", "salmubench-grafana-dashboard")]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["salmubench-leakage.json"]) == monitor.dashboard()


def test_the_prometheusrule_schema_rejects_what_the_operator_would(tmp_path):
    bad = monitor.prometheus_rule()
    rule_ = bad["spec"]["groups"][0]["rules"][0]
    rule_["for"] = "5 minutes"  # not a Prometheus duration
    rule_["severity"] = "critical"  # belongs under labels
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = lint("--only", "schemas", "--manifest", str(path))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "FAIL schemas" in out, out
    assert "spec/groups/0/rules/0/for: '5 minutes' does not match" in out
    assert "'severity' was unexpected" in out


def test_the_monitor_commands_render_the_rules_and_measure_noise(tmp_path, capsys):
    from salmubench.cli import main
    from salmubench.manifest import write_manifest

    assert main(["monitor", "rules", "--out", str(tmp_path / "k8s")]) == 0
    for name, text in monitor.rendered().items():
        assert (tmp_path / "k8s" / name).read_text(encoding="utf-8") == text
    dirs = []
    for seed, value in enumerate((0.2, 0.3)):
        folder = tmp_path / f"e{seed}"
        folder.mkdir()
        write_manifest(folder, "eval", config={},
                       model={"method": "m", "seed": seed, "budget": 1.0, "dataset": "x"},
                       metrics=dict.fromkeys(monitor.EFFICACY, value))  # fmt: skip
        dirs.append(str(folder))
    capsys.readouterr()
    assert main(["monitor", "noise", *dirs]) == 0
    assert json.loads(capsys.readouterr().out) == monitor.measure_noise(dirs)


def test_every_export_of_the_package_is_what_it_names_not_a_submodule():
    """`salmubench.monitor` loads its pieces on first use; no piece shadows a name."""
    import types

    for name in monitor.__all__:
        assert not isinstance(getattr(monitor, name), types.ModuleType), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        monitor.nope  # noqa: B018


def test_building_the_cli_parser_imports_only_the_monitors_settings():
    """Every stage command builds the parser: it must not load (nor, through dvc.yaml's
    derived deps, depend on) the monitor's rules, dashboard, store or drill."""
    import sys

    code = (
        "import sys, salmubench.cli as c; c.build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith('salmubench.monitor')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.strip() == str(
        ["salmubench.monitor", "salmubench.monitor.commands", "salmubench.monitor.settings"]
    )
