"""Every pipeline compiles; the committed YAML is exactly what the compile command writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from salmubench_components import DEFAULT_IMAGE, IMAGE, LEAN_IMAGE
from salmubench_pipelines.compile import COMPILED, compile_all
from salmubench_pipelines.definitions import PIPELINES, Options

from salmubench.vocab import ATTACKS

REPO = Path(__file__).resolve().parents[1]
# The tasks that load methods run in the run's `method_image` (kfp resolves it at run time).
METHOD_IMAGE = "{{$.inputs.parameters['pipelinechannel--method_image']}}"
METHOD_EXECUTORS = {"benchmark": {"exec-plan", "exec-unlearn"},  # (-2: a second copy)
                    "unlearn-eval": {"exec-plan", "exec-unlearn"}}  # fmt: skip
# The torch-free stages' components run in the lean image (docker/Dockerfile.lean, issue
# #18); plan too where no pipeline overrides it (the pipelines run it in `method_image`,
# which has the run's methods: METHOD_EXECUTORS).
LEAN_EXECUTORS = {"exec-synth", "exec-report"}


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
        "benchmark": {
            "plan",
            "synth",
            "train",
            "evaluate",
            "unlearn",
            "world-evals",
            "report",
            "plan-attacks",
            "world-models",
            "attack",
        },
        "unlearn-eval": {"plan", "importer", "unlearn", "evaluate", "report"},
        "reevaluate": {"fetch-dataset", "fetch-model", "evaluate", "report"},
        "import-official": {"importer", "import-official"},
    }
    for name, path in compiled.items():
        spec, _ = _docs(path)
        used = {
            t["componentRef"]["name"].removeprefix("comp-").rstrip("-0123456789")
            for t in _tasks(spec).values()
        }
        used -= {"for-loop", "condition-branches", "condition"}
        assert used == expected[name], name
        for key, executor in spec["deploymentSpec"]["executors"].items():
            if "container" in executor:  # importers have no image
                container = executor["container"]
                # plan and unlearn: the run's method_image, whose default is IMAGE; synth
                # and report: the lean image (no torch, docker/Dockerfile.lean)
                base = key.rstrip("-0123456789")
                image = METHOD_IMAGE if base in METHOD_EXECUTORS.get(name, ()) else (
                    LEAN_IMAGE if base in LEAN_EXECUTORS else IMAGE)  # fmt: skip
                assert container["image"] == image and not IMAGE.endswith(":latest"), key
                assert "pip install" not in " ".join(container["command"])
    bench, _ = _docs(compiled["benchmark"])
    tasks = _tasks(bench)
    assert sum(t["componentRef"]["name"].startswith("comp-train") for t in tasks.values()) == 2
    loops = sorted(
        t["parameterIterator"]["itemInput"] for t in tasks.values() if "parameterIterator" in t
    )
    # per world; inside it unlearn + eval per (method, seed), and per attack (inside it:
    # per unlearned model: the world's runs again)
    assert [loop.removeprefix("pipelinechannel--") for loop in loops] == [
        "attacks-loop-item", "plan-Output-loop-item", "plan-Output-loop-item",
        "worlds-loop-item"]  # fmt: skip
    outer = bench["root"]["dag"]["tasks"]
    [(loop_name, world_loop)] = [(n, t) for n, t in outer.items() if "parameterIterator" in t]
    assert world_loop["parameterIterator"]["items"]["inputParameter"].endswith("worlds")
    # The report fans in one level: the per-world bundles, not the nested evaluations.
    report_in = outer["report"]["inputs"]["artifacts"]["evals"]["taskOutputArtifact"]
    assert report_in["producerTask"] == loop_name
    report_inputs = bench["components"]["comp-report"]["inputDefinitions"]["artifacts"]
    assert report_inputs["evals"].get("isArtifactList") is True  # dsl.Collected
    # The run form: a few parameters a person picks per run; site settings are compiled in.
    form = bench["root"]["inputDefinitions"]["parameters"]
    assert set(form) == {"profile", "worlds", "methods", "seeds", "budget", "params_yaml",
                         "synth_set", "train_set", "unlearn_set", "eval_set", "method_py",
                         "method_image", "attacks", "attack_set"}  # fmt: skip
    assert form["attacks"]["defaultValue"] == list(ATTACKS)  # every attack unless switched off
    assert form["params_yaml"].get("defaultValue", "") == ""  # the image's own params.yaml
    text = (REPO / "params.yaml").read_text()
    one_line = Options(params_yaml=text).params_text()  # an embedded text: one line
    assert "\n" not in one_line and yaml.safe_load(one_line) == yaml.safe_load(text)


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
        if key.startswith(("exec-train", "exec-unlearn", "exec-evaluate", "exec-attack")):
            assert accelerator["resourceCount"] == "2"
            assert accelerator["resourceType"] == "nvidia.com/gpu"
        else:
            assert accelerator is None, key  # GPUs where models train and embed
    spec, _ = _docs(compiled["benchmark"])  # the default compile asks for no GPU
    assert not any(
        "resources" in e["container"] for e in spec["deploymentSpec"]["executors"].values()
    )


def _component_of(spec: dict, task: dict) -> dict:
    return spec["components"][task["componentRef"]["name"]]


def _input_from(task: dict, name: str) -> tuple[str, str]:
    """(producer task, output) of an artifact input of `task`, or of its parent's input."""
    source = task["inputs"]["artifacts"][name]
    if "taskOutputArtifact" in source:
        out = source["taskOutputArtifact"]
        return out["producerTask"], out["outputArtifactKey"]
    return "(parent)", source["componentInputArtifact"]


