"""The main job: the full benchmark pipeline under kfp's local runner, on the micro profile.

One run (the expensive test of this tier): `salmubench run` executes every component as a
subprocess of this environment (training through `torchrun --standalone`), and must end
with a report, the Metrics artifacts of every evaluation, and telemetry pushed by every
stage to a Pushgateway-compatible endpoint.
"""

from __future__ import annotations

import json
import time

import pytest
from test_telemetry import Pushgateway

from salmubench.cli import main
from salmubench.eval.metrics import METRICS

METHODS = ("direct_sim_min", "finetune")


@pytest.mark.slow
def test_salmubench_run_micro_yields_a_report(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SALMUBENCH_PUSHGATEWAY", raising=False)
    gateway = Pushgateway()
    out = tmp_path / "run"
    start = time.perf_counter()
    try:
        code = main(
            [
                "run",
                "--profile",
                "micro",
                "--methods",
                ",".join(METHODS),
                "--out",
                str(out),
                "--pushgateway",
                gateway.url,
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
    # Progress per stage: numbered start and end lines with the elapsed time.
    assert "[ 1/11] " in printed and "train: SUCCESS in " in printed

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
    assert len(logged) == 2 + len(METHODS)
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
