"""Check TrainJob / PyTorchJob objects against the operators' own published models.

The definitions are upstream's, at pinned versions, installed by `make lint-venv` into
.venv-lint/upstream/<package>-<version>/ (pip --target): `kubeflow-trainer-api` 2.0.1,
2.1.0, 2.2.1, 2.3.0 (one per Trainer release; the TrainJob fields differ between them) and
`kubeflow-training` 1.9.4 (PyTorchJob, with the kubernetes client's core models). Each
version is loaded in its own process (PYTHONPATH first), so one run checks them all.

What is checked, per object:
- structure: every key is a field of the model at that place in that version (an unknown
  key is what the API server's default validation drops silently); then the model's own
  parsing (types, required fields) on the whole object;
- the operators' admission rules that the models cannot express, as upstream's webhooks
  implement them: job names DNS-1035 and every derived name <= 63 characters (Training
  Operator's pytorchjob_webhook.go; JobSet's jobset_webhook.go), exactly one PyTorchJob
  Master and a container named `pytorch` in every replica, no user PET_* env in a TrainJob.

Runs with the project's Python (it needs pydantic and the kubernetes client, which the
checkers' venv does not have): k8s/lint.py calls

  python k8s/upstream_models.py launcher            # the jobs components/launcher.py builds
  python k8s/upstream_models.py check --trainer-version 2.0 FILE...

Exit status 1 with one line per problem.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import types
import typing
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UPSTREAM = Path(os.environ.get("SALMUBENCH_UPSTREAM_MODELS", REPO / ".venv-lint/upstream"))
# Trainer release -> the kubeflow-trainer-api version holding its models
TRAINER_API = {"2.0": "2.0.1", "2.1": "2.1.0", "2.2": "2.2.1", "2.3": "2.3.0"}
TRAINING = "1.9.4"  # kubeflow-training: Training Operator v1 (PyTorchJob)
FOUND = 3  # a child's exit status when it found problems (1 = it crashed)
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def target(package: str, version: str) -> Path:
    path = UPSTREAM / f"{package}-{version}"
    if not path.is_dir():
        raise SystemExit(f"{path} is missing: create it with `make lint-venv`")
    return path


# -- structure against pydantic models (kubeflow-trainer-api) ------------------------------
def _model_in(annotation):
    """The pydantic model class inside Optional[...]/List[...]/Dict[str, ...], if any."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, None
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (list, typing.List):  # noqa: UP006
        inner, _ = _model_in(args[0]) if args else (None, None)
        return inner, "list"
    if origin in (dict, typing.Dict):  # noqa: UP006
        inner, _ = _model_in(args[1]) if len(args) > 1 else (None, None)
        return inner, "dict"
    if origin in (typing.Union, types.UnionType) or origin is typing.Annotated:
        for a in args:
            inner, shape = _model_in(a)
            if inner is not None:
                return inner, shape
    return None, None


def pydantic_unknown(data, model, where: str) -> list[str]:
    if not isinstance(data, dict):
        return []
    if "actual_instance" in model.model_fields:  # oneOf wrappers (Quantity, IntOrString)
        return []
    fields = {(f.alias or n): f for n, f in model.model_fields.items()}
    errors = []
    for key, value in data.items():
        if key not in fields:
            errors.append(f"{where}.{key}: unknown field (not in {model.__name__})")
            continue
        inner, shape = _model_in(fields[key].annotation)
        if inner is None:
            continue
        if shape == "list" and isinstance(value, list):
            for i, item in enumerate(value):
                errors += pydantic_unknown(item, inner, f"{where}.{key}[{i}]")
        elif shape == "dict" and isinstance(value, dict):
            for k, item in value.items():
                errors += pydantic_unknown(item, inner, f"{where}.{key}.{k}")
        else:
            errors += pydantic_unknown(value, inner, f"{where}.{key}")
    return errors


