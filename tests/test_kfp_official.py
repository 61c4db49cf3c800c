"""The released SALMUBench data through the Kubeflow pipelines (issue #19), under kfp's local
runner: `salmubench-import-official` imports a release (the fixture of test_official.py, in
the release's layout), then `salmubench-unlearn-eval` unlearns a Compromised model given as
a bare OpenCLIP checkpoint FILE (`arch`), evaluates with GenKnow from an ImageNet-style folder
(`genknow_imagenet_uri`, an importer) and reports.

A ViT-B-16 on one CPU core embeds ~1 image per second (test_official.py), far too slow for a
pipeline test: the checkpoint files are our `salmu-micro` architecture saved as OpenCLIP
saves one (`{"state_dict": ...}`), the same code path as `--arch ViT-B-16`.
"""

from __future__ import annotations

import json
import time

import kfp.local
import pytest
import torch
import yaml
from salmubench_pipelines.compile import compile_all
from salmubench_pipelines.definitions import Options, import_official, unlearn_eval
from salmubench_pipelines.local import quiet, reevaluate_local
from test_official import image_bytes, write_release

from salmubench.cli import main
from salmubench.eval.metrics import METRICS
from salmubench.hashing import sha256_file
from salmubench.manifest import read_manifest
from salmubench.models import create

ARCH = "salmu-micro"
RETAIN = "retain=[retain_joint,retain_disjoint]"  # the release has no retain_real


def _checkpoint(path, seed: int):
    torch.manual_seed(seed)
    torch.save({"state_dict": create(ARCH).state_dict()}, path)
    return path


@pytest.mark.slow
def test_unlearn_eval_pipeline_on_an_imported_release_with_a_checkpoint_file(tmp_path, capsys):
    start = time.perf_counter()
    release = write_release(tmp_path / "release")
    for log in ("import", "unlearn-eval"):  # kfp's own output goes to <folder>/kfp.log
        (tmp_path / log).mkdir()
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False),
                   pipeline_root=str(tmp_path / "kfp"))  # fmt: skip
    with quiet(tmp_path / "import", total=2):
        imported = import_official(Options())(
            official_uri=str(release), genknow_per_class=1, genknow_classes=2
        )
    data = imported.output.path
    manifest = read_manifest(data, kind="dataset", verify=True)
    assert manifest["official"]["unused_retain_synth"] == 0
    assert {"forget_identity", "forget_association", "retain_joint", "retain_disjoint",
            "fragile", "genknow"} <= set(manifest["shards"])  # fmt: skip

    # The references: the two checkpoint files evaluated as the Clean and Compromised.
    clean = _checkpoint(tmp_path / "clean.pt", 2)
    compromised = _checkpoint(tmp_path / "compromised.pt", 1)
    common = ["--data", data, "--arch", ARCH, "--profile", "micro", "--device", "cpu", "-q"]
    assert main(["eval", *common, "--model", str(clean), "--role", "clean",
                 "--out", str(tmp_path / "eval-clean")]) == 0  # fmt: skip
    assert main(["eval", *common, "--model", str(compromised), "--role", "compromised",
                 "--clean", str(tmp_path / "eval-clean"), "--compromised", str(compromised),
                 "--out", str(tmp_path / "eval-compromised")]) == 0  # fmt: skip

    imagenet = tmp_path / "imagenet"  # class-index subfolders (a subset of ImageNet-1k)
    for cls in ("0", "207"):
        (imagenet / cls).mkdir(parents=True)
        (imagenet / cls / "img0.JPEG").write_bytes(image_bytes(200 + int(cls), "JPEG"))
    with quiet(tmp_path / "unlearn-eval", total=9):
        unlearn_eval(Options(parallelism=1))(
            method="neg_grad",
            dataset_uri=data,
            compromised_uri=str(compromised),
            clean_eval_uri=str(tmp_path / "eval-clean"),
            compromised_eval_uri=str(tmp_path / "eval-compromised"),
            profile="micro",
            unlearn_set=[RETAIN],
            arch=ARCH,
            device="cpu",
            batch_size=8,
            genknow_imagenet_uri=str(imagenet),
            genknow_templates="simple",
        )
    lines = capsys.readouterr().out.splitlines()
    print(f"import + unlearn-eval under kfp's local runner: {time.perf_counter() - start:.0f} s")
    assert sum(" SUCCESS " in line for line in lines) >= 4, lines

    # The unlearned model came from the checkpoint file (an external source, OpenCLIP's
    # preprocessing) with the batch size given; its evaluation used the ImageNet folder.
    root = tmp_path / "kfp"
    [unlearned] = [p.parent for p in root.rglob("manifest.json")
                   if json.loads(p.read_text()).get("kind") == "model"]  # fmt: skip
    model = read_manifest(unlearned, kind="model", verify=True)
    assert model["source"]["variant"] == "external"
    assert model["config"]["forget_batch"] == 8
    evals = [p.parent for p in root.rglob("metrics.json") if (p.parent / "items").is_dir()]
    [evaluation] = [e for e in evals if read_manifest(e)["model"].get("method") == "neg_grad"]
    ev = read_manifest(evaluation, kind="eval", verify=True)["evaluation"]
    assert ev["preprocess"]["kind"] == "openclip" and ev["device"] == "cpu"
    assert ev["batch_size"] == 8
    assert ev["genknow"]["kind"] == "imagenet" and ev["genknow"]["images"] == 2
    assert ev["genknow"]["templates"] == "simple"
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert set(METRICS) <= set(metrics) and metrics["genknow_classes"] == 1000
    [report] = [p.parent for p in root.rglob("leaderboard.md")]
    assert "neg_grad" in (report / "leaderboard.md").read_text(encoding="utf-8")

    # The scheduled re-evaluation of the same: the Clean and Compromised given as checkpoint
    # files (fetched by path, by their sha256) with `arch`, evaluated as their roles.
    again = reevaluate_local(data, clean, compromised, [unlearned], tmp_path / "reeval",
                             profile="micro", arch=ARCH, device="cpu")  # fmt: skip
    assert "neg_grad" in (again / "leaderboard.md").read_text(encoding="utf-8")
    outputs = [json.loads(p.read_text())
               for p in (tmp_path / "reeval" / "kfp").rglob("executor_output.json")]  # fmt: skip
    fetched = {a["metadata"]["source"]: a["metadata"]["digest"] for o in outputs
               for a in o.get("artifacts", {}).get("model", {}).get("artifacts", [])
               if "source" in a.get("metadata", {})}  # fmt: skip
    assert fetched[str(clean)] == f"sha256:{sha256_file(clean)}"
    variants = sorted(read_manifest(p.parent)["model"].get("variant", "") for p in
                      (tmp_path / "reeval" / "kfp").rglob("metrics.json")
                      if (p.parent / "items").is_dir())  # fmt: skip
    assert variants[:2] == ["clean", "compromised"], variants
    print(f"... and reevaluate: {time.perf_counter() - start:.0f} s in all")


