"""Talk to a KFP host: upload versioned pipelines, submit runs, schedule re-evaluations.

Every upload is a new pipeline VERSION named from the package version and the git revision
(`v0.1.0-g1a2b3c4`, `-dirty` when the tree has uncommitted changes), so the dashboard
always says which code a run used. Runs and schedules are created from the compiled YAML
in pipelines/compiled/ (the same files that were uploaded).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
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


def connect(host: str):
    import warnings

    import kfp

    with warnings.catch_warnings():
        # kfp warns on every Client that it needs KFP >= 2.0.0-beta.2; we require 2.x anyway.
        warnings.filterwarnings("ignore", message="This client only works with Kubeflow")
        return kfp.Client(host=host)


def upload(
    host: str,
    names: Sequence[str] = tuple(PIPELINES),
    folder: str | os.PathLike = COMPILED,
    version: str | None = None,
) -> dict[str, dict[str, str]]:
    """Upload each compiled pipeline as a new version; {name: {pipeline_id, version_id, ...}}."""
    client = connect(host)
    version = version or version_name()
    done = {}
    for name in names:
        path = str(compiled_path(name, folder))
        with open(path, encoding="utf-8") as f:
            display = next(yaml.safe_load_all(f))["pipelineInfo"]["name"]
        description = f"salmubench {__version__} ({version})"
        pipeline_id = client.get_pipeline_id(display)
        if pipeline_id is None:
            # A new pipeline gets KFP's default first version; the named version follows,
            # so every release is findable by the same naming rule.
            pipeline_id = client.upload_pipeline(
                path, pipeline_name=display, description=description
            ).pipeline_id
            log.info("created pipeline %s (%s)", display, pipeline_id)
        created = client.upload_pipeline_version(
            path, pipeline_version_name=version, pipeline_id=pipeline_id, description=description
        )
        done[name] = {
            "pipeline": display,
            "pipeline_id": pipeline_id,
            "version": version,
            "version_id": created.pipeline_version_id,
        }
        print(f"uploaded {display} version {version} ({created.pipeline_version_id})")
    return done


def submit(
    host: str,
    name: str,
    params: dict[str, Any],
    *,
    experiment: str = "salmubench",
    run_name: str | None = None,
    enable_caching: bool | None = None,
    folder: str | os.PathLike = COMPILED,
) -> str:
    """Start one run of compiled pipeline `name`; its run id."""
    client = connect(host)
    if name == "reevaluate":
        enable_caching = False  # a re-evaluation that reads the cache evaluates nothing
    result = client.create_run_from_pipeline_package(
        str(compiled_path(name, folder)),
        arguments=params,
        experiment_name=experiment,
        run_name=run_name or f"{name} {version_name()}",
        enable_caching=enable_caching,
    )
    print(f"submitted {name}: run {result.run_id}")
    return result.run_id


def schedule(
    host: str,
    cron: str,
    params: dict[str, Any],
    *,
    name: str = "reevaluate",
    experiment: str = "salmubench",
    job_name: str | None = None,
    folder: str | os.PathLike = COMPILED,
) -> str:
    """A recurring run of `name` (the re-evaluation): caching off, one at a time, no backfill."""
    cron = check_cron(cron)
    client = connect(host)
    exp = client.create_experiment(experiment)
    recurring = client.create_recurring_run(
        experiment_id=exp.experiment_id,
        job_name=job_name or f"salmubench {name} {version_name()}",
        description=f"salmubench {__version__}: scheduled {name} ({cron})",
        cron_expression=cron,
        # One at a time: two re-evaluations of the same checkpoints would race on the
        # same outputs and double the load for nothing.
        max_concurrency=1,
        # After a pause, run once, not once per missed slot.
        no_catchup=True,
        params=params,
        pipeline_package_path=str(compiled_path(name, folder)),
        enable_caching=False,
    )
    print(f"scheduled {name} '{cron}': recurring run {recurring.recurring_run_id}")
    return recurring.recurring_run_id
