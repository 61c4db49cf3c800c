"""benchmarks/perf.py runs on micro, writes its JSON and renders the benchmark document;
its suites and worker subcommands are explicit tables (benchmarks/perf/cli.py)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PERF = REPO / "benchmarks" / "perf.py"  # the command line; the code: benchmarks/perf/
sys.path.insert(0, str(REPO / "benchmarks"))

from perf import cli, common  # noqa: E402


def test_interleave_rotates_the_order_and_ratios_pair_rounds():
    calls = []
    variants = {n: (lambda n=n: calls.append(n) or {"x": len(calls)}) for n in "abc"}
    rows = common.interleave(3, variants)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert [r["round"] for r in rows["a"]] == [0, 1, 2]
    ratio = common.paired([{"v": 2.0}, {"v": 3.0}, {"v": 9.0}], [{"v": 1.0}] * 3, "v")
    assert ratio == {"median": 3.0, "all": [2.0, 3.0, 9.0]}


def test_peak_rss_is_the_commands_own_not_inherited_from_a_big_caller():
    import torch  # noqa: F401  (this process holds torch: hundreds of MiB)

    ballast = bytearray(300 << 20)  # and 300 MiB more, touched
    ballast[::4096] = b"x" * len(ballast[::4096])
    small = common.run([sys.executable, "-S", "-c", "pass"])
    big = common.run([sys.executable, "-S", "-c", "b = bytearray(200 << 20); b[::4096] = "
                    "b'x' * len(b[::4096])"])  # fmt: skip
    assert small["peak_rss_mib"] < 100, small
    assert 200 < big["peak_rss_mib"] < 300, big
    with pytest.raises(SystemExit, match="failed"):
        common.run([sys.executable, "-c", "raise SystemExit(3)"])


def test_perf_suites_run_on_micro_write_json_and_render_the_doc(
    tmp_path, micro_dataset, micro_models
):
    results, doc = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    model = micro_models["compromised"]
    cmd = [sys.executable, str(PERF), "train", "eval", "unlearn", "doc", "--profile", "micro",
           "--repeat", "1", "--train-steps", "2", "--budget", "0.2", "--methods", "delete",
           "neg_grad", "--data", str(micro_dataset), "--model", str(model), "--work",
           str(tmp_path / "work"), "--results", str(results), "--doc", str(doc)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]

    train = json.loads((results / "perf-train-micro.json").read_text())
    assert train["settings"]["steps"] == 2 and train["settings"]["global_batch"] == 80
    assert len(train["runs"]) == 6 and all(len(r) == 1 for r in train["runs"].values())
    for rows in train["runs"].values():
        assert rows[0]["samples_per_second"] > 0 and rows[0]["peak_rss_mib"] > 50
        assert len(rows[0]["load_before"]) == 3
    assert train["ratios"]["command_vs_bare"]["median"] > 0
    assert train["machine"]["cpus"] >= 1 and "torch" in train["machine"]
    # Children report their own peak: importing torch costs hundreds of MiB, a bare loop more.
    assert train["runs"]["bare loop (our loss)"][0]["peak_rss_mib"] > 200

    ev = json.loads((results / "perf-eval-micro.json").read_text())
    assert ev["naive_gives_the_same_metrics"] is True
    ours = ev["summary"]["salmubench eval"]
    assert ev["summary"]["naive evaluator"]["images_embedded"] > ours["images_embedded"]
    assert ours["seconds_metrics"]["median"] > 0 and ours["seconds_embedding"]["median"] > 0

    un = json.loads((results / "perf-unlearn-micro.json").read_text())
    assert set(un["summary"]) == {"delete", "neg_grad", "delete (original embeds forget too)"}
    assert un["before_after"] == {"delete": "delete (original embeds forget too)"}
    assert un["summary"]["neg_grad"]["steps_per_second"]["median"] > 0

    text = doc.read_text()
    assert "{{" not in text and "no GPU" in text
    assert "python benchmarks/perf.py train eval unlearn doc --profile micro" in text
    assert "not measured yet: `python benchmarks/perf.py e2e`" in text


def test_the_suites_and_workers_are_tables_and_every_worker_called_exists():
    choices = next(a for a in cli.parser()._actions if a.dest == "suites").choices
    assert set(choices) == {*cli.SUITES, "all", "doc"}
    assert set(cli.IN_ALL) == set(cli.SUITES) - {"gpu", "jobs", "runner"}
    called = {
        node.args[0].value
        for path in (REPO / "benchmarks" / "perf").glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "worker"
    }
    assert called and called <= set(cli.WORKERS), sorted(called - set(cli.WORKERS))
    # No module keeps state: every module-level name is a constant, a function or a class.
    for path in (REPO / "benchmarks" / "perf").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.Global | ast.AugAssign):
                raise AssertionError(f"{path.name}: module-level state at line {node.lineno}")
        assert not any(isinstance(n, ast.Global) for n in ast.walk(tree)), path.name
        assert "globals()" not in path.read_text(), path.name