def test_official_parameters_reach_the_commands_and_defaults_are_todays(tmp_path):
    """The new parameters are in the run forms with defaults that change nothing, and
    GenKnow's ImageNet folder is an importer only in the branch where its URI is given."""
    paths = {
        p.stem: p
        for p in compile_all(tmp_path, Options(), ("unlearn-eval", "reevaluate", "import-official"))
    }
    specs = {n: next(yaml.safe_load_all(p.read_text())) for n, p in paths.items()}
    form = specs["unlearn-eval"]["root"]["inputDefinitions"]["parameters"]
    defaults = {k: form[k].get("defaultValue", "") for k in
                ("arch", "device", "batch_size", "genknow_imagenet_uri", "genknow_templates",
                 "preprocess")}  # fmt: skip
    assert defaults == {"arch": "", "device": "auto", "batch_size": 0.0,
                        "genknow_imagenet_uri": "", "genknow_templates": "openai",
                        "preprocess": "auto"}  # fmt: skip
    spec = specs["unlearn-eval"]
    [branches] = [c["dag"]["tasks"] for n, c in spec["components"].items()
                  if n.startswith("comp-condition-branches")]  # fmt: skip
    uri = "inputs.parameter_values['pipelinechannel--genknow_imagenet_uri'] != ''"
    assert sorted(t["triggerPolicy"]["condition"] for t in branches.values()) == [
        f"!({uri})", uri]  # fmt: skip
    # The ImageNet importer is in the branch with a URI; the other branch evaluates
    # without one (the dataset's own GenKnow task), so the compiled args differ by it.
    with_uri = next(n for n, t in branches.items() if t["triggerPolicy"]["condition"] == uri)
    inner = spec["components"][branches[with_uri]["componentRef"]["name"]]["dag"]["tasks"]
    assert any(t["componentRef"]["name"].startswith("comp-importer") for t in inner.values())
    # Evaluations ask for the GPUs too (the released ViT-B/16 is embedding-bound).
    [gpu_path] = compile_all(tmp_path / "gpu", Options(gpus=1), ("unlearn-eval",))
    executors = next(yaml.safe_load_all(gpu_path.read_text()))["deploymentSpec"]["executors"]
    accelerated = {k for k, e in executors.items()
                   if e.get("container", {}).get("resources", {}).get("accelerator")}  # fmt: skip
    assert accelerated == {"exec-unlearn", "exec-unlearn-2", "exec-evaluate", "exec-evaluate-2"}
    form = specs["reevaluate"]["root"]["inputDefinitions"]["parameters"]
    assert {"arch", "device", "batch_size", "preprocess"} <= set(form)
    form = specs["import-official"]["root"]["inputDefinitions"]["parameters"]
    assert set(form) == {"official_uri", "genknow_per_class", "genknow_classes", "params_yaml"}


def test_fetch_takes_a_checkpoint_file_by_path_or_s3_key(tmp_path, s3, s3_env):
    """What reevaluate's fetch_model does with an external checkpoint: the file itself (by
    path, or the object stored at exactly that s3:// key), recorded by its sha256; a
    .safetensors file is refused (its reader is chosen by a suffix the artifact lacks)."""
    from salmubench_components.shell import fetch_folder

    from s3server import BUCKET

    ckpt = _checkpoint(tmp_path / "compromised.pt", 1)
    digest = f"sha256:{sha256_file(ckpt)}"
    got = fetch_folder(str(ckpt), str(tmp_path / "local"))
    assert got == {"digest": digest, "file": "compromised.pt"}
    assert (tmp_path / "local").read_bytes() == ckpt.read_bytes()
    s3.client().upload_file(str(ckpt), BUCKET, "official/compromised.pt")
    got = fetch_folder(f"s3://{BUCKET}/official/compromised.pt", str(tmp_path / "remote"))
    assert got == {"digest": digest, "file": "compromised.pt"}
    assert (tmp_path / "remote").read_bytes() == ckpt.read_bytes()
    with pytest.raises(ValueError, match=r"model\.safetensors: a \.safetensors checkpoint"):
        fetch_folder(str(tmp_path / "model.safetensors"), str(tmp_path / "st"))