def test_the_attack_stage_is_a_loop_over_attacks_with_one_over_models_inside(compiled):
    """Per world: plan-attacks validates and counts `attacks`; a dsl.If on that count holds
    a ParallelFor over the attacks (the Clean reference attack) with, nested in it, one over
    the world's runs (the unlearned models' attacks, fed by that reference)."""
    spec, _ = _docs(compiled["benchmark"])
    world = _component_of(spec, next(t for t in spec["root"]["dag"]["tasks"].values()
                                     if "parameterIterator" in t))  # fmt: skip
    tasks = world["dag"]["tasks"]
    assert tasks["plan-attacks"]["inputs"]["parameters"]["attacks"] == {
        "componentInputParameter": "pipelinechannel--attacks"
    }
    # The world's models, bundled for the attacks; copied only when the stage is on.
    models = tasks["world-models"]["inputs"]
    assert models["parameters"]["attacks"]["taskOutputParameter"]["producerTask"] == (
        "plan-attacks"
    )
    [switch] = [t for t in tasks.values() if "triggerPolicy" in t]
    assert switch["triggerPolicy"]["condition"] == (
        "int(inputs.parameter_values['pipelinechannel--plan-attacks-Output']) > 0"
    )
    [per_attack] = _component_of(spec, switch)["dag"]["tasks"].values()
    assert per_attack["parameterIterator"]["items"]["inputParameter"] == (
        "pipelinechannel--attacks"  # the pipeline parameter itself: [] = no iteration
    )
    inner = _component_of(spec, per_attack)["dag"]["tasks"]
    [ref_name] = [n for n, t in inner.items() if "parameterIterator" not in t]
    [per_model] = [t for t in inner.values() if "parameterIterator" in t]
    ref = inner[ref_name]
    assert ref["componentRef"]["name"].startswith("comp-attack")
    assert ref["inputs"]["parameters"]["attack"]["componentInputParameter"].endswith(
        "attacks-loop-item"
    )
    assert "clean" not in ref["inputs"].get("artifacts", {})  # the reference itself
    assert per_model["parameterIterator"]["items"]["inputParameter"].endswith("plan-Output")
    [attack] = _component_of(spec, per_model)["dag"]["tasks"].values()
    params = attack["inputs"]["parameters"]
    assert "attack" not in params  # read from its Clean reference (see stages.attack)
    assert {"method", "seed"} <= set(params)
    assert set(attack["inputs"]["artifacts"]) == {"data", "model", "clean", "compromised"}
    # clean: the reference of this very iteration; model: the bundle of the world's models
    # (both reach the nested loop as inputs of its DAG, wired from the tasks named here).
    loop_inputs = per_model["inputs"]["artifacts"]
    assert _input_from(per_model, attack["inputs"]["artifacts"]["clean"][
        "componentInputArtifact"]) == (ref_name, "folder")  # fmt: skip
    model_in = loop_inputs[attack["inputs"]["artifacts"]["model"]["componentInputArtifact"]]
    assert model_in["componentInputArtifact"].endswith("world-models-folder")
    ref_outputs = _component_of(spec, ref)["outputDefinitions"]["artifacts"]
    assert ref_outputs["recovery"]["artifactType"]["schemaTitle"] == "system.Metrics"


