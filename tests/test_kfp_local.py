"""The main job: the full benchmark pipeline under kfp's local runner, on the micro profile.

One run (the expensive test of this tier): `salmubench run` executes every component as a
subprocess of this environment (training through `torchrun --standalone`), for two worlds
(dataset/model seeds 0 and 1, each its own chain in a ParallelFor), and must end with one
report over both worlds, the Metrics artifacts of every evaluation, telemetry pushed by
every stage to a Pushgateway-compatible endpoint, and every world's artifacts published.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_telemetry import Pushgateway

from salmubench.cli import main
from salmubench.eval.metrics import METRICS
from salmubench.manifest import read_manifest

REPO = Path(__file__).resolve().parents[1]

METHODS = ("finetune",)
WORLDS = (0, 1)


@pytest.mark.slow
def test_salmubench_run_micro_yields_a_report(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SALMUBENCH_PUSHGATEWAY", raising=False)
    gateway = Pushgateway()
    out = tmp_path / "run"
    project = _project(tmp_path)
    start = time.perf_counter()
    try:
        code = main(
            [
                "run",
                "--profile",
                "micro",
                "--methods",
                ",".join(METHODS),
                "--worlds",
                *map(str, WORLDS),
                "--out",
                str(out),
                "--pushgateway",
                gateway.url,
                "--publish",
                "--publish-repo",
                str(project),
                "--run-id",
                "micro-kfp",
            ]
        )
    finally:
        gateway.close()
    seconds = time.perf_counter() - start
    printed = capsys.readouterr().out
    assert code == 0
    print(f"micro pipeline under kfp's local runner: {seconds:.0f} s")

    report = out / "report"
    leaderboard = (report / "leaderboard.md").read_text(encoding="utf-8")
    assert leaderboard in printed  # the job ends with the leaderboard ...
    assert str(report / "report.html") in printed  # ... and where the report is
    assert (report / "report.html").read_text(encoding="utf-8").lstrip().startswith("<")
    assert list(report.glob("*.png"))
    board = json.loads((report / "leaderboard.json").read_text(encoding="utf-8"))
    assert set(METHODS) <= {row.get("method") for row in _rows(board)}
    assert len(board["worlds"]) == len(WORLDS)  # one report, every world scored in-world
    # Progress per stage: numbered start and end lines with the elapsed time.
    # report, and per world: plan, synth, 2 trainings, 2 evals, unlearn + eval, bundle
    assert f"[ 1/{1 + len(WORLDS) * (7 + 2 * len(METHODS))}] " in printed
    assert "train: SUCCESS in " in printed

    # Each evaluation's Metrics artifact carries the ten metrics (what the dashboard shows).
    outputs = list((out / "kfp").glob("*/**/executor_output.json"))
    logged = [
        a["metadata"]
        for o in outputs
        for a in json.loads(o.read_text())
        .get("artifacts", {})
        .get("metrics", {})
        .get("artifacts", [])
    ]
    assert len(logged) == len(WORLDS) * (2 + len(METHODS))
    assert all(set(m) == set(METRICS) for m in logged)

    # Every stage pushed; evaluations labelled by variant and method.
    stages = [p[1]["stage"] for p in gateway.pushes]
    assert sorted(set(stages)) == ["eval", "report", "synth", "train", "unlearn"]
    labels = {
        tuple(sorted(labels.items()))
        for _, key, samples in gateway.by_stage("eval")
        for labels, _ in samples["salmubench_eval_retfail"]
    }
    assert labels == {
        (("method", ""), ("variant", "clean")),
        (("method", ""), ("variant", "compromised")),
        *((("method", m), ("variant", "unlearned")) for m in METHODS),
    }

    # --publish: every artifact in the project's embedded local DVC remote, their versions
    # on branch runs/micro-kfp, pushed to origin; a clone restores them byte for byte.
    assert "published run micro-kfp" in printed
    clone = tmp_path / "clone"
    _git("clone", "-q", str(tmp_path / "origin.git"), str(clone), cwd=tmp_path)
    _git("checkout", "-q", "runs/micro-kfp", cwd=clone)
    _dvc("remote", "modify", "--local", "local", "url", str(project / ".dvcstore"), cwd=clone)
    _dvc("pull", cwd=clone)
    run = json.loads((clone / "artifacts" / "RUN.json").read_text())
    assert "report" in run["artifacts"]
    for w in WORLDS:  # several worlds: each world's folders under worlds/<seed>/
        names = {f"worlds/{w}/{n}" for n in ("data", "models/clean", "models/compromised")}
        names |= {f"worlds/{w}/unlearned/{m}-b1-s0" for m in METHODS}
        assert names <= set(run["artifacts"]), sorted(run["artifacts"])
    for name, info in run["artifacts"].items():
        assert read_manifest(clone / "artifacts" / name, verify=True)["digest"] == info["digest"]
    assert (clone / "artifacts" / "report" / "leaderboard.md").read_text() == leaderboard


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _dvc(*args: str, cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _project(tmp_path: Path) -> Path:
    """A git + DVC project like this repository (its .dvc/config), with a bare origin."""
    project = tmp_path / "project"
    for name in (".dvc/config", ".dvc/.gitignore", ".dvcignore", ".gitignore"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, project / name)
    _git("init", "-q", "-b", "main", cwd=project)
    _git("add", "-A", cwd=project)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init", cwd=project)
    _git("init", "-q", "--bare", "-b", "main", str(tmp_path / "origin.git"), cwd=tmp_path)
    _git("remote", "add", "origin", str(tmp_path / "origin.git"), cwd=project)
    _git("push", "-q", "origin", "main", cwd=project)
    return project


def _rows(board) -> list[dict]:
    """The method rows of leaderboard.json, whatever its nesting."""
    if isinstance(board, dict):
        rows = [board] if "method" in board else []
        for value in board.values():
            rows += _rows(value)
        return rows
    if isinstance(board, list):
        return [row for item in board for row in _rows(item)]
    return []


def test_run_rejects_unknown_methods_before_any_work(tmp_path, capsys):
    code = main(["run", "--profile", "micro", "--methods", "finetune,forget_all",
                 "--out", str(tmp_path / "run")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "['forget_all']" in err and "valid: all, " in err and "finetune" in err
    assert not (tmp_path / "run").exists()
