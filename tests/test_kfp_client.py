"""upload / submit / schedule against an HTTP server speaking just enough KFP v2beta1 REST.

No KFP API server can run here, so this server answers the calls kfp 2.17's Client makes
(healthz, pipeline lookup by name, upload, upload_version, experiments, runs, recurring
runs) and records every request; the tests check what the client sent.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from salmubench_pipelines.client import check_cron, git_revision, version_name

from salmubench import __version__
from salmubench.cli import main

API = "/apis/v2beta1"


class FakeKFP:
    """Records (method, path, query, body) and answers like a KFP 2.x API server."""

    def __init__(self, existing: set[str] = frozenset()) -> None:
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.pipelines = {name: f"id-{name}" for name in existing}
        kfp = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                kfp.requests.append((self.command, url.path, query, body))
                reply = kfp.reply(self.command, url.path, query, body)
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reply(self, method: str, path: str, query: dict, body: bytes) -> dict:
        if path == f"{API}/healthz":
            return {"multi_user": False}
        if method == "GET" and path == f"{API}/pipelines":
            [predicate] = json.loads(query["filter"])["predicates"]
            name = (
                predicate["string_value"]
                if "string_value" in predicate
                else predicate["stringValue"]
            )
            found = self.pipelines.get(name)
            return {"pipelines": [{"pipeline_id": found, "display_name": name}]} if found else {}
        if path == f"{API}/pipelines/upload":
            self.pipelines[query["name"]] = f"id-{query['name']}"
            return {"pipeline_id": self.pipelines[query["name"]], "display_name": query["name"]}
        if path == f"{API}/pipelines/upload_version":
            return {
                "pipeline_id": query["pipelineid"],
                "pipeline_version_id": "v-1",
                "display_name": query["name"],
            }
        if method == "GET" and path == f"{API}/experiments":
            return {}
        if method == "POST" and path == f"{API}/experiments":
            return {"experiment_id": "exp-1", **json.loads(body)}
        if method == "POST" and path == f"{API}/runs":
            return {"run_id": "run-1"}
        if method == "POST" and path == f"{API}/recurringruns":
            return {"recurring_run_id": "rr-1"}
        raise AssertionError(f"unexpected {method} {path}")

    def calls(self, method: str, path: str) -> list[tuple[dict, bytes]]:
        return [(q, b) for m, p, q, b in self.requests if m == method and p == f"{API}{path}"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def kfp_home(tmp_path, monkeypatch):
    # kfp.Client reads ~/.config/kfp/context.json: keep a developer's own settings out.
    monkeypatch.setenv("HOME", str(tmp_path))


def test_upload_creates_or_versions_each_pipeline(kfp_home, capsys):
    server = FakeKFP(existing={"salmubench-benchmark"})
    try:
        assert main(["pipeline", "upload", "--host", server.url]) == 0
    finally:
        server.close()
    uploads = server.calls("POST", "/pipelines/upload")
    versions = server.calls("POST", "/pipelines/upload_version")
    # New pipelines are created first; every pipeline then gets a new named version.
    assert sorted(q["name"] for q, _ in uploads) == [
        "salmubench-reevaluate",
        "salmubench-unlearn-eval",
    ]
    assert len(versions) == 3
    revision = git_revision()
    for query, body in versions:
        assert query["name"] == f"v{__version__}-{revision}"
        assert __version__ in query["name"] and revision in query["name"]
        assert query["pipelineid"].startswith("id-salmubench-")
        assert b"PIPELINE DEFINITION" in body  # the compiled YAML itself, multipart
    assert dict(versions[0][0])["pipelineid"] == "id-salmubench-benchmark"


def test_schedule_sends_cron_concurrency_catchup_and_no_cache(kfp_home):
    server = FakeKFP()
    uris = '["minio://b/unlearned/neg_grad","minio://b/unlearned/finetune"]'
    try:
        code = main(
            [
                "pipeline",
                "schedule",
                "--host",
                server.url,
                "--cron",
                "0 0 3 * * *",
                "--param",
                "dataset_uri=minio://b/dataset",
                "--param",
                "clean_uri=minio://b/clean",
                "--param",
                "compromised_uri=minio://b/comp",
                "--param",
                f"unlearned_uris={uris}",
            ]
        )
    finally:
        server.close()
    assert code == 0
    [(_, body)] = server.calls("POST", "/recurringruns")
    job = json.loads(body)
    assert job["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
    assert int(job["max_concurrency"]) == 1  # int64: JSON string in the REST API
    assert job["no_catchup"] is True
    assert job["mode"] == "ENABLE"
    assert job["runtime_config"]["parameters"]["unlearned_uris"] == json.loads(uris)
    # With Kubernetes settings the client sends {pipeline_spec, platform_spec}.
    spec = job["pipeline_spec"]["pipeline_spec"]
    assert "secretAsEnv" in json.dumps(job["pipeline_spec"]["platform_spec"])
    tasks = _all_tasks(spec)
    assert tasks and not any(t.get("cachingOptions", {}).get("enableCache") for t in tasks)
    assert spec["pipelineInfo"]["name"] == "salmubench-reevaluate"


def test_submit_starts_a_run_with_parameters(kfp_home):
    server = FakeKFP()
    try:
        code = main(
            [
                "pipeline",
                "submit",
                "--host",
                server.url,
                "--param",
                "profile=micro",
                "--param",
                "methods=neg_grad,finetune",
                "--param",
                "seeds=[0,1]",
            ]
        )
    finally:
        server.close()
    assert code == 0
    [(_, body)] = server.calls("POST", "/runs")
    run = json.loads(body)
    assert run["runtime_config"]["parameters"] == {
        "profile": "micro",
        "methods": "neg_grad,finetune",
        "seeds": [0, 1],
    }
    assert run["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "salmubench-benchmark"
    assert run["display_name"].endswith(version_name())
    [(_, exp)] = server.calls("POST", "/experiments")
    assert json.loads(exp)["display_name"] == "salmubench"


def _all_tasks(spec: dict) -> list[dict]:
    tasks = list(spec["root"]["dag"]["tasks"].values())
    for comp in spec["components"].values():
        tasks += [
            t
            for t in comp.get("dag", {}).get("tasks", {}).values()
            if "componentRef" in t and not t["componentRef"]["name"].startswith("comp-for")
        ]
    return [t for t in tasks if "parameterIterator" not in t]


def test_bad_cron_and_parameters_name_what_is_valid(capsys):
    with pytest.raises(ValueError, match=r"'0 3 \* \* \*'.*6 fields with SECONDS first.*got 5"):
        check_cron("0 3 * * *")
    assert check_cron("0 0 3 * * *") == "0 0 3 * * *"
    assert check_cron("@every 6h") == "@every 6h"
    code = main(["pipeline", "submit", "--host", "http://127.0.0.1:9", "--param", "profle=tiny"])
    assert code == 2
    err = capsys.readouterr().err
    assert re.search(r"'profle=tiny'.*KEY one of .*profile", err)
    code = main(["pipeline", "schedule", "--host", "http://127.0.0.1:9", "--cron", "0 0 3 * * *"])
    assert code == 2
    assert "needs --param for: " in capsys.readouterr().err


def test_compiled_yaml_is_what_the_client_sends():
    # The files uploaded are the committed ones, parseable as two YAML documents.
    from salmubench_pipelines.compile import COMPILED

    for path in sorted(COMPILED.glob("*.yaml")):
        with open(path, encoding="utf-8") as f:
            spec, platform = yaml.safe_load_all(f)
        assert spec["pipelineInfo"]["name"] == f"salmubench-{path.stem}"
        assert "kubernetes" in platform["platforms"]
