"""Prometheus telemetry: what a stage pushes, checked against a real HTTP endpoint."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
from prometheus_client.parser import text_string_to_metric_families

from salmubench import telemetry
from salmubench.cli import main
from salmubench.eval.metrics import METRICS

REPO = Path(__file__).resolve().parents[1]


class Pushgateway:
    """A Pushgateway-compatible endpoint on 127.0.0.1 that records every push.

    `pushes` holds (method, grouping key as a dict, parsed samples {name: [(labels, value)]});
    `bodies` the exposition text of each push, as sent.
    """

    def __init__(self) -> None:
        self.pushes: list[tuple[str, dict[str, str], dict[str, list]]] = []
        self.bodies: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                # /metrics/job/<job>/<label>/<value>/...
                parts = [unquote(p) for p in self.path.split("/")[2:]]
                key = dict(zip(parts[::2], parts[1::2], strict=True))
                samples: dict[str, list] = {}
                for family in text_string_to_metric_families(body):
                    for s in family.samples:
                        samples.setdefault(s.name, []).append((s.labels, s.value))
                recorder.pushes.append((self.command, key, samples))
                recorder.bodies.append(body)
                self.send_response(200)
                self.end_headers()

            do_PUT = do_POST = _record

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def by_stage(self, stage: str) -> list[tuple[str, dict, dict]]:
        return [p for p in self.pushes if p[1].get("stage") == stage]


@pytest.fixture
def gateway(monkeypatch):
    gw = Pushgateway()
    monkeypatch.setenv(telemetry.GATEWAY_ENV, gw.url)
    monkeypatch.delenv(telemetry.RUN_ID_ENV, raising=False)
    yield gw
    gw.close()


def _folder(tmp_path: Path, name: str, manifest: dict) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_eval_pushes_the_ten_metrics_labelled_by_variant_and_method(tmp_path, gateway, monkeypatch):
    monkeypatch.setenv(telemetry.RUN_ID_ENV, "run-42")
    values = {name: 0.1 * i for i, name in enumerate(METRICS)}
    model = {"variant": "unlearned", "method": "neg_grad", "seed": 3, "budget": 5.0,
             "dataset": "ab" * 32}  # fmt: skip
    out = _folder(tmp_path, "eval", {"kind": "eval", "model": model, "metrics": values})

    before = time.time()
    assert telemetry.report_stage("eval", out, 1.5)

    [(method, key, samples)] = gateway.pushes
    assert method == "PUT"  # replaces the group: a re-run does not leave stale series
    # The job and the model it evaluated, never the run: one group per model, not per run.
    assert key == {
        "job": "salmubench",
        "stage": "eval",
        "model": "neg_grad-b5-s3",
        "dataset": "ab" * 6,
    }
    assert samples["salmubench_stage_duration_seconds"] == [({}, 1.5)]
    [(_, stamp)] = samples["salmubench_stage_last_success_timestamp_seconds"]
    assert before <= stamp <= time.time()
    assert len(METRICS) == 10
    for name, value in values.items():
        [(labels, pushed)] = samples[f"salmubench_eval_{name}"]
        assert labels == {"variant": "unlearned", "method": "neg_grad"}
        assert pushed == pytest.approx(value)


def test_train_and_unlearn_push_samples_and_final_losses(tmp_path, gateway):
    train = _folder(
        tmp_path,
        "clean",
        {
            "kind": "model",
            "variant": "clean",
            "seed": 0,
            "samples_seen": 12800,
            "training": {"final_loss": 3.25},
        },
    )
    unlearned = _folder(
        tmp_path,
        "u",
        {
            "kind": "model",
            "method": "grad_diff",
            "seed": 1,
            "steps": 7,
            "unlearning": {"final": {"forget": -1.5, "retain": 2.0}},
        },
    )
    assert telemetry.report_stage("train", train, 10.0)
    assert telemetry.report_stage("unlearn", unlearned, 2.0)

    (_, tkey, tsamples), (_, ukey, usamples) = gateway.pushes
    assert tkey["model"] == "clean" and ukey["model"] == "grad_diff-s1"
    assert tsamples["salmubench_train_samples"] == [({"variant": "clean"}, 12800.0)]
    assert tsamples["salmubench_train_final_loss"] == [({"variant": "clean"}, 3.25)]
    assert sorted(usamples["salmubench_unlearn_final_loss"], key=str) == [
        ({"method": "grad_diff", "term": "forget"}, -1.5),
        ({"method": "grad_diff", "term": "retain"}, 2.0),
    ]
    # Every name carries the project prefix and none uses a non-base unit.
    names = {n for _, _, s in gateway.pushes for n in s}
    assert all(n.startswith("salmubench_") for n in names)


def test_the_stage_command_pushes_through_the_cli_hook(tmp_path, gateway):
    out = tmp_path / "data"
    code = main(
        [
            "synth",
            "--profile",
            "micro",
            "--out",
            str(out),
            "--quiet",
            "--workers",
            "1",
            "--params",
            str(REPO / "params.yaml"),
        ]
    )
    assert code == 0
    [(_, key, samples)] = gateway.by_stage("synth")
    assert set(key) == {"job", "stage", "dataset"} and key["stage"] == "synth"
    [(_, seconds)] = samples["salmubench_stage_duration_seconds"]
    assert seconds > 0
    assert {labels["split"] for labels, _ in samples["salmubench_dataset_samples"]} >= {
        "forget_identity",
        "holdout_identity",
        "retain_real",
    }


def test_no_gateway_means_no_network(tmp_path, monkeypatch):
    monkeypatch.delenv(telemetry.GATEWAY_ENV, raising=False)

    def refuse(*args, **kwargs):
        raise AssertionError("telemetry opened a connection with no gateway configured")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    out = _folder(
        tmp_path,
        "eval",
        {"kind": "eval", "model": {"variant": "clean"}, "metrics": dict.fromkeys(METRICS, 0.0)},
    )
    assert telemetry.report_stage("eval", out, 1.0) is False


def test_an_unreachable_gateway_warns_and_does_not_fail(tmp_path, monkeypatch, caplog):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(telemetry.GATEWAY_ENV, f"http://127.0.0.1:{port}")
    out = _folder(
        tmp_path,
        "clean",
        {"kind": "model", "variant": "clean", "samples_seen": 1, "training": {"final_loss": 1.0}},
    )
    assert telemetry.report_stage("train", out, 1.0) is False
    assert "could not push train metrics" in caplog.text


def promtool_check_metrics(exposition: str) -> subprocess.CompletedProcess:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: `make test` installs Debian's prometheus package")
    return subprocess.run(
        [path, "check", "metrics"], input=exposition, capture_output=True, text=True, check=False
    )


def test_promtool_check_metrics_is_clean_on_every_stage_exposition(tmp_path, gateway, monkeypatch):
    """Every stage's push, as sent, plus the re-evaluation's and a failure's, linted by
    Prometheus's own `promtool check metrics` (naming, units, _total on counters only)."""
    from salmubench import monitor

    dataset = "cd" * 32
    model = {"variant": "unlearned", "method": "neg_grad", "seed": 0, "budget": 5.0,
             "dataset": dataset}  # fmt: skip
    evaluation = {"kind": "eval", "model": model, "metrics": dict.fromkeys(METRICS, 0.25)}
    manifests = {
        "synth": {"kind": "dataset", "digest": dataset, "counts": {"forget": 10, "retain": 5}},
        "train": {"kind": "model", "variant": "clean", "seed": 0, "samples_seen": 64,
                  "inputs": {"dataset": dataset}, "training": {"final_loss": 2.5}},
        "unlearn": {"kind": "model", "variant": "unlearned", "method": "neg_grad", "seed": 0,
                    "budget": 5.0, "inputs": {"dataset": dataset}, "steps": 3,
                    "unlearning": {"final": {"forget": -1.0}}},
        "eval": evaluation,
        "report": {"kind": "report"},
    }  # fmt: skip
    assert set(manifests) == set(telemetry.STAGES)
    store = tmp_path / "baselines"
    monkeypatch.setenv(monitor.BASELINES_ENV, str(store))
    for stage, manifest in manifests.items():
        assert telemetry.report_stage(stage, _folder(tmp_path, stage, manifest), 1.0)
    # what the CLI pushes after a monitored eval (no baseline yet: current values only)
    assert monitor.report_reevaluation(evaluation, gateway.url)
    unlearned = _folder(tmp_path, "model", manifests["unlearn"])
    monitor.report_failure(unlearned, gateway.url)
    # stages + the re-evaluation push of the unlearned eval (no baseline yet) + the failure
    assert len(gateway.bodies) == len(telemetry.STAGES) + 2
    for body in gateway.bodies:
        proc = promtool_check_metrics(body)
        assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr + body
    # With a baseline the re-evaluation pushes both series; still clean.
    (store / dataset[:12]).mkdir(parents=True)
    (store / dataset[:12] / "neg_grad-b5-s0.json").write_text(
        json.dumps({"metrics": dict.fromkeys(monitor.EFFICACY, 0.2)})
    )
    assert monitor.report_reevaluation(evaluation, gateway.url)
    body = gateway.bodies[-1]
    assert "salmubench_efficacy_baseline" in body and "salmubench_efficacy_current" in body
    assert promtool_check_metrics(body).returncode == 0

    # The check can fail: the old names (a gauge called *_total) are flagged.
    bad = "# HELP salmubench_train_samples_total x\n# TYPE salmubench_train_samples_total gauge\n"
    proc = promtool_check_metrics(bad + "salmubench_train_samples_total 1\n")
    assert 'non-counter metrics should not have "_total" suffix' in proc.stdout + proc.stderr
