"""Talk to a KFP host: upload versioned pipelines, submit runs, schedule re-evaluations.

Every upload is a new pipeline VERSION named from the package version and the git revision
(`v0.1.0-g1a2b3c4`, `-dirty` when the tree has uncommitted changes). Runs and schedules
REFERENCE an uploaded version (never an inline copy of the YAML), so the dashboard links
every run to the code it used; submitting a version that was not uploaded is an error.

Multi-user Kubeflow (the central dashboard setup) is handled as kfp's Client supports it:
a namespace (the user's profile) on every call, and credentials: a bearer token, the
in-cluster ServiceAccount token projected for the `pipelines.kubeflow.org` audience, or the
session cookie of the Kubeflow gateway. Before anything is sent, the server's version
(healthz `tag_name`) is checked against BACKEND_FLOOR.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from salmubench_components import git_revision  # one place for image tags and versions
from salmubench_pipelines.compile import COMPILED, compiled_path
from salmubench_pipelines.definitions import PIPELINES

from salmubench import __version__

log = logging.getLogger(__name__)

# robfig/cron as KFP uses it: six fields, seconds first ("0 0 3 * * *" = 03:00 daily),
# or a descriptor such as "@daily" / "@every 6h".
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?\-LW#]+$")
_DESCRIPTOR = re.compile(r"^@(yearly|annually|monthly|weekly|daily|midnight|hourly|every \S+)$")


def version_name(revision: str | None = None) -> str:
    return f"v{__version__}-{revision or git_revision()}"


def check_cron(cron: str) -> str:
    """A KFP (robfig/cron) schedule, or ValueError naming the expected format."""
    text = " ".join(cron.split())
    fields = text.split(" ")
    if _DESCRIPTOR.match(text) or (len(fields) == 6 and all(map(_CRON_FIELD.match, fields))):
        return text
    raise ValueError(
        f"cron {cron!r} is not a KFP schedule: expected 6 fields with SECONDS first "
        f"('sec min hour day month weekday', e.g. '0 0 3 * * *' for 03:00 daily; got "
        f"{len(fields)} field(s)) or a descriptor such as '@daily', '@every 6h'"
    )


def pipeline_parameters(name: str, folder: str | os.PathLike = COMPILED) -> dict[str, Any]:
    """The parameters of a compiled pipeline: name -> its input definition."""
    path = compiled_path(name, folder)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run `salmubench pipeline compile`")
    with open(path, encoding="utf-8") as f:
        spec = next(yaml.safe_load_all(f))
    return spec["root"]["inputDefinitions"]["parameters"]


def parse_params(items: Sequence[str], name: str, folder=COMPILED) -> dict[str, Any]:
    """`KEY=VALUE` pairs for pipeline `name`; VALUE as JSON when it parses, else text."""
    known = pipeline_parameters(name, folder)
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise ValueError(
                f"--param {item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(known))}"
            )
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    missing = [k for k, d in known.items() if not d.get("isOptional") and k not in params]
    if missing:
        raise ValueError(f"pipeline {name!r} needs --param for: {', '.join(missing)}")
    return params


# The oldest KFP backend these pipelines run on: artifact `dsl.Collected` (the report over
# every unlearned model's evaluation) needs >= 2.14; a non-root image needs >= 2.3.
BACKEND_FLOOR = (2, 14, 0)
FLOOR_REASONS = "dsl.Collected of artifacts needs >= 2.14; a non-root image needs >= 2.3"
# kfp.Client's default ServiceAccount token path (a projected volume with audience
# pipelines.kubeflow.org, as Kubeflow's PodDefault mounts it in notebooks and pods).
SA_TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


class KFPError(RuntimeError):
    """The KFP server refused or is unsuitable; the message says what to do."""


@dataclass(frozen=True)
class Connection:
    """Where and as whom to talk to KFP. Secrets come from files or the environment."""

    host: str
    namespace: str = ""  # the profile namespace; required by multi-user KFP
    token: str = ""  # a bearer token (e.g. `kubectl create token ...`)
    sa_token: bool = False  # the projected ServiceAccount token (in-cluster)
    cookies: str = ""  # e.g. "oauth2_proxy_kubeflow=..." from a dashboard session
    check_version: bool = True


def backend_version(tag: str) -> tuple[int, int, int] | None:
    m = _VERSION.match(tag or "")
    return tuple(int(x) for x in m.groups()) if m else None


def check_backend(healthz: dict[str, Any], conn: Connection) -> None:
    """Refuse a multi-user server without a namespace and a backend below the floor."""
    if healthz.get("multi_user") and not conn.namespace:
        raise KFPError(
            f"KFP at {conn.host} is multi-user: pass --namespace with your profile namespace "
            "(every pipeline, experiment and run there belongs to a namespace)"
        )
    if not conn.check_version:
        return
    tag = str(healthz.get("tag_name", ""))
    found = backend_version(tag)
    floor = ".".join(map(str, BACKEND_FLOOR))
    if found is None:
        raise KFPError(
            f"KFP at {conn.host} reports version {tag!r}, not X.Y.Z: cannot check it against "
            f"the floor {floor} ({FLOOR_REASONS}); pass --skip-version-check if you know it "
            "is newer"
        )
    if found < BACKEND_FLOOR:
        raise KFPError(
            f"KFP backend {tag} at {conn.host} is older than {floor}: {FLOOR_REASONS}. "
            "Upgrade Kubeflow Pipelines."
        )


def connect(conn: Connection):
    """A kfp.Client with conn's namespace and credentials, after the backend checks."""
    import warnings

    import kfp
    from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

    kwargs: dict[str, Any] = {"host": conn.host}
    if conn.namespace:
        kwargs["namespace"] = conn.namespace
    if conn.token:
        kwargs["existing_token"] = conn.token
    elif conn.sa_token:
        path = os.environ.get(SA_TOKEN_ENV, SA_TOKEN_PATH)
        if not os.path.isfile(path):
            raise KFPError(
                f"--sa-token: no ServiceAccount token at {path} (set {SA_TOKEN_ENV} or mount a "
                "projected token with audience pipelines.kubeflow.org)"
            )
        kwargs["credentials"] = ServiceAccountTokenVolumeCredentials(path)
    if conn.cookies:
        kwargs["cookies"] = conn.cookies
    with warnings.catch_warnings():
        # kfp warns on every Client that it needs KFP >= 2.0.0-beta.2; we check the floor.
        warnings.filterwarnings("ignore", message="This client only works with Kubeflow")
        client = kfp.Client(**kwargs)
    check_backend(healthz(client, conn), conn)
    return client