def test_caching_is_off_for_reevaluation_only(compiled):
    spec, _ = _docs(compiled["reevaluate"])
    tasks = _tasks(spec)
    assert tasks and all(
        not t.get("cachingOptions", {}).get("enableCache")
        for t in tasks.values()
        if "componentRef" in t
    )
    # Checkpoints are fetched by URI each run, never through an importer (#10860).
    assert not [e for e in spec["deploymentSpec"]["executors"].values() if "importer" in e]
    spec, _ = _docs(compiled["benchmark"])
    assert all(
        t["cachingOptions"]["enableCache"]
        for t in _tasks(spec).values()
        if "cachingOptions" in t and "parameterIterator" not in t
    )


def test_bad_options_name_the_bad_value():
    with pytest.raises(ValueError, match="gpus=-1"):
        PIPELINES["benchmark"](Options(gpus=-1))
    with pytest.raises(ValueError, match="'slurm'; valid: local, trainjob, pytorchjob"):
        PIPELINES["benchmark"](Options(launcher="slurm"))
    with pytest.raises(ValueError, match="launcher 'pytorchjob' needs shared_pvc"):
        PIPELINES["benchmark"](Options(launcher="pytorchjob"))
    with pytest.raises(ValueError, match=r"unknown Trainer version '3\.0'"):
        PIPELINES["benchmark"](Options(trainer_version="3.0"))


def test_job_launcher_settings_are_compiled_into_the_train_tasks(tmp_path):
    opts = Options(launcher="trainjob", shared_pvc="shared", train_nodes=2,
                   train_gpus_per_node=1, trainer_version="2.1")  # fmt: skip
    [path] = compile_all(tmp_path, opts, ("benchmark",))
    spec, _ = _docs(path)
    trains = [t for t in _tasks(spec).values() if t["componentRef"]["name"].startswith(
        "comp-train")]  # fmt: skip
    assert len(trains) == 2
    for task in trains:
        params = {k: v["runtimeValue"]["constant"] for k, v in task["inputs"]["parameters"].items()
                  if "runtimeValue" in v}  # fmt: skip
        assert params["launcher"] == "trainjob" and params["trainer_version"] == "2.1"
        assert params["nodes"] == 2 and params["gpus_per_node"] == 1
        assert params["s3_secret"] == "salmubench-s3" and params["istio_opt_out"] is True


def test_publish_task_gets_git_and_s3_secrets_and_the_endpoint(tmp_path):
    endpoint = "http://salmubench-minio.salmubench.svc.cluster.local:9000"
    git = "https://example.org/salmubench.git"
    opts = Options(publish=True, s3_endpoint=endpoint, publish_git_url=git)
    [path] = compile_all(tmp_path, opts, ("benchmark",))
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
    publish = spec["root"]["dag"]["tasks"]["publish"]["inputs"]["parameters"]
    assert publish["git_url"]["runtimeValue"]["constant"] == git
    assert publish["dvc_remote"]["runtimeValue"]["constant"] == "minio"
    with pytest.raises(ValueError, match="publish needs publish_git_url"):
        compile_all(tmp_path, Options(publish=True), ("benchmark",))


