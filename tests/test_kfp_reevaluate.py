"""The `reevaluate` pipeline (what a schedule runs) executes under kfp's local runner.

On micro: the session's dataset and Clean/Compromised models, one unlearned checkpoint made
by the real `salmubench unlearn`; every checkpoint is fetched by URI (no importer inside the
ParallelFor, kubeflow/pipelines#10860), evaluated, and reported.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml
from salmubench_pipelines.compile import compile_all
from salmubench_pipelines.definitions import Options
from salmubench_pipelines.local import reevaluate_local

from salmubench.cli import main
from salmubench.eval.metrics import METRICS
from salmubench.manifest import read_manifest

METHOD = "finetune"


@pytest.mark.slow
def test_reevaluate_runs_locally_on_micro(micro_dataset, micro_models, tmp_path, capsys):
    unlearned = tmp_path / "unlearned" / METHOD
    code = main(["unlearn", "--data", str(micro_dataset), "--model",
                 str(micro_models["compromised"]), "--method", METHOD, "--profile", "micro",
                 "--out", str(unlearned), "--quiet"])  # fmt: skip
    assert code == 0
    start = time.perf_counter()
    report = reevaluate_local(
        micro_dataset,
        micro_models["clean"],
        micro_models["compromised"],
        [unlearned],
        tmp_path / "reeval",
        profile="micro",
    )
    print(f"reevaluate (micro, 1 checkpoint) under kfp's local runner: "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    read_manifest(report, kind="report", verify=True)
    assert METHOD in (report / "leaderboard.md").read_text(encoding="utf-8")
    assert "re-evaluation" in (report / "report.html").read_text(encoding="utf-8")

    # Three evaluations of fetched checkpoints with their Metrics; each fetch verified the
    # very folder it was named (its digest recorded on the artifact).
    outputs = [json.loads(p.read_text()) for p in (tmp_path / "reeval" / "kfp").rglob(
        "executor_output.json")]  # fmt: skip
    metrics = [a["metadata"] for o in outputs
               for a in o.get("artifacts", {}).get("metrics", {}).get("artifacts", [])]  # fmt: skip
    assert len(metrics) == 3 and all(set(m) == set(METRICS) for m in metrics)
    fetched = {a["metadata"]["source"]: a["metadata"]["digest"] for o in outputs
               for key in ("dataset", "model")
               for a in o.get("artifacts", {}).get(key, {}).get("artifacts", [])
               if "source" in a.get("metadata", {})}  # fmt: skip
    sources = {str(micro_dataset), str(micro_models["clean"]),
               str(micro_models["compromised"]), str(unlearned)}  # fmt: skip
    assert set(fetched) == sources
    assert fetched[str(unlearned)] == read_manifest(unlearned)["digest"]


def test_reevaluate_compiles_without_importers_and_never_caches(tmp_path):
    [path] = compile_all(tmp_path, Options(), ("reevaluate",))
    with open(path, encoding="utf-8") as f:
        spec = next(yaml.safe_load_all(f))
    executors = spec["deploymentSpec"]["executors"]
    assert not [k for k, e in executors.items() if "importer" in e]
    loop = next(c for name, c in spec["components"].items() if name.startswith("comp-for-loop"))
    refs = sorted(t["componentRef"]["name"] for t in loop["dag"]["tasks"].values())
    assert [r.rstrip("-0123456789") for r in refs] == ["comp-evaluate", "comp-fetch-model"]
    tasks = list(spec["root"]["dag"]["tasks"].values()) + list(loop["dag"]["tasks"].values())
    assert tasks and not any(t.get("cachingOptions", {}).get("enableCache") for t in tasks)