def healthz(client, conn: Connection) -> dict[str, Any]:
    """The server's healthz JSON (kfp's model drops `tag_name`, so read it raw)."""
    from kfp_server_api.exceptions import ApiException

    try:
        response = client._healthz_api.healthz_service_get_healthz(_preload_content=False)
    except ApiException as e:
        raise KFPError(f"KFP at {conn.host}: healthz failed: {api_message(e)}") from e
    return json.loads(response.data or b"{}")


def api_message(error) -> str:
    """`HTTP <status>: <the server's own message>` from a kfp_server_api ApiException."""
    text = error.body.decode() if isinstance(error.body, bytes) else str(error.body or "")
    try:
        body = json.loads(text)
        text = body.get("message") or body.get("error_message") or text
    except (json.JSONDecodeError, AttributeError):
        pass
    return f"HTTP {error.status}: {text.strip() or error.reason}"


def _name_filter(name: str) -> str:
    return json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]}
    )


def find_pipeline(client, display: str, namespace: str) -> str | None:
    """The id of pipeline `display` in `namespace` ("" = shared / single-user)."""
    found = client.list_pipelines(filter=_name_filter(display), namespace=namespace or None)
    pipelines = found.pipelines or []
    if len(pipelines) > 1:
        raise KFPError(f"{len(pipelines)} pipelines named {display!r}: names must be unique")
    return pipelines[0].pipeline_id if pipelines else None


def find_version(client, pipeline_id: str, version: str) -> str | None:
    found = client.list_pipeline_versions(pipeline_id, filter=_name_filter(version))
    versions = found.pipeline_versions or []
    return versions[0].pipeline_version_id if versions else None


def display_name(name: str, folder: str | os.PathLike = COMPILED) -> str:
    with open(compiled_path(name, folder), encoding="utf-8") as f:
        return next(yaml.safe_load_all(f))["pipelineInfo"]["name"]


def _call(what: str, fn, *args, **kwargs):
    """Run a kfp call; an HTTP error becomes KFPError naming what failed and why."""
    from kfp_server_api.exceptions import ApiException

    try:
        return fn(*args, **kwargs)
    except ApiException as e:
        raise KFPError(f"{what}: {api_message(e)}") from e


