"""The image's inputs stay in step with the project (the build itself: `make container-test`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_image_requirements_hold_every_runtime_dependency():
    """A dependency added to pyproject.toml must reach requirements/image.txt, else the
    image lacks it (the build's `pip check` would fail too, but only in the slow CI step)."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "docker/freeze_image_requirements.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_image_requirements_are_all_pinned():
    lines = [
        line
        for line in (REPO / "requirements/image.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines
    for line in lines:
        assert re.fullmatch(r"[a-z0-9-]+==[0-9][0-9a-z.+!-]*", line), line


def test_build_context_admits_exactly_what_the_dockerfile_copies():
    """.dockerignore denies everything (`*`) but the files the Dockerfile COPYs: no venv,
    runs, data or credentials can reach the build context."""
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    rules = [r for r in ignore if r and not r.startswith("#")]
    assert rules[0] == "*"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = set()
    for line in (REPO / "docker/Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(s.rstrip("/") for s in line.split()[1:-1])
    assert copied == allowed
