"""The static checks of `make lint` (k8s/lint.py) can fail: each real checker, run from the
checkers' venv, rejects a deliberately broken fixture (tests/fixtures/static/) for the
reason it was broken, and the repository's manifests pass the checks these tests cover.

The checkers live in their own venv (`make lint-venv`, which `make test` creates first);
`$SALMUBENCH_LINT_PYTHON` points elsewhere.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests/fixtures/static"
LINT_PYTHON = Path(os.environ.get("SALMUBENCH_LINT_PYTHON", REPO / ".venv-lint/bin/python"))


def lint(*args: str) -> subprocess.CompletedProcess:
    if not LINT_PYTHON.exists():
        pytest.fail(f"{LINT_PYTHON} missing: create the checkers' venv with `make lint-venv`")
    return subprocess.run(
        [str(LINT_PYTHON), str(REPO / "k8s/lint.py"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )


def failed(proc: subprocess.CompletedProcess, check: str) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert f"FAIL {check}" in out, out
    return out


def test_kustomize_render_fails_on_a_broken_overlay():
    out = failed(lint("--only", "render", "--overlay", str(FIXTURES / "broken-overlay")), "render")
    assert "deployment-that-is-not-there.yaml" in out


def test_kfp_launcher_endpoint_must_be_fully_qualified_in_its_namespace():
    fixture = str(FIXTURES / "overlay-other-namespace")
    out = failed(lint("--only", "render", "--overlay", fixture), "render")
    assert "ConfigMap/kfp-launcher (namespace team-a): s3.default.endpoint" in out
    assert "'salmubench-minio.salmubench.svc.cluster.local:9000' is not" in out


def test_kubernetes_validate_strict_rejects_an_unknown_field():
    out = failed(
        lint("--only", "validate", "--manifest", str(FIXTURES / "invalid-core.yaml")), "validate"
    )
    assert "'replica' was unexpected" in out


def test_a_resource_of_an_unknown_kind_is_not_valid():
    out = failed(
        lint("--only", "validate", "--manifest", str(FIXTURES / "invalid-custom.yaml")),
        "validate",
    )
    assert "kind Unknown" in out


def test_custom_resource_schemas_reject_what_the_operators_would():
    out = failed(
        lint("--only", "schemas", "--manifest", str(FIXTURES / "invalid-custom.yaml")), "schemas"
    )
    assert "PodMonitor/no-selector: spec: 'selector' is a required property" in out
    out = failed(
        lint("--only", "jobs", "--manifest", str(FIXTURES / "invalid-custom.yaml")), "jobs"
    )
    assert "PyTorchJob/two-masters.spec.pytorchReplicaSpecs.Master.replicas: must be 1" in out
    assert "Master.template.spec.containers: no container named 'pytorch'" in out
    assert re.search(r"TrainJob/reserved-env: model: .*TrainJobSpec runtimeRef Input", out)
    assert "['PET_NNODES'] are reserved" in out


def test_a_job_field_its_trainer_version_lacks_fails_lint():
    """podTemplateOverrides (Trainer 2.1) checked against 2.0's published models fails;
    against 2.1's it is known. The PyTorchJob's misspelt field and long name fail too."""
    fixture = str(FIXTURES / "jobs-wrong-version.yaml")
    out = failed(lint("--only", "jobs", "--manifest", fixture, "--trainer-version", "2.0"), "jobs")
    assert (
        "kubeflow-trainer-api 2.0.1 (Trainer 2.0): TrainJob/salmubench-clean-2-1-fields"
        ".spec.podTemplateOverrides: unknown field (not in TrainerV1alpha1TrainJobSpec)"
    ) in out
    assert "runPolicy.ttlSecondsAfterFinish: unknown field (not in KubeflowOrgV1RunPolicy)" in out
    assert "-master-0' (68 chars) is not a DNS-1035 label" in out
    out = failed(lint("--only", "jobs", "--manifest", fixture, "--trainer-version", "2.1"), "jobs")
    assert "podTemplateOverrides" not in out
    out = failed(lint("--only", "jobs", "--manifest", fixture, "--trainer-version", "2.3"), "jobs")
    assert "(Trainer 2.3): TrainJob/salmubench-clean-2-1-fields.spec.podTemplateOverrides" in out


def test_checkov_rejects_an_insecure_deployment():
    out = failed(
        lint("--only", "checkov", "--manifest", str(FIXTURES / "insecure.yaml")), "checkov"
    )
    for check in ("CKV_K8S_16", "CKV_K8S_19", "CKV_K8S_20", "CKV_K8S_14", "CKV_K8S_9"):
        assert check in out, check  # privileged, host network, escalation, :latest, probes


def test_checkov_rejects_a_broken_dockerfile():
    out = failed(
        lint("--only", "checkov", "--dockerfile", str(FIXTURES / "Dockerfile.broken")), "checkov"
    )
    assert "CKV_DOCKER_3" in out  # no non-root user
    assert "CKV_DOCKER_4" in out  # ADD of a URL


def test_hadolint_rejects_a_broken_dockerfile():
    out = failed(
        lint("--only", "hadolint", "--dockerfile", str(FIXTURES / "Dockerfile.broken")),
        "hadolint",
    )
    for rule in ("DL3007", "DL3008", "DL3013", "DL3003", "DL3025"):
        assert rule in out, rule


def test_yamllint_rejects_duplicate_keys_and_bad_style():
    out = failed(lint("--only", "yamllint", "--yaml", str(FIXTURES / "bad-style.yaml")), "yamllint")
    assert "key-duplicates" in out
    assert "trailing-spaces" in out
    assert "indentation" in out


def test_the_repository_renders_validates_and_matches_the_schemas():
    """Every overlay renders; the launcher's jobs match upstream's models, every version."""
    proc = lint("--only", "validate", "schemas", "jobs", "yamllint")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "ok   render" in out and "2 overlay(s)" in out
    # per overlay: the PodMonitor and the leakage PrometheusRule (k8s/monitoring)
    assert "ok   schemas" in out and "4 custom resources" in out
    # 2 sizes x (PyTorchJob + TrainJob for Trainer 2.0, 2.1, 2.2, 2.3)
    assert "ok   jobs" in out and "10 jobs valid against upstream's models" in out


def test_shellcheck_rejects_a_broken_script():
    out = failed(
        lint("--only", "shellcheck", "--script", str(FIXTURES / "broken.sh")), "shellcheck"
    )
    for code in ("SC2086", "SC2164", "SC2045"):
        assert code in out, code  # unquoted, cd unchecked, ls in a for loop
