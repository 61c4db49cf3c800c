"""Every pipeline compiles; the committed YAML is exactly what the compile command writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from salmubench_components import DEFAULT_IMAGE, IMAGE
from salmubench_pipelines.compile import COMPILED, compile_all
from salmubench_pipelines.definitions import PIPELINES, Options

REPO = Path(__file__).resolve().parents[1]


def _docs(path: Path) -> tuple[dict, dict]:
    """(pipeline spec, Kubernetes platform spec) of a compiled file."""
    with open(path, encoding="utf-8") as f:
        spec, platform = yaml.safe_load_all(f)
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _tasks(spec: dict) -> dict[str, dict]:
    """Every task of the pipeline, loops included, by name."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for comp in spec["components"].values():
        tasks.update(comp.get("dag", {}).get("tasks", {}))
    return tasks


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("compiled")
    return {p.stem: p for p in compile_all(out)}


@pytest.fixture(scope="module")
def with_gpus(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("gpus")
    return {
        p.stem: p
        for p in compile_all(out, Options(gpus=2, s3_secret="minio-creds", shared_pvc="shared"))
    }


def test_committed_yaml_is_what_the_command_compiles(compiled):
    assert IMAGE == DEFAULT_IMAGE, "unset $SALMUBENCH_IMAGE to compare with the committed YAML"
    assert set(compiled) == set(PIPELINES)
    for name, path in compiled.items():
        committed = COMPILED / f"{name}.yaml"
        assert committed.read_text() == path.read_text(), (
            f"{committed} is stale or hand-edited: run `salmubench pipeline compile`"
        )


def test_pipelines_have_the_expected_components(compiled):
    expected = {
        "benchmark": {"plan", "synth", "train", "evaluate", "unlearn", "report"},
        "unlearn-eval": {"plan", "importer", "unlearn", "evaluate", "report"},
        "reevaluate": {"importer", "evaluate", "report"},
    }
    for name, path in compiled.items():
        spec, _ = _docs(path)
        used = {
            t["componentRef"]["name"].removeprefix("comp-").rstrip("-0123456789")
            for t in _tasks(spec).values()
        }
        used.discard("for-loop")
        assert used == expected[name], name
        for executor in spec["deploymentSpec"]["executors"].values():
            if "container" in executor:  # importers have no image
                container = executor["container"]
                assert container["image"] == IMAGE and not IMAGE.endswith(":latest")
                assert "pip install" not in " ".join(container["command"])
    bench, _ = _docs(compiled["benchmark"])
    tasks = _tasks(bench)
    assert sum(t["componentRef"]["name"].startswith("comp-train") for t in tasks.values()) == 2
    loops = [t for t in tasks.values() if "parameterIterator" in t]
    assert len(loops) == 1  # unlearn + eval per (method, seed), in parallel
    report_inputs = bench["components"]["comp-report"]["inputDefinitions"]["artifacts"]
    assert report_inputs["evals"].get("isArtifactList") is True  # dsl.Collected
    default = bench["root"]["inputDefinitions"]["parameters"]["params_yaml"]["defaultValue"]
    assert "\n" not in default  # one line: see Options.params_text
    assert yaml.safe_load(default) == yaml.safe_load((REPO / "params.yaml").read_text())


def test_kubernetes_settings_secret_env_and_gpus(compiled, with_gpus):
    for name, path in with_gpus.items():
        spec, k8s = _docs(path)
        containers = {k for k, v in spec["deploymentSpec"]["executors"].items() if "container" in v}
        assert set(k8s) == containers, name  # every task, none forgotten
        for executor in k8s.values():
            [secret] = executor["secretAsEnv"]
            assert secret["secretName"] == "minio-creds"
            assert {e["envVar"] for e in secret["keyToEnv"]} == {
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
            }
    spec, k8s = _docs(with_gpus["benchmark"])
    mounted = {k for k, v in k8s.items() if v.get("pvcMount")}
    assert mounted == {"exec-train", "exec-train-2"}
    assert k8s["exec-train"]["pvcMount"][0]["mountPath"] == "/shared"
    for key, executor in spec["deploymentSpec"]["executors"].items():
        accelerator = executor["container"].get("resources", {}).get("accelerator")
        if key.startswith(("exec-train", "exec-unlearn")):
            assert accelerator["resourceCount"] == "2"
            assert accelerator["resourceType"] == "nvidia.com/gpu"
        else:
            assert accelerator is None, key  # GPUs only where training happens
    spec, _ = _docs(compiled["benchmark"])  # the default compile asks for no GPU
    assert not any(
        "resources" in e["container"] for e in spec["deploymentSpec"]["executors"].values()
    )


def test_caching_is_off_for_reevaluation_only(compiled):
    spec, _ = _docs(compiled["reevaluate"])
    tasks = _tasks(spec)
    assert tasks and all(
        not t.get("cachingOptions", {}).get("enableCache")
        for t in tasks.values()
        if "componentRef" in t
    )
    importers = [e for e in spec["deploymentSpec"]["executors"].values() if "importer" in e]
    assert importers and all(e["importer"]["reimport"] for e in importers)
    spec, _ = _docs(compiled["benchmark"])
    assert all(
        t["cachingOptions"]["enableCache"]
        for t in _tasks(spec).values()
        if "cachingOptions" in t and "parameterIterator" not in t
    )


def test_bad_options_name_the_bad_value():
    with pytest.raises(ValueError, match="gpus=-1"):
        PIPELINES["benchmark"](Options(gpus=-1))


def test_publish_task_gets_git_and_s3_secrets_and_the_endpoint(tmp_path):
    endpoint = "http://salmubench-minio.salmubench.svc.cluster.local:9000"
    [path] = compile_all(tmp_path, Options(publish=True, s3_endpoint=endpoint), ("benchmark",))
    spec, k8s = _docs(path)
    executors = spec["deploymentSpec"]["executors"]
    args = executors["exec-publish"]["container"]["args"]
    assert "publish" in args and "--git-url" not in args  # the body builds the command
    secrets = {s["secretName"]: s for s in k8s["exec-publish"]["secretAsEnv"]}
    assert set(secrets) == {"salmubench-s3", "salmubench-git"}
    assert {e["envVar"] for e in secrets["salmubench-git"]["keyToEnv"]} == {
        "GIT_USERNAME",
        "GIT_PASSWORD",
    }
    for key, executor in executors.items():  # every task reaches the same S3 endpoint
        env = {e["name"]: e["value"] for e in executor["container"].get("env", [])}
        assert env.get("AWS_ENDPOINT_URL_S3") == endpoint, key
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert {"publish_git_url", "publish_dvc_remote"} <= set(inputs)
