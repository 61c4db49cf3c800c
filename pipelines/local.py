"""`salmubench run`: the full benchmark pipeline under kfp's local runner.

The very pipeline a cluster runs, executed task by task in this Python environment
(`SubprocessRunner(use_venv=False)`: the components import the installed salmubench, no
pip at run time). The terminal gets one line per finished task (`[n/N] name status
seconds`), then the leaderboard and where the report is. kfp's own output (its log lines,
each task's executor input and streamed logs) goes to `<out>/kfp.log`; a failed task's
tail is printed from it.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import logging
import re
import shutil
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

log = logging.getLogger(__name__)

LOG_FILE = "kfp.log"  # in the run folder: everything kfp printed, task by task
TAIL_LINES = 40  # of a failed task's log, printed on the terminal

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_START = re.compile(r"Executing task '([^']+)'")
_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
# A component's own first line (components/shell.py, launcher.py) names what it runs.
_DETAIL = re.compile(
    r"\[salmubench\] (?:train (\w+) started|\w+ started: .* --method (\S+)|attack (\w+) on (\S+))"
)


class RunFailed(RuntimeError):
    """A task of a local pipeline run failed; its log's tail has been printed."""


@dataclass
class _Task:
    name: str
    start: float
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=2 * TAIL_LINES))
    status: str = ""
    detail: str = ""  # which one of a ParallelFor's same-named tasks (the method, variant)


class _Console(io.TextIOBase, logging.Filter):
    """kfp's output to a log file; one line per finished task to the terminal.

    Where kfp writes, and so what this replaces for the run (kfp 2.17, kfp/local):
    - `logging_utils.local_logger_context` gives the root logger a fresh
      `StreamHandler(sys.stdout)` around every task: the handler takes whatever
      `sys.stdout` is at that moment, so it writes here. kfp logs with `logging.info` on
      the root logger and replaces its handlers but keeps its filters, so this is also a
      filter there, reading the task start/end records.
    - `subprocess_task_handler.run_local_subprocess` runs the component with its stderr
      merged into a pipe and `print`s each line (through `indented_print`), i.e. to
      `sys.stdout` again.
    ParallelFor iterations run in a thread pool: each thread's lines belong to the task
    whose start it logged last, which is how a failed task's tail is found.
    """

    def __init__(self, log_file: TextIO, terminal: TextIO, total: int) -> None:
        io.TextIOBase.__init__(self)
        logging.Filter.__init__(self)
        self.file, self.terminal, self.total = log_file, terminal, total
        self.tty = terminal.isatty()
        self.lock = threading.RLock()
        self.running: dict[int, _Task] = {}  # by thread
        self.tasks: list[_Task] = []
        self.partial: dict[int, str] = {}  # a thread's unfinished line

    # -- the stream kfp writes to --------------------------------------------------------
    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False  # no colours or progress bars from inside the run

    def write(self, text: str) -> int:
        thread = threading.get_ident()
        with self.lock:
            self.file.write(text)
            lines = (self.partial.pop(thread, "") + text).split("\n")
            if lines[-1]:
                self.partial[thread] = lines[-1]
            if task := self.running.get(thread):
                task.tail.extend(_ANSI.sub("", line) for line in lines[:-1])
                if not task.detail and (m := _DETAIL.search(text)):
                    task.detail = m[1] or m[2] or f"{m[4]}/{m[3]}"  # attack: model/attack
        return len(text)

    def flush(self) -> None:
        with self.lock:
            self.file.flush()

    # -- the root logger's filter: task starts and ends ----------------------------------
    def filter(self, record: logging.LogRecord) -> bool:
        text = _ANSI.sub("", record.getMessage())
        if m := _START.search(text):
            self._started(m[1])
        elif m := _END.search(text):
            self._finished(m[1], m[2])
        return True

    def _started(self, name: str) -> None:
        with self.lock:
            task = _Task(name, time.perf_counter())
            self.running[threading.get_ident()] = task
            self.tasks.append(task)
            if self.tty:  # a transient line: which task runs now
                done = sum(bool(t.status) for t in self.tasks)
                self._show(f"\r\x1b[K[{done:>2}/{self.total}] {name} ...", newline=False)

    def _finished(self, name: str, status: str) -> None:
        with self.lock:
            # The task this thread started; a failure is also logged by the thread that
            # collects it, so otherwise: the oldest running task of that name.
            task = self.running.get(threading.get_ident())
            if task is None or task.name != name or task.status:
                task = next((t for t in self.tasks if t.name == name and not t.status), None)
            if task is None:
                return
            self._report(task, status)

    def _report(self, task: _Task, status: str) -> None:
        task.status = status
        done = sum(bool(t.status) for t in self.tasks)
        seconds = time.perf_counter() - task.start
        self._show(
            f"{chr(13) + chr(27) + '[K' if self.tty else ''}"
            f"[{done:>2}/{self.total}] {f'{task.name} {task.detail}'.strip():<32} {status:<8} "
            f"{seconds:7.1f} s"
        )
        if status != "SUCCESS":
            # kfp indents a task's streamed lines by 4 and ends them with blank lines
            lines = [line.removeprefix("    ").rstrip() for line in task.tail]
            while lines and not lines[-1]:
                lines.pop()
            lines = lines[-TAIL_LINES:]
            self._show(f"    the last {len(lines)} lines of {task.name}'s log:")
            for line in lines:
                self._show(f"    | {line}")

    def failed(self) -> list[str]:
        """The tasks that failed; one that started and never finished (kfp raised) too."""
        with self.lock:
            for task in self.tasks:
                if not task.status:
                    self._report(task, "FAILURE")
            return [t.name for t in self.tasks if t.status != "SUCCESS"]

    def _show(self, line: str, newline: bool = True) -> None:
        self.terminal.write(line + ("\n" if newline else ""))
        self.terminal.flush()


