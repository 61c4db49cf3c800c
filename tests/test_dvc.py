"""dvc.yaml runs the real stages with real DVC; a re-run with nothing changed is a no-op."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from salmubench.manifest import read_manifest

REPO = Path(__file__).resolve().parents[1]


def sh(*cmd: str, cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_dvc_repro_on_micro(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["run"]["profile"] = "micro"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "init", "-q", cwd=project)
    sh("dvc", "init", "-q", cwd=project)

    sh("dvc", "repro", cwd=project)
    manifest = read_manifest(project / "data", kind="dataset", verify=True)
    assert manifest["profile"] == "micro"
    for variant in ("clean", "compromised"):
        model = read_manifest(project / "models" / variant, kind="model", verify=True)
        assert model["variant"] == variant and model["inputs"]["dataset"] == manifest["digest"]
        read_manifest(project / "evals" / variant, kind="eval", verify=True)
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert lock["stages"]["synth"]["params"]["params.yaml"]["run.profile"] == "micro"
    assert "train@compromised" in lock["stages"] and "eval@clean" in lock["stages"]

    shown = sh("dvc", "metrics", "show", "--json", cwd=project)
    assert "retfail" in shown and "genknow" in shown

    out = sh("dvc", "repro", cwd=project)
    assert "didn't change, skipping" in out or "up to date" in out
    assert "Data and pipelines are up to date" in sh("dvc", "status", cwd=project)
