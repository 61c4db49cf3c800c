"""upload / submit / schedule against a KFP server that holds to upstream's rules.

tests/kfp_server.py answers the calls kfp 2.17's Client makes with the rules of
kubeflow/pipelines' API server, multi-user mode included (namespaces, identity from a
token or the gateway's session cookie, authorization per namespace, unique names).
"""

from __future__ import annotations

import re

import pytest
import yaml
from kfp_server import KFPServer
from salmubench_pipelines.client import check_cron, git_revision, version_name

from salmubench import __version__
from salmubench.cli import main

VERSION = "v0.0.0-gtest"  # the tree may be dirty while tests run: name the version
NS = "team-a"
TOKEN = "sa-token-of-team-a"
USER = "system:serviceaccount:team-a:default-editor"
REEVAL = [
    "--param",
    "dataset_uri=minio://b/dataset",
    "--param",
    "clean_uri=minio://b/clean",
    "--param",
    "compromised_uri=minio://b/comp",
    "--param",
    'unlearned_uris=["minio://b/unlearned/neg_grad","minio://b/unlearned/finetune"]',
]


@pytest.fixture
def kfp_home(tmp_path, monkeypatch):
    # kfp.Client reads ~/.config/kfp/context.json: keep a developer's own settings out.
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("KFP_TOKEN", "KFP_COOKIES", "KFP_NAMESPACE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def multi_user(kfp_home, tmp_path):
    server = KFPServer(multi_user=True, tokens={TOKEN: USER}, access={USER: {NS}})
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    yield server, ["--host", server.url, "--namespace", NS, "--token-file", str(token)]
    server.close()


def pipeline(action: str, *args: str) -> int:
    return main(["pipeline", action, *args, "--version", VERSION])


def test_upload_creates_or_versions_each_pipeline(kfp_home, capsys):
    server = KFPServer()
    try:
        assert pipeline("upload", "--host", server.url) == 0
        # Again: the pipelines exist, so only versions are looked up (and reused).
        assert pipeline("upload", "--host", server.url) == 0
    finally:
        server.close()
    uploads = server.calls("POST", "/pipelines/upload")
    versions = server.calls("POST", "/pipelines/upload_version")
    assert sorted(q["name"] for q, _, _ in uploads) == [
        "salmubench-benchmark",
        "salmubench-import-official",
        "salmubench-reevaluate",
        "salmubench-unlearn-eval",
    ]
    assert len(versions) == 4  # the second upload created nothing
    for query, _, body in versions:
        assert query["name"] == VERSION
        assert b"PIPELINE DEFINITION" in body  # the compiled YAML itself, multipart
    assert "is already uploaded" in capsys.readouterr().out
    assert version_name() == f"v{__version__}-{git_revision()}"


def test_multi_user_upload_submit_schedule_with_namespace_and_token(multi_user):
    server, conn = multi_user
    assert pipeline("upload", *conn) == 0
    # The pipelines are the namespace's own.
    assert {p["namespace"] for p in server.pipelines.values()} == {NS}
    for _, headers, _ in server.calls("POST", "/pipelines/upload_version"):
        assert headers["authorization"] == f"Bearer {TOKEN}"
    params = ["--param", "profile=micro", "--param", "seeds=[0,1]"]
    assert pipeline("submit", *conn, *params) == 0
    assert pipeline("schedule", *conn, "--cron", "0 0 3 * * *", *REEVAL) == 0

    [run] = server.runs.values()
    benchmark = _version_of(server, "salmubench-benchmark")
    # The run references the uploaded version; nothing is sent inline.
    assert run["pipeline_version_reference"]["pipeline_version_id"] == benchmark
    assert "pipeline_spec" not in run
    assert run["runtime_config"]["parameters"] == {"profile": "micro", "seeds": [0, 1]}
    assert server.experiments[run["experiment_id"]] == {
        "display_name": "salmubench",
        "namespace": NS,
    }
    [job] = server.recurring.values()
    reevaluate = _version_of(server, "salmubench-reevaluate")
    assert job["pipeline_version_reference"]["pipeline_version_id"] == reevaluate
    assert job["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
    assert int(job["max_concurrency"]) == 1  # int64: JSON string in the REST API
    assert job["no_catchup"] is True and job["mode"] == "ENABLE"
    assert job["runtime_config"]["parameters"]["unlearned_uris"] == [
        "minio://b/unlearned/neg_grad",
        "minio://b/unlearned/finetune",
    ]
    # The version scheduled is compiled with caching off in every task.
    [version] = [v for v in server.versions.values() if v["name"] == VERSION and
                 server.pipelines[v["pipeline_id"]]["name"] == "salmubench-reevaluate"]  # fmt: skip
    spec = _spec_of(version["spec"])
    tasks = _all_tasks(spec)
    assert tasks and not any(t.get("cachingOptions", {}).get("enableCache") for t in tasks)


def _version_of(server: KFPServer, display: str) -> str:
    [vid] = [
        vid
        for vid, v in server.versions.items()
        if v["name"] == VERSION and server.pipelines[v["pipeline_id"]]["name"] == display
    ]
    return vid


def _spec_of(multipart: bytes) -> dict:
    text = multipart.decode()
    start = text.index("# PIPELINE DEFINITION")
    end = text.index("\r\n--", start)
    return next(yaml.safe_load_all(text[start:end]))


def test_multi_user_refuses_clearly_without_namespace_or_credentials(multi_user, capsys):
    server, conn = multi_user
    host = conn[:2]
    # No namespace: refused before anything is sent but healthz.
    assert pipeline("upload", *host, "--token-file", conn[-1]) == 2
    err = capsys.readouterr().err
    assert "multi-user: pass --namespace" in err
    assert not server.calls("POST", "/pipelines/upload")
    # A namespace but no credentials: upstream's own answer, named.
    assert pipeline("upload", *host, "--namespace", NS) == 2
    err = capsys.readouterr().err
    assert "upload salmubench-benchmark" in err or "find salmubench-benchmark" in err
    assert "there is no user identity header" in err
    # Credentials of a user without access to the namespace: 403 with upstream's reason.
    other = KFPServer(
        multi_user=True, tokens={TOKEN: "bob@example.com"}, access={"bob@example.com": {"b"}}
    )
    try:
        assert pipeline("submit", "--host", other.url, *conn[2:]) == 2
    finally:
        other.close()
    err = capsys.readouterr().err
    assert re.search(r"HTTP 403: User 'bob@example.com' is not authorized", err), err
    # Submitting a version that was never uploaded says how to fix it.
    assert pipeline("submit", *conn) == 2
    assert "'salmubench-benchmark' is not uploaded" in capsys.readouterr().err
    assert pipeline("upload", *conn, "--only", "benchmark") == 0
    code = main(["pipeline", "submit", *conn, "--version", "v9.9.9-gnothere"])
    assert code == 2
    assert "has no version 'v9.9.9-gnothere'" in capsys.readouterr().err


def test_session_cookie_and_in_cluster_token(kfp_home, tmp_path, monkeypatch):
    cookie = "oauth2_proxy_kubeflow=abc123"
    projected = tmp_path / "sa-token"
    projected.write_text("projected-token")
    server = KFPServer(
        multi_user=True,
        tokens={"projected-token": USER},
        cookies={cookie: "alice@example.com"},
        access={USER: {NS}, "alice@example.com": {NS}},
    )
    try:
        monkeypatch.setenv("KFP_COOKIES", cookie)
        assert pipeline("upload", "--host", server.url, "--namespace", NS) == 0
        monkeypatch.delenv("KFP_COOKIES")
        monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(projected))
        code = pipeline("submit", "--host", server.url, "--namespace", NS, "--sa-token")
        assert code == 0
    finally:
        server.close()
    [(_, headers, _)] = server.calls("POST", "/runs")
    assert headers["authorization"] == "Bearer projected-token"
    assert "cookie" not in headers
    assert all(h["cookie"] == cookie for _, h, _ in server.calls("POST", "/pipelines/upload"))


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("2.13.1", r"KFP backend 2.13.1 at .* is older than 2.14.0: dsl.Collected"),
        ("2.2.0", r"older than 2.14.0.*non-root image needs >= 2.3"),
        ("unknown", r"reports version 'unknown', not X.Y.Z.*--skip-version-check"),
    ],
)
def test_backend_below_the_floor_is_refused(kfp_home, capsys, tag, message):
    server = KFPServer(tag_name=tag)
    try:
        assert pipeline("upload", "--host", server.url) == 2
        assert re.search(message, capsys.readouterr().err)
        assert not server.calls("POST", "/pipelines/upload")
        if tag == "unknown":
            assert pipeline("upload", "--host", server.url, "--skip-version-check") == 0
    finally:
        server.close()


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