@contextlib.contextmanager
def quiet(out: Path, total: int) -> Iterator[_Console]:
    """Run kfp inside: its output to `out`/kfp.log, task lines to the terminal."""
    terminal = sys.stdout
    with open(out / LOG_FILE, "w", encoding="utf-8") as log_file:
        console = _Console(log_file, terminal, total)
        root = logging.getLogger()
        root.addFilter(console)
        # kfp indents task logs by swapping builtins.print; ParallelFor iterations run in
        # threads that save and restore it out of order, leaving print indented after.
        original_print = builtins.print
        try:
            with (
                warnings.catch_warnings(),
                contextlib.redirect_stdout(console),
                contextlib.redirect_stderr(console),
            ):
                # The image only matters in a cluster; locally kfp warns on every task that
                # its name lacks "python", and that display names are not shown.
                warnings.filterwarnings("ignore", message=".*non-Python base image.*")
                warnings.filterwarnings("ignore", message=".*have no effect in the current local")
                yield console
        except RuntimeError as e:  # kfp: a task or the pipeline finished with FAILURE
            failed = console.failed()
            print(f"kfp: {_ANSI.sub('', str(e))}", file=log_file)
            raise RunFailed(
                f"{'task ' + ', '.join(failed) if failed else 'the pipeline'} failed "
                f"({_ANSI.sub('', str(e))}); kfp's full log: {out / LOG_FILE}"
            ) from None
        finally:
            root.removeFilter(console)
            builtins.print = original_print
            log_file.flush()


def _local_run(out: Path, total: int, pipeline: Callable[[], object]) -> Path:
    """Run `pipeline` (a call of a pipeline function) quietly; the report copied to out."""
    import kfp.local

    root = out / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    with quiet(out, total):
        task = pipeline()
    report = out / "report"
    if report.exists():
        shutil.rmtree(report)
    # A copy, not a link: the run folder stays readable when kfp/ is pruned or moved.
    shutil.copytree(task.output.path, report)
    return report