def upload(
    conn: Connection,
    names: Sequence[str] = tuple(PIPELINES),
    folder: str | os.PathLike = COMPILED,
    version: str | None = None,
) -> dict[str, dict[str, str]]:
    """Upload each compiled pipeline as a new version; {name: {pipeline_id, version_id, ...}}.

    In multi-user mode the pipelines are the namespace's own (private to the profile).
    A version name that exists already is reused when it names a commit (same code), and
    refused when it names a dirty tree (its content may differ).
    """
    client = connect(conn)
    version = version or version_name()
    done = {}
    for name in names:
        path = str(compiled_path(name, folder))
        display = display_name(name, folder)
        description = f"salmubench {__version__} ({version})"
        pipeline_id = _call(f"find {display}", find_pipeline, client, display, conn.namespace)
        if pipeline_id is None:
            # A new pipeline gets KFP's default first version; the named version follows,
            # so every release is findable by the same naming rule.
            pipeline_id = _call(
                f"upload {display}",
                client.upload_pipeline,
                path,
                pipeline_name=display,
                description=description,
                namespace=conn.namespace or None,
            ).pipeline_id
            log.info("created pipeline %s (%s)", display, pipeline_id)
        version_id = _call(f"find {display} {version}", find_version, client, pipeline_id, version)
        if version_id and version.endswith("-dirty"):
            raise KFPError(
                f"{display} already has version {version!r}, from a tree with uncommitted "
                "changes: commit (a new revision names a new version) or pass --version NAME"
            )
        if version_id is None:
            version_id = _call(
                f"upload {display} version {version}",
                client.upload_pipeline_version,
                path,
                pipeline_version_name=version,
                pipeline_id=pipeline_id,
                description=description,
            ).pipeline_version_id
            print(f"uploaded {display} version {version} ({version_id})")
        else:
            print(f"{display} version {version} is already uploaded ({version_id})")
        done[name] = {
            "pipeline": display,
            "pipeline_id": pipeline_id,
            "version": version,
            "version_id": version_id,
        }
    return done


def uploaded_version(
    client, conn: Connection, name: str, version: str | None, folder=COMPILED
) -> tuple[str, str]:
    """(pipeline_id, version_id) of an uploaded version, or KFPError saying how to upload."""
    display = display_name(name, folder)
    version = version or version_name()
    where = f"{conn.host}" + (f" (namespace {conn.namespace})" if conn.namespace else "")
    pipeline_id = _call(f"find {display}", find_pipeline, client, display, conn.namespace)
    if pipeline_id is None:
        raise KFPError(
            f"pipeline {display!r} is not uploaded to {where}: run `salmubench pipeline upload`"
        )
    version_id = _call(f"find {display} {version}", find_version, client, pipeline_id, version)
    if version_id is None:
        raise KFPError(
            f"pipeline {display!r} has no version {version!r} at {where}: run `salmubench "
            "pipeline upload` from this commit, or pass --version with an uploaded one"
        )
    return pipeline_id, version_id


def submit(
    conn: Connection,
    name: str,
    params: dict[str, Any],
    *,
    experiment: str = "salmubench",
    run_name: str | None = None,
    version: str | None = None,
    folder: str | os.PathLike = COMPILED,
) -> str:
    """Start one run of the uploaded version of pipeline `name`; its run id.

    Caching is the version's own (compile-time) setting: KFP applies a submit-time override
    only to inline pipeline specs. The re-evaluation is compiled with caching off.
    """
    client = connect(conn)
    pipeline_id, version_id = uploaded_version(client, conn, name, version, folder)
    exp = _experiment(client, conn, experiment)
    result = _call(
        f"submit {name}",
        client.run_pipeline,
        experiment_id=exp.experiment_id,
        job_name=run_name or f"{name} {version or version_name()}",
        params=params,
        pipeline_id=pipeline_id,
        version_id=version_id,
    )
    print(f"submitted {name}: run {result.run_id}")
    return result.run_id


def _experiment(client: Any, conn: Connection, experiment: str) -> Any:
    """The experiment `experiment` in the connection's namespace (created if missing)."""
    return _call(
        f"experiment {experiment!r}",
        client.create_experiment,
        experiment,
        namespace=conn.namespace or None,
    )


def schedule(
    conn: Connection,
    cron: str,
    params: dict[str, Any],
    *,
    name: str = "reevaluate",
    experiment: str = "salmubench",
    job_name: str | None = None,
    version: str | None = None,
    folder: str | os.PathLike = COMPILED,
) -> str:
    """A recurring run of an uploaded version of `name`: one at a time, no backfill."""
    cron = check_cron(cron)
    client = connect(conn)
    pipeline_id, version_id = uploaded_version(client, conn, name, version, folder)
    exp = _experiment(client, conn, experiment)
    recurring = _call(
        f"schedule {name}",
        client.create_recurring_run,
        experiment_id=exp.experiment_id,
        job_name=job_name or f"salmubench {name} {version or version_name()}",
        description=f"salmubench {__version__}: scheduled {name} ({cron})",
        cron_expression=cron,
        # One at a time: two re-evaluations of the same checkpoints would race on the
        # same outputs and double the load for nothing.
        max_concurrency=1,
        # After a pause, run once, not once per missed slot.
        no_catchup=True,
        params=params,
        pipeline_id=pipeline_id,
        version_id=version_id,
    )
    print(f"scheduled {name} '{cron}': recurring run {recurring.recurring_run_id}")
    return recurring.recurring_run_id
