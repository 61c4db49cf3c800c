"""House rules that code review would otherwise have to remember."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "src" / "salmubench"


def test_the_library_never_imports_orchestrators():
    """kfp, kubernetes and dvc belong to the shells (components/, pipelines/, dvc.yaml)."""
    pattern = re.compile(r"^\s*(import|from)\s+(kfp|kubernetes|dvc)\b", re.MULTILINE)
    offenders = [str(p.relative_to(REPO)) for p in LIBRARY.rglob("*.py")
                 if pattern.search(p.read_text(encoding="utf-8"))]  # fmt: skip
    assert not offenders


def test_every_library_package_is_packaged():
    """A package missing from pyproject.toml works in the editable checkout and vanishes
    from the wheel that goes into the container image."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(REPO / "src").parts) for p in LIBRARY.rglob("__init__.py")
    }
    assert on_disk <= listed, sorted(on_disk - listed)
