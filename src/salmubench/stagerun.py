"""Running a chain of stages in one process (`bench`, `tune`): numbered progress lines,
timings, and reuse of finished stage folders whose manifest shows the same config and
inputs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salmubench.manifest import ManifestError, read_manifest

log = logging.getLogger(__name__)


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


@dataclass
class _Stages:
    """Runs stages in order: numbered progress lines, timings, reuse of finished folders."""

    total: int
    show: bool
    say: Callable[[str], None]
    step_bar: Callable[[str], tuple[Callable, Callable]] | None
    force: bool
    done: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    tag_worlds: bool = False  # prefix stage names with their world

    def run(self, name: str, fn: Callable[..., Any], current: dict | None = None) -> Any:
        """`fn(progress)` unless `current` (a reusable finished manifest) says it is done."""
        self.done += 1
        prefix = f"[{self.done:>2}/{self.total}] {name}"
        if current is not None and not self.force:
            if self.show:
                self.say(f"{prefix}: up to date, reused")
            return current
        if self.show:
            self.say(f"{prefix} ...")
        start = time.perf_counter()
        update, close = (None, lambda: None)
        if self.step_bar is not None and self.show:
            update, close = self.step_bar(name)
        try:
            result = fn(update)
        finally:
            close()
        self.timings[name] = round(time.perf_counter() - start, 2)
        if self.show:
            self.say(f"{prefix}: {self.timings[name]:.1f} s")
        return result


def model_digest(model: Path) -> str:
    """A model folder's manifest digest, or a checkpoint file's sha256 (as evals record)."""
    if model.is_file():
        from salmubench.manifest import sha256_file

        return sha256_file(model)
    return read_manifest(model, kind="model")["digest"]