def check_trainjob(doc: dict) -> list[str]:
    from pydantic import ValidationError

    models = importlib.import_module("kubeflow_trainer_api.models")
    model = models.TrainerV1alpha1TrainJob
    errors = pydantic_unknown(doc, model, "")
    try:
        model.from_dict(doc)
    except (ValidationError, ValueError) as e:
        errors.append(f": model: {' '.join(str(e).split())[:400]}")
    name = doc.get("metadata", {}).get("name", "")
    errors += _names(name, ["-node-0-999-abcde", "-dataset-initializer-0-0-abcde"])
    env = (doc.get("spec", {}).get("trainer") or {}).get("env") or []
    reserved = [e.get("name") for e in env if str(e.get("name", "")).startswith("PET_")]
    if reserved:
        errors.append(f".spec.trainer.env: {reserved} are reserved (Trainer injects PET_*)")
    return errors


# -- structure against openapi-generator models (kubeflow-training, kubernetes) -----------
def _openapi_class(name: str):
    for module in ("kubeflow.training.models", "kubernetes.client.models"):
        mod = importlib.import_module(module)
        if hasattr(mod, name):
            return getattr(mod, name)
    return None


def openapi_unknown(data, type_name: str, where: str) -> list[str]:
    m = re.match(r"^list\[(.*)\]$", type_name)
    if m:
        errs = []
        for i, item in enumerate(data if isinstance(data, list) else []):
            errs += openapi_unknown(item, m[1], f"{where}[{i}]")
        return errs
    m = re.match(r"^dict\(str, (.*)\)$", type_name)
    if m:
        errs = []
        for k, item in (data if isinstance(data, dict) else {}).items():
            errs += openapi_unknown(item, m[1], f"{where}.{k}")
        return errs
    cls = _openapi_class(type_name)
    if cls is None or not isinstance(data, dict):
        return []  # a primitive (str, int, object)
    by_json = {v: k for k, v in cls.attribute_map.items()}
    errs = []
    for key, value in data.items():
        if key not in by_json:
            errs.append(f"{where}.{key}: unknown field (not in {type_name})")
            continue
        errs += openapi_unknown(value, cls.openapi_types[by_json[key]], f"{where}.{key}")
    return errs


def check_pytorchjob(doc: dict) -> list[str]:
    from kubeflow.training.api_client import ApiClient

    errors = openapi_unknown(doc, "KubeflowOrgV1PyTorchJob", "")

    class Response:  # ApiClient.deserialize reads `.data`
        data = json.dumps(doc)

    try:
        ApiClient().deserialize(Response(), "KubeflowOrgV1PyTorchJob")
    except (ValueError, TypeError) as e:
        errors.append(f": model: {e}")
    replicas = doc.get("spec", {}).get("pytorchReplicaSpecs") or {}
    for rtype, spec in replicas.items():
        if rtype not in ("Master", "Worker"):
            errors.append(f".spec.pytorchReplicaSpecs.{rtype}: not Master or Worker")
        count = spec.get("replicas")
        if rtype == "Master" and count != 1:
            errors.append(f".spec.pytorchReplicaSpecs.Master.replicas: must be 1, got {count}")
        if rtype == "Worker" and count is not None and count < 1:
            errors.append(f".spec.pytorchReplicaSpecs.Worker.replicas: must be >= 1 ({count})")
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        if "pytorch" not in [c.get("name") for c in containers]:
            errors.append(
                f".spec.pytorchReplicaSpecs.{rtype}.template.spec.containers: "
                "no container named 'pytorch'"
            )
    workers = (replicas.get("Worker") or {}).get("replicas") or 0
    name = doc.get("metadata", {}).get("name", "")
    errors += _names(name, ["-master-0"] + ([f"-worker-{workers - 1}"] if workers else []))
    return errors


def _names(name: str, suffixes: list[str]) -> list[str]:
    errors = []
    for derived in [name] + [name + s for s in suffixes]:
        if len(derived) > 63 or not DNS1035.match(derived):
            errors.append(
                f".metadata.name: derived name {derived!r} ({len(derived)} chars) is not a "
                "DNS-1035 label of <= 63 characters"
            )
    return errors


# -- driving: one process per upstream version ----------------------------------------------
def _child(kind: str, docs: list[dict]) -> list[str]:
    check = check_trainjob if kind == "TrainJob" else check_pytorchjob
    return [
        f"{d.get('kind')}/{d.get('metadata', {}).get('name')}{e}" for d in docs for e in check(d)
    ]