def test_methods_from_outside_the_image_reach_plan_and_unlearn_per_run(compiled, tmp_path):
    """`method_image` (default: the components' image) runs the tasks that load methods,
    `method_py` (a method file's text) reaches both: a method package's image or a method
    file, chosen per run without recompiling (docs/METHODS.md)."""
    for name in ("benchmark", "unlearn-eval"):
        spec, _ = _docs(compiled[name])
        form = spec["root"]["inputDefinitions"]["parameters"]
        assert form["method_image"]["defaultValue"] == IMAGE
        assert form["method_py"]["defaultValue"] == ""
        tasks = _tasks(spec)
        # unlearn-eval has its loop in both branches of the GenKnow condition: unlearn-2
        loaders = [n for n in tasks if n.rstrip("-0123456789") in ("plan", "unlearn")]
        assert {"plan", "unlearn"} <= set(loaders), name
        for task in loaders:
            inputs = tasks[task]["inputs"]["parameters"]
            assert inputs["base_image"]["runtimeValue"]["constant"] == METHOD_IMAGE, (name, task)
            assert "method_py" in inputs, (name, task)
        others = [n for n, t in tasks.items() if n not in loaders
                  and "base_image" in t.get("inputs", {}).get("parameters", {})]  # fmt: skip
        assert others == [], name  # evaluation, training, report: our image
    # An image set at compile time (--image) is the default method image too.
    done = subprocess.run(
        [sys.executable, "-m", "salmubench", "pipeline", "compile", "--only", "benchmark",
         "--image", "registry.example/salmubench:1.2.3", "--out", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    spec, _ = _docs(tmp_path / "benchmark.yaml")
    form = spec["root"]["inputDefinitions"]["parameters"]
    assert form["method_image"]["defaultValue"] == "registry.example/salmubench:1.2.3"


def test_lean_image_runs_synth_and_report_and_is_tagged_like_the_full_one(compiled, tmp_path):
    """synth and report run in the lean image (docker/Dockerfile.lean, issue #18); its tag is
    the full image's + `-lean`, what `docker/build.sh lean` tags the same commit with
    (`<cpu tag>-lean`)."""
    from salmubench_components import REPOSITORY, git_revision, image_tag, lean_image

    from salmubench import __version__

    assert f"{DEFAULT_IMAGE}-lean" == LEAN_IMAGE  # the tests run without $SALMUBENCH_*_IMAGE
    assert image_tag("lean", "g1a2b3c4d-dirty") == f"{__version__}-g1a2b3c4d-dirty-lean"
    assert image_tag("lean", "g1a2b3c4d") == image_tag("cpu", "g1a2b3c4d") + "-lean"
    assert image_tag("lean", None) == f"{__version__}-lean"
    # `python -m salmubench_components --target lean`, run from elsewhere: the revision is
    # that of the checkout holding the code imported, not of the working directory.
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=8", "HEAD"],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert git_revision().startswith(f"g{sha}")
    out = subprocess.run([sys.executable, "-m", "salmubench_components", "--target", "lean"],
                         capture_output=True, text=True, check=True, cwd=tmp_path)  # fmt: skip
    assert out.stdout.strip() == f"{REPOSITORY}:{__version__}-{git_revision()}-lean"
    with pytest.raises(ValueError, match=r"is a digest.*SALMUBENCH_LEAN_IMAGE"):
        lean_image("reg.example/s@sha256:" + "0" * 64)
    for name, path in compiled.items():
        spec, _ = _docs(path)
        leans = {k for k, e in spec["deploymentSpec"]["executors"].items()
                 if e.get("container", {}).get("image") == LEAN_IMAGE}  # fmt: skip
        reports = {"benchmark": {"exec-report"}, "reevaluate": {"exec-report"},
                   "unlearn-eval": {"exec-report", "exec-report-2"}}  # fmt: skip
        synths = {"exec-synth"} if name == "benchmark" else set()
        assert leans == synths | reports.get(name, set()), name
    # An image given at compile time names its lean sibling; $SALMUBENCH_LEAN_IMAGE wins.
    for env, lean in (({}, "registry.example/salmubench:1.2.3-lean"),
                      ({"SALMUBENCH_LEAN_IMAGE": "registry.example/lean:9"},
                       "registry.example/lean:9")):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "salmubench", "pipeline", "compile", "--only", "benchmark",
             "--image", "registry.example/salmubench:1.2.3", "--out", str(tmp_path)],
            capture_output=True, text=True, env={**os.environ, **env},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        spec, _ = _docs(tmp_path / "benchmark.yaml")
        executors = spec["deploymentSpec"]["executors"]
        assert executors["exec-synth"]["container"]["image"] == lean
        assert executors["exec-report"]["container"]["image"] == lean
        assert executors["exec-train"]["container"]["image"] == "registry.example/salmubench:1.2.3"
