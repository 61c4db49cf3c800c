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


def pins(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    assert lines
    for line in lines:
        assert re.fullmatch(r"[a-z0-9-]+==[0-9][0-9a-z.+!-]*", line), line
    return dict(line.split("==") for line in lines)


def test_image_requirements_are_all_pinned():
    pins(REPO / "requirements/image.txt")


def test_lean_image_requirements_hold_its_closure_without_torch():
    """requirements/lean.txt: the torch-free stages' closure (regenerated like image.txt),
    every package at the full image's version, and none of the heavy ones."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "docker/freeze_image_requirements.py"), "--check", "--lean"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lean, full = pins(REPO / "requirements/lean.txt"), pins(REPO / "requirements/image.txt")
    assert {name: full.get(name) for name in lean} == lean
    heavy = {"torch", "torchvision", "open-clip-torch", "webdataset", "scikit-learn", "scipy"}
    assert not heavy & set(lean)
    assert {"numpy", "pillow", "faker", "kfp", "matplotlib"} <= set(lean)


def test_build_context_admits_exactly_what_the_dockerfile_copies():
    """.dockerignore denies everything (`*`) but the files the Dockerfile COPYs: no venv,
    runs, data or credentials can reach the build context."""
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    rules = [r for r in ignore if r and not r.startswith("#")]
    assert rules[0] == "*"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = set()
    for dockerfile in ("docker/Dockerfile", "docker/Dockerfile.lean"):
        for line in (REPO / dockerfile).read_text().splitlines():
            if line.startswith("COPY ") and "--from=" not in line:
                copied.update(s.rstrip("/") for s in line.split()[1:-1])
    assert copied == allowed
