"""The main job: the full benchmark pipeline under kfp's local runner, on the micro profile.

One run (the expensive test of this tier): `salmubench run` executes every component as a
subprocess of this environment (training through `torchrun --standalone`), for two worlds
(dataset/model seeds 0 and 1, each its own chain in a ParallelFor), and must end with one
report over both worlds, the Metrics artifacts of every evaluation, telemetry pushed by
every stage to a Pushgateway-compatible endpoint, and every world's artifacts published.
With a relearning attack: once on Clean and then on the unlearned model, per world (the
nested ParallelFor over attacks and models), against that reference.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import kfp.local
import pytest
from kfp_toys import failing_toy_pipeline
from salmubench_pipelines.local import LOG_FILE, TAIL_LINES, RunFailed, leaderboard_table, quiet
from test_telemetry import Pushgateway

from salmubench.attack.stage import ATTACK_FILE
from salmubench.cli import main
from salmubench.eval.metrics import METRICS
from salmubench.manifest import read_manifest

REPO = Path(__file__).resolve().parents[1]

METHODS = ("finetune",)
WORLDS = (0, 1)
# The attack without training: each attack task costs ~20 s here (a fine-tuning one ~40 s);
# the loops' wiring for several attacks is tests/test_kfp_compile.py's.
ATTACKS = ("low_precision",)


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
                "--attacks",
                *ATTACKS,
            ]
        )
    finally:
        gateway.close()
    seconds = time.perf_counter() - start
    captured = capsys.readouterr()
    printed = captured.out
    assert code == 0, printed + captured.err
    print(f"micro pipeline under kfp's local runner: {seconds:.0f} s")

    report = out / "report"
    leaderboard = (report / "leaderboard.md").read_text(encoding="utf-8")
    # A quiet job: a header, one line per task, the leaderboard table, where the report is.
    job = printed[: printed.index("published run micro-kfp")].splitlines()
    assert len(job) <= 60, printed
    # report; per world: plan, synth, 2 trainings, 2 evals, unlearn + eval per method, the
    # bundle, plan attacks, the world's models; per attack: Clean, then each method
    tasks = 1 + len(WORLDS) * (9 + 2 * len(METHODS) + len(ATTACKS) * (1 + len(METHODS)))
    done = [
        line
        for line in job
        if re.fullmatch(rf"\[ ?\d+/{tasks}\] \S+( \S+)? +SUCCESS +\d+\.\d s", line)
    ]
    assert len(done) == tasks, printed
    assert [int(line[1:3]) for line in done] == list(range(1, tasks + 1))
    # task (kfp numbers same-named tasks: train, train-2), and which one it is
    labels = [line.split("] ", 1)[1].split()[:2] for line in done]
    labels = [[task.rstrip("-0123456789"), which] for task, which in labels]
    assert labels.count(["train", "clean"]) == labels.count(["train", "compromised"]) == len(WORLDS)
    assert labels.count(["unlearn", *METHODS]) == len(WORLDS)
    for attack in ATTACKS:  # each attack once on Clean and once on each model, per world
        assert labels.count(["attack", f"clean/{attack}"]) == len(WORLDS), labels
        for m in METHODS:
            assert labels.count(["attack", f"{m}-s0/{attack}"]) == len(WORLDS), labels
    table = leaderboard_table(leaderboard)
    assert table in printed and "| rank | method |" in table  # the leaderboard ...
    assert str(report / "report.html") in printed  # ... and where the report is
    # kfp's own output is not on the terminal but in the run folder's log, whole.
    assert "Executing task" not in printed and "[salmubench]" not in printed
    kfp_log = (out / LOG_FILE).read_text(encoding="utf-8")
    assert str(out / LOG_FILE) in printed
    assert kfp_log.count("Executing task") == tasks
    for stage in ("synth", "train", "eval", "unlearn", "report"):
        assert re.search(rf"\[salmubench\] {stage}( \w+)? finished in ", kfp_log), stage
    assert len(kfp_log.splitlines()) > 10 * len(job)
    assert (report / "report.html").read_text(encoding="utf-8").lstrip().startswith("<")
    assert list(report.glob("*.png"))
    board = json.loads((report / "leaderboard.json").read_text(encoding="utf-8"))
    # OUR rows only: the paper's rows (board["paper"]) name the same methods.
    ours = [row for row in board["rows"] if row["variant"] == "unlearned"]
    assert sorted(row["method"] for row in ours) == sorted(METHODS)
    assert all(sorted(row["worlds"]) == [f"world {w}" for w in WORLDS] for row in ours)
    assert len(board["worlds"]) == len(WORLDS)  # one report, every world scored in-world

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
    # Each attack's Metrics artifact: the scores before it, and on an unlearned model the
    # worst case of its recovery gap where that is defined (micro's Compromised model may
    # not beat Clean on the scored items: then the gap has no scale); the Clean reference
    # has none.
    recovery = {
        o.parent.relative_to(out).as_posix(): a["metadata"]
        for o in outputs
        for a in json.loads(o.read_text()).get("artifacts", {}).get("recovery", {})
        .get("artifacts", [])
    }  # fmt: skip
    assert len(recovery) == len(WORLDS) * len(ATTACKS) * (1 + len(METHODS)), recovery
    before = {"retfail_before", "assoc_str_before"}
    gap = {"recovery_retfail", "recovery_assoc_str"}
    for task, logged in recovery.items():
        assert before <= set(logged) <= before | gap, (task, logged)
        assert set(logged) == before or not task.endswith("/attack"), (task, logged)

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
        # each attack, named after the model it attacked
        names |= {f"worlds/{w}/attacks/{who}/{a}" for who in ("clean", *(f"{m}-b1-s0"
                  for m in METHODS)) for a in ATTACKS}  # fmt: skip
        assert names <= set(run["artifacts"]), sorted(run["artifacts"])
        for m in METHODS:  # the unlearned model's attack was scored against Clean's
            for a in ATTACKS:
                record = json.loads((clone / "artifacts" / f"worlds/{w}/attacks/{m}-b1-s0/{a}"
                                     / ATTACK_FILE).read_text())  # fmt: skip
                assert record["attack"] == a and record["model"]["method"] == m
                assert record["clean"]["variant"] == "clean"
                assert record["compromised"]["variant"] == "compromised"
                assert set(record["recovery"]["scale"]) == {"retfail", "assoc_str"}
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


def test_run_rejects_unknown_methods_before_any_work(tmp_path, capsys):
    code = main(["run", "--profile", "micro", "--methods", "finetune,forget_all",
                 "--out", str(tmp_path / "run")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "['forget_all']" in err and "valid: all, " in err and "finetune" in err
    assert not (tmp_path / "run").exists()


def test_run_rejects_unknown_or_repeated_attacks_before_any_work(tmp_path, capsys):
    args = ["run", "--profile", "micro", "--methods", "finetune", "--out", str(tmp_path / "run")]
    assert main([*args, "--attacks", "persona_split", "int4"]) == 2
    err = capsys.readouterr().err
    assert "unknown attack 'int4'; valid: persona_split, retain_only, " in err
    assert main([*args, "--attacks", "low_precision", "low_precision"]) == 2
    assert "name each attack once" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_failed_task_prints_its_log_tail_and_the_rest_stays_in_the_log(tmp_path, capsys):
    """kfp's real local runner; only the failed task's tail reaches the terminal."""
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False),
                   pipeline_root=str(tmp_path / "kfp"))  # fmt: skip
    failed = pytest.raises(RunFailed, match=r"task failing-toy failed .*kfp's full log: ")
    with failed as caught, quiet(tmp_path, total=2):
        failing_toy_pipeline(n=1)
    assert str(tmp_path / LOG_FILE) in str(caught.value)
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"\[ 1/2\] chatty-toy +SUCCESS +\d+\.\d s", lines[0]), lines
    assert re.fullmatch(r"\[ 2/2\] failing-toy +FAILURE +\d+\.\d s", lines[1]), lines
    assert lines[-1] == "    | the fact that failed it (input 2)"
    assert len(lines) == 3 + TAIL_LINES and lines[-2] == "    | before the failure 199"
    assert not any("chatter" in line for line in lines)
    kfp_log = (tmp_path / LOG_FILE).read_text(encoding="utf-8")
    assert all(f"chatter {i}\n" in kfp_log for i in range(200))
    assert all(f"before the failure {i}\n" in kfp_log for i in range(200))
