"""A KFP v2beta1 REST server for the client tests, holding to upstream's multi-user rules.

No KFP API server can run here, so this one answers the calls kfp 2.17's Client makes,
with the rules of kubeflow/pipelines' backend/src/apiserver (server/*_server.go,
resource/resource_manager.go, auth/) as of 2.14+:

- healthz answers `commit_sha`, `tag_name`, `multi_user` without authentication;
- multi-user: a namespace is replaced by "" in single-user mode and required otherwise:
  experiments ("An experiment cannot have an empty namespace in multi-user mode"), runs
  and recurring runs take their experiment's namespace ("A run cannot have an empty
  namespace in multi-user mode");
- identity: the `kubeflow-userid` header (set by the Kubeflow gateway from a session
  cookie; modelled here by `cookies`) or an `Authorization: Bearer` token (TokenReview;
  modelled by `tokens`); none -> 401 "... there is no user identity header.";
- authorization (SubjectAccessReview; modelled by `access`: user -> namespaces): a
  namespace the user cannot access -> 403 "User '...' is not authorized ...". Shared
  pipelines (no namespace) are readable by all; writing one needs access to the KFP
  system namespace (`kubeflow`);
- names are unique (a pipeline per namespace, a version per pipeline): 409 otherwise;
- errors: gRPC-gateway JSON `{code, message, details}` with the mapped HTTP status; the
  upload endpoints answer `{error_message, error_details}` (400 on authorization errors,
  as upstream's upload handler does).

Every request is recorded as (method, path, query, headers, body) for the tests to check.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

API = "/apis/v2beta1"
SYSTEM_NAMESPACE = "kubeflow"
NO_IDENTITY = (
    "Failed to check authorization. User identity is empty in the request header: "
    "[Request header error: there is no user identity header., Request header error: "
    "there is no Authorization header with the bearer token]"
)
# gRPC codes -> HTTP status (grpc-gateway's mapping)
GRPC = {3: 400, 5: 404, 6: 409, 7: 403, 16: 401}


class Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class KFPServer:
    def __init__(
        self,
        *,
        multi_user: bool = False,
        tag_name: str = "2.14.3",
        tokens: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
        access: dict[str, set[str]] | None = None,
    ) -> None:
        self.multi_user = multi_user
        self.tag_name = tag_name
        self.tokens = tokens or {}
        self.cookies = cookies or {}
        self.access = access or {}
        self.requests: list[tuple[str, str, dict, dict, bytes]] = []
        self.pipelines: dict[str, dict] = {}  # id -> {name, namespace}
        self.versions: dict[str, dict] = {}  # id -> {name, pipeline_id, spec}
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring: dict[str, dict] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append((self.command, url.path, query, headers, body))
                upload = url.path.startswith(f"{API}/pipelines/upload")
                try:
                    status, reply = 200, server.reply(self.command, url.path, query, headers, body)
                except Refused as e:
                    status = GRPC[e.code]
                    if upload:  # the upload handler's own error shape
                        status = 400 if e.code in (7, 16) else status
                        reply = {"error_message": str(e), "error_details": str(e)}
                    else:
                        reply = {"code": e.code, "message": str(e), "details": []}
                data = json.dumps(reply).encode()
                self.send_response(status)
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

    # -- upstream's rules ------------------------------------------------------------
    def identity(self, headers: dict) -> str | None:
        if headers.get("kubeflow-userid"):
            return headers["kubeflow-userid"]
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in self.tokens:
            return self.tokens[auth[7:]]
        for part in headers.get("cookie", "").split(";"):
            if part.strip() in self.cookies:  # the gateway turns a session into the header
                return self.cookies[part.strip()]
        return None

    def authorize(self, headers: dict, namespace: str, verb: str, resource: str) -> None:
        if not self.multi_user:
            return
        user = self.identity(headers)
        if user is None:
            raise Refused(16, NO_IDENTITY)
        if namespace not in self.access.get(user, set()):
            raise Refused(
                7,
                f"User '{user}' is not authorized with reason:  (request: &ResourceAttributes"
                f"{{Namespace:{namespace},Verb:{verb},Group:pipelines.kubeflow.org,"
                f"Resource:{resource}}})",
            )

    def namespace(self, value: str, what: str) -> str:
        if not self.multi_user:
            return ""
        if not value or value == "-":
            raise Refused(3, f"{what} cannot have an empty namespace in multi-user mode")
        return value

    def pipeline_access(self, headers: dict, namespace: str, verb: str) -> None:
        if namespace:
            self.authorize(headers, namespace, verb, "pipelines")
        elif verb not in ("get", "list"):  # shared pipelines: written in the system ns
            self.authorize(headers, SYSTEM_NAMESPACE, verb, "pipelines")

    # -- the endpoints ---------------------------------------------------------------
    def reply(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> dict:
        if path == f"{API}/healthz":
            return {
                "commit_sha": "0" * 40,
                "tag_name": self.tag_name,
                "multi_user": self.multi_user,
            }
        if method == "GET" and path == f"{API}/pipelines":
            ns = query.get("namespace", "") if self.multi_user else ""
            self.pipeline_access(headers, ns, "list")
            name = _filter_name(query)
            found = [
                {"pipeline_id": pid, "display_name": p["name"], "namespace": p["namespace"]}
                for pid, p in self.pipelines.items()
                if p["namespace"] == ns and name in (None, p["name"])
            ]
            return {"pipelines": found, "total_size": len(found)} if found else {}
        if path == f"{API}/pipelines/upload":
            ns = query.get("namespace", "") if self.multi_user else ""
            self.pipeline_access(headers, ns, "create")
            name = query["name"]
            if any(p["name"] == name and p["namespace"] == ns for p in self.pipelines.values()):
                raise Refused(6, f"Failed to create a pipeline: pipeline {name!r} exists")
            pid = str(uuid.uuid4())
            self.pipelines[pid] = {"name": name, "namespace": ns}
            self._add_version(pid, name, body)
            return {"pipeline_id": pid, "display_name": name, "namespace": ns}
        if path == f"{API}/pipelines/upload_version":
            pid = query["pipelineid"]
            if pid not in self.pipelines:
                raise Refused(5, f"Failed to create a pipeline version: no pipeline {pid}")
            self.pipeline_access(headers, self.pipelines[pid]["namespace"], "create")
            name = query["name"]
            if any(v["name"] == name and v["pipeline_id"] == pid for v in self.versions.values()):
                raise Refused(6, f"Failed to create a pipeline version: {name!r} exists")
            vid = self._add_version(pid, name, body)
            return {"pipeline_id": pid, "pipeline_version_id": vid, "display_name": name}
        if method == "GET" and path.startswith(f"{API}/pipelines/") and path.endswith("/versions"):
            pid = path.split("/")[-2]
            if pid not in self.pipelines:
                raise Refused(5, f"Failed to list pipeline versions: no pipeline {pid}")
            self.pipeline_access(headers, self.pipelines[pid]["namespace"], "list")
            name = _filter_name(query)
            found = [
                {"pipeline_id": pid, "pipeline_version_id": vid, "display_name": v["name"]}
                for vid, v in self.versions.items()
                if v["pipeline_id"] == pid and name in (None, v["name"])
            ]
            return {"pipeline_versions": found, "total_size": len(found)} if found else {}
        if method == "GET" and path == f"{API}/experiments":
            ns = self.namespace(query.get("namespace", ""), "An experiment")
            self.authorize(headers, ns, "list", "experiments")
            name = _filter_name(query)
            found = [
                {"experiment_id": eid, **e}
                for eid, e in self.experiments.items()
                if e["namespace"] == ns and name in (None, e["display_name"])
            ]
            return {"experiments": found, "total_size": len(found)} if found else {}
        if method == "POST" and path == f"{API}/experiments":
            exp = json.loads(body)
            ns = self.namespace(exp.get("namespace", ""), "An experiment")
            self.authorize(headers, ns, "create", "experiments")
            eid = str(uuid.uuid4())
            self.experiments[eid] = {"display_name": exp["display_name"], "namespace": ns}
            return {"experiment_id": eid, **self.experiments[eid]}
        if method == "POST" and path in (f"{API}/runs", f"{API}/recurringruns"):
            run = json.loads(body)
            if not run.get("display_name"):
                raise Refused(3, "The run name is empty. Please specify a valid name")
            exp = self.experiments.get(run.get("experiment_id", ""))
            ns = self.namespace(exp["namespace"] if exp else "", "A run")
            self.authorize(headers, ns, "create", "runs")
            ref = run.get("pipeline_version_reference") or {}
            if ref and ref.get("pipeline_version_id") not in self.versions:
                raise Refused(5, f"Pipeline version {ref.get('pipeline_version_id')} not found")
            rid = str(uuid.uuid4())
            if path.endswith("/runs"):
                self.runs[rid] = run
                return {"run_id": rid, "display_name": run["display_name"]}
            self.recurring[rid] = run
            return {"recurring_run_id": rid, "display_name": run["display_name"]}
        raise Refused(5, f"unexpected {method} {path}")

    def _add_version(self, pid: str, name: str, body: bytes) -> str:
        vid = str(uuid.uuid4())
        self.versions[vid] = {"name": name, "pipeline_id": pid, "spec": body}
        return vid

    def calls(self, method: str, path: str) -> list[tuple[dict, dict, bytes]]:
        return [(q, h, b) for m, p, q, h, b in self.requests if m == method and p == API + path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _filter_name(query: dict) -> str | None:
    if "filter" not in query:
        return None
    [predicate] = json.loads(query["filter"])["predicates"]
    return predicate.get("string_value", predicate.get("stringValue"))
