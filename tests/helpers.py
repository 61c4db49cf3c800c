"""Helpers shared by test modules (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def spawn(argv: list[str], *, launcher: tuple[str, ...] = ()) -> subprocess.Popen:
    """A real process in its own session, so that it and its workers can be SIGKILLed."""
    cmd = [sys.executable, "-m", *launcher, "salmubench", *argv]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


TORCHRUN = ("torch.distributed.run", "--nproc_per_node=2", "--standalone", "--module")


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    """Wait for `proc`; kill its whole session if it overruns. Its stderr."""
    try:
        _, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:  # never leave worker processes behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return stderr


def kill_after_checkpoint(proc: subprocess.Popen, state: Path, timeout: float = 120) -> None:
    """SIGKILL `proc` (and its session) as soon as its first checkpoint is on disk."""
    deadline = time.monotonic() + timeout
    while not state.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
