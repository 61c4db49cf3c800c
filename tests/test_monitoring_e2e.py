"""Leakage monitoring end to end, with Debian's Prometheus and Pushgateway on 127.0.0.1.

An unlearned micro model is evaluated and its baseline recorded; the re-evaluation (the
`salmubench eval` stage command with the Pushgateway and the baseline store set, as the
scheduled pipeline runs it) pushes; Prometheus, evaluating the committed rules, reports
no alert. The drill re-teaches the model its forget set; re-evaluated and pushed, the
resurfacing alert fires with the model in its labels.

With $SALMUBENCH_MONITORING_FIGURES set (a folder), the test also draws what it saw there:
monitoring-resurfacing.png (efficacy over the test against the baseline and the alert
threshold, read back from Prometheus) and monitoring-alerts.png (Prometheus's alerts page,
headless Chromium). That is how the pictures in docs/ are made.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from salmubench import monitor, telemetry
from salmubench.cli import main
from salmubench.config import stage_config

from s3server import free_port, wait_port

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "k8s/monitoring/salmubench-rules.yaml"
EVERY = "1s"  # scrape and rule evaluation interval of the test's Prometheus


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is missing: `make test` installs Debian's prometheus and "
            "prometheus-pushgateway packages (apt-get install prometheus prometheus-pushgateway)"
        )
    return path


class Servers:
    """Pushgateway and Prometheus (scraping it every second, with our rules)."""

    def __init__(self, root: Path) -> None:
        self.procs: list[subprocess.Popen] = []
        gw_port, prom_port = free_port(), free_port()
        self.gateway = f"http://127.0.0.1:{gw_port}"
        self.prometheus = f"http://127.0.0.1:{prom_port}"
        log = open(root / "servers.log", "w")  # noqa: SIM115 - closed with the processes
        self.log = log
        self.procs.append(
            subprocess.Popen(
                [
                    binary("prometheus-pushgateway"),
                    f"--web.listen-address=127.0.0.1:{gw_port}",
                    # Debian's default persists to /var/lib/prometheus: another run's series
                    # would come back
                    f"--persistence.file={root / 'pushgateway.data'}",
                ],
                stdout=log,
                stderr=log,
            )
        )
        config = {
            "global": {"scrape_interval": EVERY, "evaluation_interval": EVERY},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {
                    "job_name": "pushgateway",
                    "honor_labels": True,  # keep the pushed job/model labels, as the PodMonitor
                    "static_configs": [{"targets": [f"127.0.0.1:{gw_port}"]}],
                }
            ],
        }
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.procs.append(
            subprocess.Popen(
                [
                    binary("prometheus"),
                    f"--config.file={root / 'prometheus.yml'}",
                    f"--storage.tsdb.path={root / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                stdout=log,
                stderr=log,
            )
        )
        wait_port(gw_port)
        wait_port(prom_port)

    def api(self, path: str, **params: str) -> dict:
        url = f"{self.prometheus}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def value(self, query: str) -> float | None:
        result = self.api("query", query=query)["result"]
        return float(result[0]["value"][1]) if result else None

    def alerts(self, name: str) -> list[dict]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name]

    def wait(self, what: str, check, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            time.sleep(0.25)
        log = Path(self.log.name).read_text()[-3000:]
        raise AssertionError(f"timed out waiting for {what}; servers' log:\n{log}")

    def rules_evaluated_after(self, t: float) -> bool:
        groups = self.api("rules")["groups"]
        evaluated = [g["lastEvaluation"] for g in groups if g["name"] == monitor.GROUP]
        if not evaluated:
            return False
        # RFC 3339 with nanoseconds; seconds are enough here
        from datetime import datetime

        stamp = datetime.fromisoformat(evaluated[0][:26].rstrip("Z") + "+00:00")
        return stamp.timestamp() > t

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.log.close()


@pytest.fixture
def servers(tmp_path):
    s = Servers(tmp_path)
    yield s
    s.stop()


def reevaluate(data: Path, model: Path, out: Path) -> None:
    """The re-evaluation as the scheduled pipeline runs it: the eval stage command, with
    the Pushgateway and the baseline store in its environment."""
    code = main(["eval", "--profile", "micro", "--data", str(data), "--model", str(model),
                 "--out", str(out), "--quiet", "--params", str(REPO / "params.yaml")])  # fmt: skip
    assert code == 0


def test_a_drilled_model_fires_the_resurfacing_alert(
    micro_dataset, micro_models, servers, tmp_path, monkeypatch
):
    from salmubench.eval.stage import evaluate
    from salmubench.unlearn.loop import unlearn

    start = time.time()
    unlearned = tmp_path / "unlearned"
    unlearn(micro_dataset, micro_models["compromised"], "neg_grad",
            stage_config("unlearn", "micro", params_path=REPO / "params.yaml"), unlearned,
            profile="micro", seed=0)  # fmt: skip
    accepted = tmp_path / "eval-accepted"
    evaluate(micro_dataset, unlearned, accepted,
             cfg=stage_config("eval", "micro", params_path=REPO / "params.yaml"))  # fmt: skip
    store = tmp_path / "baselines"
    assert main(["monitor", "baseline", "--eval", str(accepted), "--store", str(store)]) == 0

    monkeypatch.setenv(telemetry.GATEWAY_ENV, servers.gateway)
    monkeypatch.setenv(monitor.BASELINES_ENV, str(store))
    labels = telemetry.identity(json.loads((unlearned / "manifest.json").read_text()))
    model = labels["model"]
    sel = f'model="{model}",dataset="{labels["dataset"]}"'

    # Night 1: the model as accepted. Current equals baseline; nothing fires.
    reevaluate(micro_dataset, unlearned, tmp_path / "eval-night-1")
    servers.wait("the re-evaluation in Prometheus",
                 lambda: servers.value(f'{monitor.CURRENT}{{{sel},metric="retfail"}}'))  # fmt: skip
    seen = time.time()
    servers.wait("a rule evaluation after the push", lambda: servers.rules_evaluated_after(seen))
    for metric in monitor.EFFICACY:
        s = f'{sel},metric="{metric}"'
        current, base = (
            servers.value(f"{monitor.CURRENT}{{{s}}}"),
            servers.value(f"{monitor.BASELINE}{{{s}}}"),
        )
        assert current is not None and current == pytest.approx(base)
    assert servers.alerts(monitor.RESURFACED) == []
    assert servers.alerts(monitor.NO_BASELINE) == []  # the baseline joined
    assert servers.value(f"{monitor.LAST_SUCCESS}{{{sel}}}") >= start

    # Night 2: the checkpoint was re-taught its forget set (the drill); same model name.
    drilled = tmp_path / "drilled"
    code = main(["drill", "--data", str(micro_dataset), "--model", str(unlearned),
                 "--out", str(drilled), "--steps", "10", "--quiet"])  # fmt: skip
    assert code == 0
    full = json.loads((drilled / "manifest.json").read_text())["drill"]
    assert full["steps"] == 10 and full["attack"] == "full"
    # The drill can replay a relearning attack instead (the attack stage's own pool code):
    # persona_split re-teaches only some forget personas; a wrong name is refused first.
    split = tmp_path / "drilled-split"
    code = main(["drill", "--data", str(micro_dataset), "--model", str(unlearned), "--out",
                 str(split), "--steps", "2", "--attack", "persona_split", "--quiet"])  # fmt: skip
    d = json.loads((split / "manifest.json").read_text())["drill"]
    assert code == 0 and d["pool"] == "forget" and d["personas_trained_on"]
    assert 0 < d["forget_samples"] < full["forget_samples"]
    bad = ["drill", "--data", str(micro_dataset), "--model", str(unlearned),
           "--out", str(tmp_path / "bad"), "--attack", "quantise", "--quiet"]  # fmt: skip
    assert main(bad) == 2 and not (tmp_path / "bad").exists()
    reevaluate(micro_dataset, drilled, tmp_path / "eval-night-2")
    firing = servers.wait(
        "the resurfacing alert",
        lambda: [a for a in servers.alerts(monitor.RESURFACED) if a["state"] == "firing"],
    )
    assert {a["labels"]["model"] for a in firing} == {model}
    metrics = {a["labels"]["metric"] for a in firing}
    assert metrics and metrics <= set(monitor.EFFICACY)
    for alert in firing:  # baseline and current are in the annotations, as numbers
        base, current = (float(alert["annotations"][k]) for k in ("baseline", "current"))
        assert current - base > monitor.margins()[alert["labels"]["metric"]]
    elapsed = time.time() - start
    print(f"monitoring e2e: {elapsed:.1f} s; firing on {sorted(metrics)}")

    if os.environ.get("SALMUBENCH_MONITORING_FIGURES"):
        figures = Path(os.environ["SALMUBENCH_MONITORING_FIGURES"])
        draw(servers, sel, start, figures / "monitoring-resurfacing.png", firing)
        screenshot(f"{servers.prometheus}/classic/alerts",
                   figures / "monitoring-alerts.png")  # fmt: skip


def screenshot(url: str, out: Path) -> None:
    """Prometheus's alerts page, as an operator's browser shows it: Debian's chromium,
    driven over the DevTools protocol to expand the firing alerts and their annotations
    (Debian's Prometheus ships the classic UI only, whose rows open on a click)."""
    import websocket  # websocket-client, installed with the kubernetes client

    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("chromium is missing: apt-get install chromium (only for the figures)")
    port = free_port()
    proc = subprocess.Popen(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--remote-debugging-port={port}", "--window-size=1400,1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_port(port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5) as r:
            [page] = [p for p in json.load(r) if p["type"] == "page"]
        ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
        calls = iter(range(1, 100))

        def call(method: str, **params) -> dict:
            n = next(calls)
            ws.send(json.dumps({"id": n, "method": method, "params": params}))
            while True:
                reply = json.loads(ws.recv())
                if reply.get("id") == n:
                    return reply.get("result", {})

        call("Page.enable")
        call("Page.navigate", url=url)
        time.sleep(2)  # the page and its jQuery handlers
        call("Runtime.evaluate", expression=(
            "$('#alertsTable > tbody > tr.alert-success').hide();"
            "$('tr.alert_header.alert-danger').first().click();"
            "$('div.show-annotations').click();"))  # fmt: skip
        height = call("Runtime.evaluate", expression="document.body.scrollHeight")
        call("Emulation.setDeviceMetricsOverride", width=1400, deviceScaleFactor=1,
             height=int(height["result"]["value"]) + 20, mobile=False)  # fmt: skip
        time.sleep(0.5)
        shot = call("Page.captureScreenshot", format="png")
        ws.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    import base64

    out.write_bytes(base64.b64decode(shot["data"]))


def draw(servers: Servers, sel: str, start: float, out: Path, firing: list[dict]) -> None:
    """What the operator's dashboard shows, from the test's Prometheus: each efficacy
    metric over the test against its baseline and alert threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = time.time() + 1
    margins = monitor.margins()
    fig, axes = plt.subplots(1, len(monitor.EFFICACY), figsize=(14, 3.4), sharex=True)
    fired = {a["labels"]["metric"] for a in firing}
    for ax, metric in zip(axes, monitor.EFFICACY, strict=True):
        rows = {}
        for name in (monitor.CURRENT, monitor.BASELINE):
            result = servers.api(
                "query_range",
                query=f'{name}{{{sel},metric="{metric}"}}',
                start=str(start),
                end=str(end),
                step="1",
            )["result"]
            rows[name] = [(float(t) - start, float(v)) for t, v in result[0]["values"]]
        t, cur = zip(*rows[monitor.CURRENT], strict=True)
        tb, base = zip(*rows[monitor.BASELINE], strict=True)
        ax.step(tb, base, where="post", color="grey", linewidth=5, alpha=0.4, label="baseline")
        ax.step(tb, [b + margins[metric] for b in base], where="post", color="tab:red",
                linestyle="--", label=f"alert threshold (+{margins[metric]})")  # fmt: skip
        ax.step(t, cur, where="post", color="tab:blue", label="current (re-evaluation)")
        ax.set_title(f"{metric}" + ("  — ALERT FIRING" if metric in fired else ""),
                     color="tab:red" if metric in fired else "black", fontsize=10)  # fmt: skip
        ax.set_xlabel("seconds into the test")
    axes[0].set_ylabel("efficacy (lower = more forgotten)")
    axes[0].legend(fontsize=7, loc="upper left")
    model = firing[0]["labels"]["model"]
    fig.suptitle(
        f"{model}: re-evaluated as accepted (no alert), then after the resurfacing drill "
        f"(Prometheus 2.42 + Pushgateway 1.5, rules from k8s/monitoring)",
        fontsize=10,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
