"""Prometheus telemetry: what a stage pushes, checked against a real HTTP endpoint."""

from __future__ import annotations

import json
import socket
import threading
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

    `pushes` holds (method, grouping key as a dict, parsed samples {name: [(labels, value)]}).
    """

    def __init__(self) -> None:
        self.pushes: list[tuple[str, dict[str, str], dict[str, list]]] = []
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
    model = {"variant": "unlearned", "method": "neg_grad", "seed": 3}
    out = _folder(tmp_path, "eval", {"kind": "eval", "model": model, "metrics": values})

    assert telemetry.report_stage("eval", out, 1.5)

    [(method, key, samples)] = gateway.pushes
    assert method == "PUT"  # replaces the group: a re-run does not leave stale series
    assert key == {"job": "salmubench", "stage": "eval", "run_id": "run-42", "model": "neg_grad-s3"}
    assert samples["salmubench_stage_duration_seconds"] == [({}, 1.5)]
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
    assert tsamples["salmubench_train_samples_total"] == [({"variant": "clean"}, 12800.0)]
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
    assert key == {"job": "salmubench", "stage": "synth"}
    [(_, seconds)] = samples["salmubench_stage_duration_seconds"]
    assert seconds > 0
    assert {labels["split"] for labels, _ in samples["salmubench_dataset_samples_total"]} >= {
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