def check_in(kind: str, version: str, docs: list[dict]) -> list[str]:
    """Check docs of one kind in a process that sees only that upstream version."""
    if kind == "TrainJob":
        path = target("kubeflow-trainer-api", TRAINER_API[version])
    else:
        path = target("kubeflow-training", TRAINING)
    env = {**os.environ, "PYTHONPATH": str(path)}
    proc = subprocess.run(
        [sys.executable, __file__, "_child", kind],
        input=json.dumps(docs),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode not in (0, FOUND):  # a crash is a failure, never a pass
        return [f"checker crashed ({proc.returncode}): {proc.stderr.strip()[-2000:]}"]
    return [line for line in proc.stdout.splitlines() if line]


def launcher_jobs() -> dict[tuple[str, str], list[dict]]:
    """{(kind, version): jobs} as components/launcher.py builds them for a pipeline run."""
    from salmubench_components import launcher

    args = launcher.train_args("/shared/j/dataset", "/shared/j/model", "compromised", "small", 0)
    env = (("SALMUBENCH_PUSHGATEWAY", "http://salmubench-pushgateway:9091"),)
    secret = (("AWS_ACCESS_KEY_ID", "salmubench-s3", "AWS_ACCESS_KEY_ID"),)
    run_id = "0b9e4c1a-6f1d-4d5e-9a3b-2c7f8e1d0a55"  # a KFP run id: 36 characters
    jobs: dict[tuple[str, str], list[dict]] = {}
    for nodes, gpus, pvc in ((1, 0, ""), (1000, 2, "salmubench-shared")):
        base = dict(
            name=launcher.job_name("salmubench-compromised", run_id),
            namespace="salmubench",
            image="ghcr.io/salmubench/salmubench:0.1.0",
            command=launcher.torchrun_command(args),
            nodes=nodes,
            procs_per_node=2,
            gpus_per_node=gpus,
            pvc=pvc,
            env=env,
            secret_env=secret,
        )
        spec = launcher.JobSpec(**base)
        jobs.setdefault(("PyTorchJob", TRAINING), []).append(launcher.build_pytorchjob(spec))
        for version in launcher.TRAINER_VERSIONS:
            spec = launcher.JobSpec(**base, trainer_version=version, istio_opt_out=version != "2.0")
            jobs.setdefault(("TrainJob", version), []).append(launcher.build_trainjob(spec))
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("launcher", help="the jobs components/launcher.py builds, every version")
    p = sub.add_parser("check", help="TrainJob/PyTorchJob objects in YAML files")
    p.add_argument("--trainer-version", choices=sorted(TRAINER_API), action="append")
    p.add_argument("files", nargs="+", type=Path)
    p = sub.add_parser("_child")
    p.add_argument("kind")
    args = parser.parse_args(argv)

    if args.mode == "_child":
        errors = _child(args.kind, json.loads(sys.stdin.read()))
        print("\n".join(errors))
        return FOUND if errors else 0
    if args.mode == "launcher":
        groups = launcher_jobs()
    else:
        import yaml

        docs = [d for f in args.files for d in yaml.safe_load_all(f.read_text()) if d]
        groups = {}
        for doc in docs:
            if doc.get("kind") == "TrainJob":
                for version in args.trainer_version or sorted(TRAINER_API):
                    groups.setdefault(("TrainJob", version), []).append(doc)
            elif doc.get("kind") == "PyTorchJob":
                groups.setdefault(("PyTorchJob", TRAINING), []).append(doc)
    errors, count = [], 0
    for (kind, version), docs in sorted(groups.items()):
        label = f"kubeflow-trainer-api {TRAINER_API[version]} (Trainer {version})" if (
            kind == "TrainJob") else f"kubeflow-training {version}"  # fmt: skip
        errors += [f"{label}: {e}" for e in check_in(kind, version, docs)]
        count += len(docs)
    print("\n".join(errors) if errors else f"{count} jobs valid against upstream's models")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