def leaderboard_table(markdown: str) -> str:
    """The `## Leaderboard` section of leaderboard.md (the ranked table), without its title."""
    parts = re.split(r"^## ", markdown, flags=re.MULTILINE)
    section = next((p for p in parts if p.startswith("Leaderboard\n")), None)
    if section is None:
        raise ValueError("leaderboard.md has no '## Leaderboard' section")
    return section.split("\n", 1)[1].strip()


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
    method_files: Sequence[str | Path] = (),
    attacks: Sequence[str] = (),
) -> Path:
    """Run the benchmark pipeline locally into `out`; the report folder (`out`/report).

    `worlds`: dataset/model seeds, one world each (its own dataset, Clean and Compromised
    model); the report scores every world against its own references. `methods` may name
    installed packages' methods (every task runs in this environment, so it finds their
    entry points) and those of `method_files` (at most one), a method file whose text the
    pipeline's `method_py` parameter carries to the tasks that load it, as in a cluster.
    `attacks`: the relearning attacks (docs/ATTACKS.md) run on Clean and on every unlearned
    model of each world; none by default here (each costs about a minute per model on tiny),
    while the compiled pipeline's default is all four.
    """
    from salmubench_pipelines.definitions import Options, benchmark

    from salmubench.attack.stage import check_attack
    from salmubench.unlearn import parse_methods
    from salmubench.unlearn.external import load_method_file

    if len(method_files) > 1:
        raise ValueError(
            f"--method-file given {len(method_files)} times ({', '.join(map(str, method_files))})"
            ": the pipeline carries one method file; put its methods in one file"
        )
    method_py = ""
    for path in method_files:  # registered here first: a broken file fails before any task
        load_method_file(path)
        method_py = Path(path).read_text(encoding="utf-8")
    chosen = parse_methods(methods)  # fail now, not after two trainings
    if not seeds:
        raise ValueError("seeds: give at least one unlearning seed, e.g. 0")
    if not worlds or len(set(worlds)) != len(worlds):
        raise ValueError(f"worlds {list(worlds)}: give distinct dataset seeds, e.g. 0 1 2")
    for name in attacks:
        check_attack(name)
    if len(set(attacks)) != len(attacks):
        raise ValueError(f"attacks {list(attacks)}: name each attack once")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # the report, and per world: plan, synth, 2 trainings, 2 evaluations, unlearn + eval
    # per run, the bundle of the world's evaluations, plan attacks and the world's models;
    # per attack: Clean and every run
    runs = len(chosen) * len(seeds)
    total = 1 + len(worlds) * (9 + 2 * runs + len(attacks) * (1 + runs))
    with_attacks = f", attacks {', '.join(attacks)}" if attacks else ""
    print(
        f"salmubench run: profile {profile}, {len(chosen)} methods x {len(seeds)} seeds x "
        f"{len(worlds)} worlds{with_attacks}, {total} tasks; kfp's logs: {out / LOG_FILE}",
        flush=True,
    )
    start = time.perf_counter()
    report = _local_run(
        out,
        total,
        lambda: benchmark(Options(parallelism=parallelism, pushgateway=pushgateway))(
            profile=profile,
            worlds=list(worlds),
            methods=",".join(chosen),
            seeds=list(seeds),
            budget=float(budget or 0.0),
            method_py=method_py,
            attacks=list(attacks),
        ),
    )
    seconds = time.perf_counter() - start
    print()
    print(leaderboard_table((report / "leaderboard.md").read_text(encoding="utf-8")))
    print()
    figures = ", ".join(p.name for p in sorted(report.glob("*.png")))
    print(f"{seconds:.0f} s in all. Report: {report / 'report.html'}")
    print(f"  also in {report}: leaderboard.md, leaderboard.json, {figures}")
    print(f"  task outputs: {out / 'kfp'}; kfp's full logs: {out / LOG_FILE}")
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
    arch: str = "",
    device: str = "auto",
) -> Path:
    """Run the `reevaluate` pipeline locally on stage folders (paths or s3:// URIs).

    The pipeline a schedule runs in a cluster, here: each checkpoint fetched by URI and
    verified, evaluated, and one report over them all, in `out`/report. `arch`: `clean`
    and `compromised` are checkpoint files of that architecture (docs/OFFICIAL.md).
    """
    from salmubench_pipelines.definitions import Options, reevaluate

    if not unlearned:
        raise ValueError("unlearned: give at least one unlearned checkpoint to re-evaluate")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # fetch + eval of the dataset's references and of each checkpoint, and the report
    total = 1 + 2 * (2 + len(unlearned)) + 1
    return _local_run(
        out,
        total,
        lambda: reevaluate(Options(parallelism=1))(
            dataset_uri=str(dataset),
            clean_uri=str(clean),
            compromised_uri=str(compromised),
            unlearned_uris=[str(u) for u in unlearned],
            profile=profile,
            seed=seed,
            arch=arch,
            device=device,
        ),
    )
