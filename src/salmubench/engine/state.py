"""Resumable state: a `.NAME.partial/` folder holds the run in progress (weights,
optimiser, step, run identity, log) until the finished output is renamed into place.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from salmubench import __version__
from salmubench.config import ConfigError
from salmubench.errors import facts
from salmubench.manifest import MANIFEST, OutputExistsError, write_atomic
from salmubench.vocab import STATE_FILE as STATE

log = logging.getLogger(__name__)

T = TypeVar("T")


def partial_dir(out: Path) -> Path:
    """Where a run in progress lives (stable across restarts, unlike a PID-named temp)."""
    return out.with_name(f".{out.name}.partial")


def prepare_output(out: Path, resume: bool, force: bool, what: str = "model") -> str:
    """Decide before any work: 'done' (resume of a finished run), 'resume', or 'fresh'."""
    partial = partial_dir(out)
    if (out / MANIFEST).is_file() and not force:
        if resume:
            return "done"
        raise OutputExistsError(
            f"{out} already holds a finished {what}; pass --force to run again (the old one "
            "is replaced only when the new one is complete)"
        )
    if out.exists() and not (out / MANIFEST).is_file() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"output folder {out} exists, is not empty and is not a {what}")
    if (partial / STATE).is_file():
        if resume:
            return "resume"
        if not force:
            raise OutputExistsError(
                f"an interrupted run of {out} exists ({partial}); pass --resume to continue "
                "it or --force to start over"
            )
    return "fresh"


def load_state(partial: Path, identity: dict[str, Any]) -> dict[str, Any]:
    try:
        state = torch.load(partial / STATE, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt or not ours
        # `from None`: torch's message advises re-loading with weights_only=False, which
        # runs the file's code; ours keeps only its facts.
        raise ConfigError(
            f"{partial / STATE} is not a readable resume state ({type(e).__name__}): "
            f"{facts(e)}; pass --force to start over"
        ) from None
    if state["identity"] != identity:
        raise ConfigError(
            f"{partial / STATE} was written by a different run (config, inputs or seed "
            "differ); pass --force to start over"
        )
    return state


def save_state(
    partial: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    identity: dict[str, Any],
    log_rows: list[dict],
    log_name: str,
) -> None:
    """The resumable state (weights, optimiser, step, run identity, version), atomically."""
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "step": step,
        "identity": identity,
        "package_version": __version__,
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic(partial / STATE, buf.getvalue())
    write_atomic(partial / log_name, "".join(json.dumps(r) + "\n" for r in log_rows))
    log.debug("checkpoint at step %d", step)


def read_log(partial: Path, log_name: str, upto: int) -> list[dict]:
    """Log rows of the interrupted run up to the step it resumes from."""
    path = partial / log_name
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["step"] <= upto]


def fresh_partial(partial: Path, mode: str) -> None:
    if mode == "fresh" and partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)


def run_process_group(
    env: Any,
    threads: int,
    partial: Path,
    mode: str,
    identity: dict[str, Any],
    loop: Callable[[dict[str, Any] | None], T],
) -> T:
    """Join the process group, prepare the partial folder (rank 0), load the state of a
    resumed run, run `loop(state)` on every rank, and always leave the group."""
    env.init()
    torch.set_num_threads(env.threads(threads))
    try:
        if env.is_main:
            fresh_partial(partial, mode)
        env.barrier()
        return loop(load_state(partial, identity) if mode == "resume" else None)
    finally:
        env.close()


def swap_into_place(partial: Path, out: Path) -> None:
    """Replace `out` by the finished `partial` folder; the old output goes only after."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(partial, out)
