"""`salmubench pipeline compile`: the IR YAML of every pipeline, written by a command.

The YAML in pipelines/compiled/ is committed and a test compiles again and compares, so
it is never hand-edited and never drifts from the code (or from params.yaml, whose text
is the default of each pipeline's `params_yaml` parameter).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from salmubench_pipelines.definitions import PIPELINES, Options

log = logging.getLogger(__name__)

COMPILED = Path(__file__).resolve().parent / "compiled"


def compiled_path(name: str, folder: str | os.PathLike = COMPILED) -> Path:
    if name not in PIPELINES:
        raise ValueError(f"unknown pipeline {name!r}; valid: {', '.join(PIPELINES)}")
    return Path(folder) / f"{name}.yaml"


def compile_all(
    out: str | os.PathLike = COMPILED,
    opts: Options | None = None,
    names: tuple[str, ...] = tuple(PIPELINES),
) -> list[Path]:
    """Compile `names` into `out`/<name>.yaml; the paths written."""
    from kfp import compiler

    opts = opts or Options()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        path = compiled_path(name, out)
        compiler.Compiler().compile(PIPELINES[name](opts), str(path))
        log.info("compiled %s -> %s", name, path)
        written.append(path)
    return written
