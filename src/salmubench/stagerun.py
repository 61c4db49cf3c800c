"""Running a chain of stages (`bench`, `tune`): numbered progress lines, timings, and reuse
of finished stage folders whose manifest shows the same config and inputs.

With `jobs` > 1 the independent stages of a chain run side by side: the caller fans out
with `_Stages.map` (each item's stages in order, in a thread of this process), and every
stage's work runs in one of `jobs` worker processes, each pinned to its own share of the
CPUs (`cpus // jobs`). So a torch stage always runs with the same number of threads,
whatever runs beside it: its results depend on the machine's CPUs and `jobs`, never on
timing. Only work given as a `Call` (picklable) goes to a worker; a lambda runs here."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from salmubench.config import ConfigError
from salmubench.manifest import ManifestError, read_manifest

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def _reusable(folder: Path, kind: str, **expected: Any) -> dict[str, Any] | None:
    """The manifest of a finished `folder` whose fields equal `expected`, else None."""
    try:
        manifest = read_manifest(folder, kind=kind)
    except ManifestError:
        return None
    for key, value in expected.items():
        if manifest.get(key) != value:
            log.info("%s: %s changed; rebuilding", folder, key)
            return None
    return manifest


@dataclass(frozen=True)
class Call:
    """A stage's work as data, so that it can run in a worker process: `fn(*args,
    **kwargs)`, with the step bar (None in a worker) passed as `progress=` if `bar`."""

    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    bar: bool = False

    def __call__(self, progress: Callable | None) -> Any:
        kwargs = {**self.kwargs, "progress": progress} if self.bar else self.kwargs
        return self.fn(*self.args, **kwargs)


def available_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def check_jobs(jobs: int) -> int:
    """`jobs` if this machine can give each job a CPU of its own, else a clear error."""
    cpus = len(available_cpus())
    if not 1 <= jobs <= cpus:
        raise ConfigError(f"jobs={jobs}: stages side by side need a CPU each; valid: 1..{cpus}")
    return jobs


def _worker_start(slot: Any, per: int, method_files: Sequence[str], level: int) -> None:
    """A worker process: take the next free share of the CPUs (so torch's threads, synth's
    processes and `threads: 0` all follow), log as the parent does, load its method files."""
    with slot.get_lock():
        index, slot.value = slot.value, slot.value + 1
    cpus = available_cpus()
    mine = cpus[index * per : (index + 1) * per] or cpus[-per:]
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, mine)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("salmubench").setLevel(level)
    if method_files:
        from salmubench.unlearn.external import load_method_files

        load_method_files(list(method_files))


def _timed(fn: Callable[..., Any], progress: Callable | None = None) -> tuple[Any, float]:
    """`fn(progress)` and its seconds (in a worker: the stage's own, not its wait)."""
    start = time.perf_counter()
    return fn(progress), time.perf_counter() - start


@dataclass
class _Stages:
    """Runs stages: numbered progress lines, timings, reuse of finished folders; with
    `jobs` > 1, `map` fans out and the stages' work runs in worker processes."""

    total: int
    show: bool
    say: Callable[[str], None]
    step_bar: Callable[[str], tuple[Callable, Callable]] | None
    force: bool
    done: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    tag_worlds: bool = False  # prefix stage names with their world
    jobs: int = 1
    _pool: ProcessPoolExecutor | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _say(self, line: str) -> None:
        with self._lock:  # whole lines, whichever thread says them
            self.say(line)

    def run(self, name: str, fn: Callable[..., Any], current: dict | None = None) -> Any:
        """`fn(progress)` unless `current` (a reusable finished manifest) says it is done."""
        with self._lock:
            self.done += 1
            prefix = f"[{self.done:>2}/{self.total}] {name}"
        if current is not None and not self.force:
            if self.show:
                self._say(f"{prefix}: up to date, reused")
            return current
        if self.show:
            self._say(f"{prefix} ...")
        if self.jobs > 1 and isinstance(fn, Call):  # timed in the worker: not its wait
            result, seconds = self._worker_pool().submit(_timed, fn).result()
        else:
            update, close = (None, lambda: None)
            if self.step_bar is not None and self.show and self.jobs == 1:
                update, close = self.step_bar(name)
            try:
                result, seconds = _timed(fn, update)
            finally:
                close()
        with self._lock:
            self.timings[name] = round(seconds, 2)
        if self.show:
            self._say(f"{prefix}: {self.timings[name]:.1f} s")
        return result

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """`fn` of each item, in order; with jobs > 1 side by side (each item's stages
        still in order). The first failure is raised once the others have stopped."""
        items = list(items)
        if self.jobs == 1 or len(items) < 2:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=len(items)) as threads:
            futures = [threads.submit(fn, item) for item in items]
            errors = [f.exception() for f in futures]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first
        return [f.result() for f in futures]

    def _worker_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                from salmubench.unlearn.registry import ORIGINS

                files = sorted({o.source for o in ORIGINS.values() if o.kind == "file"})
                ctx = multiprocessing.get_context("spawn")
                per = max(1, len(available_cpus()) // self.jobs)
                level = logging.getLogger("salmubench").getEffectiveLevel()
                self._pool = ProcessPoolExecutor(
                    self.jobs, ctx, _worker_start, (ctx.Value("i", 0), per, files, level)
                )
            return self._pool

    def close(self) -> None:
        """Stop the worker processes (after their running stages: nothing half-written)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def model_digest(model: Path) -> str:
    """A model folder's manifest digest, or a checkpoint file's sha256 (as evals record)."""
    if model.is_file():
        from salmubench.manifest import sha256_file

        return sha256_file(model)
    return read_manifest(model, kind="model")["digest"]
