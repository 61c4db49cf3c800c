"""`salmubench run`: the full benchmark pipeline under kfp's local runner.

The very pipeline a cluster runs, executed task by task in this Python environment
(`SubprocessRunner(use_venv=False)`: the components import the installed salmubench, no
pip at run time). kfp prints every task's log; this adds a numbered start/end line per
task with its elapsed time, and at the end the leaderboard and where the report is.
"""

from __future__ import annotations

import builtins
import logging
import re
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_START = re.compile(r"Executing task '([^']+)'")
_END = re.compile(r"Task '([^']+)' finished with status (\w+)")


class _Progress(logging.Filter):
    """Turns kfp's task log lines into `[n/N] task ... s` lines and a timing table.

    A filter on the root logger, not a handler: kfp's local runner replaces the root
    logger's handlers for the run (and logs with `logging.info`), but keeps its filters.
    """

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total
        self.started: dict[str, float] = {}
        self.count = 0
        self.timings: dict[str, tuple[float, str]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        self._see(record)
        return True

    def _see(self, record: logging.LogRecord) -> None:
        text = _ANSI.sub("", record.getMessage())
        if m := _START.search(text):
            self.started[m[1]] = time.perf_counter()
            self.count += 1  # ParallelFor iterations start under one task name
            print(f"\n[{self.count:>2}/{self.total}] {m[1]} started", flush=True)
        elif m := _END.search(text):
            seconds = time.perf_counter() - self.started.get(m[1], time.perf_counter())
            # ParallelFor iterations share a task name: keep each one.
            key = m[1] if m[1] not in self.timings else f"{m[1]} #{len(self.timings)}"
            self.timings[key] = (seconds, m[2])
            print(
                f"[{len(self.timings):>2}/{self.total}] {m[1]}: {m[2]} in {seconds:.1f} s",
                flush=True,
            )


def run_local(
    profile: str,
    out: str | Path,
    *,
    methods: str = "all",
    seeds: Sequence[int] = (0,),
    worlds: Sequence[int] = (0,),
    budget: float | None = None,
    pushgateway: str = "",
    parallelism: int = 1,
) -> Path:
    """Run the benchmark pipeline locally into `out`; the report folder (`out`/report).

    `worlds`: dataset/model seeds, one world each (its own dataset, Clean and Compromised
    model); the report scores every world against its own references.
    """
    import kfp.local
    from salmubench_pipelines.definitions import Options, benchmark

    from salmubench.bench import parse_methods

    chosen = parse_methods(methods)  # fail now, not after two trainings
    if not seeds:
        raise ValueError("seeds: give at least one unlearning seed, e.g. 0")
    if not worlds or len(set(worlds)) != len(worlds):
        raise ValueError(f"worlds {list(worlds)}: give distinct dataset seeds, e.g. 0 1 2")
    out = Path(out)
    root = out / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    # the report, and per world: plan, synth, 2 trainings, 2 evaluations, unlearn + eval
    # per run, and the bundle of the world's evaluations
    per_world = 7 + 2 * len(chosen) * len(seeds)
    progress = _Progress(1 + len(worlds) * per_world)
    logging.getLogger().addFilter(progress)
    start = time.perf_counter()
    # kfp indents task logs by swapping builtins.print; ParallelFor iterations run in
    # threads that save and restore it out of order, leaving print indented after the run.
    original_print = builtins.print
    try:
        with warnings.catch_warnings():
            # The image only matters in a cluster; locally kfp warns on every task that
            # its name lacks "python", and that display names are not shown.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            warnings.filterwarnings("ignore", message=".*have no effect in the current local")
            task = benchmark(Options(parallelism=parallelism, pushgateway=pushgateway))(
                profile=profile,
                worlds=list(worlds),
                methods=",".join(chosen),
                seeds=list(seeds),
                budget=float(budget or 0.0),
            )
    finally:
        logging.getLogger().removeFilter(progress)
        builtins.print = original_print
    seconds = time.perf_counter() - start
    report = out / "report"
    if report.exists():
        shutil.rmtree(report)
    # A copy, not a link: the run folder stays readable when kfp/ is pruned or moved.
    shutil.copytree(task.output.path, report)
    print("\nStage timings:")
    for name, (secs, status) in progress.timings.items():
        print(f"  {name:<28} {status:<8} {secs:7.1f} s")
    print((report / "leaderboard.md").read_text(encoding="utf-8"))
    print(f"{seconds:.0f} s in all. Report: {report / 'report.html'}")
    for png in sorted(report.glob("*.png")):
        print(f"  {png}")
    print(f"Task outputs (artifacts, logs): {root}")
    return report


def run_folder(report: Path) -> Path:
    """The kfp run folder (every task's outputs) of the run whose report is `report`."""
    runs = [p for p in (report.parent / "kfp").iterdir() if p.is_dir()]
    if not runs:
        raise ValueError(f"{report.parent / 'kfp'}: no kfp run folder")
    return max(runs, key=lambda p: p.stat().st_mtime)  # kfp names them by start time


def reevaluate_local(
    dataset: str | Path,
    clean: str | Path,
    compromised: str | Path,
    unlearned: Sequence[str | Path],
    out: str | Path,
    *,
    profile: str,
    seed: int = 0,
) -> Path:
    """Run the `reevaluate` pipeline locally on stage folders (paths or s3:// URIs).

    The pipeline a schedule runs in a cluster, here: each checkpoint fetched by URI and
    verified, evaluated, and one report over them all, in `out`/report.
    """
    import kfp.local
    from salmubench_pipelines.definitions import Options, reevaluate

    if not unlearned:
        raise ValueError("unlearned: give at least one unlearned checkpoint to re-evaluate")
    out = Path(out)
    root = out / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    original_print = builtins.print
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            warnings.filterwarnings("ignore", message=".*have no effect in the current local")
            task = reevaluate(Options(parallelism=1))(
                dataset_uri=str(dataset),
                clean_uri=str(clean),
                compromised_uri=str(compromised),
                unlearned_uris=[str(u) for u in unlearned],
                profile=profile,
                seed=seed,
            )
    finally:
        builtins.print = original_print
    report = out / "report"
    if report.exists():
        shutil.rmtree(report)
    shutil.copytree(task.output.path, report)
    return report
