"""Write requirements/image.txt: the runtime closure of salmubench, pinned as installed.

Walks the installed `salmubench` distribution's requirements with its `all` extra (the
Kubeflow shells and DVC; extras requested by a requirement included; `dev`, not) and pins each
package at the version the project venv holds, so the image gets exactly what the tests ran.
`--lean` writes requirements/lean.txt instead: the closure of `LEAN_ROOTS` only (the lean
image, docker/Dockerfile.lean: the stages that need no torch, and the KFP executor).

  .venv/bin/python docker/freeze_image_requirements.py            # rewrite the file
  .venv/bin/python docker/freeze_image_requirements.py --lean     # rewrite the lean one
  .venv/bin/python docker/freeze_image_requirements.py --check    # exit 1 if a package is missing
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

OUT = Path(__file__).resolve().parents[1] / "requirements/image.txt"
HEADER = """\
# The component image's Python packages, pinned exactly (the runtime closure of
# pyproject.toml's dependencies as resolved in the project venv; no dev tools).
# Regenerate after a dependency change: .venv/bin/python docker/freeze_image_requirements.py
"""
LEAN_OUT = OUT.with_name("lean.txt")
LEAN_HEADER = """\
# The lean image's Python packages (docker/Dockerfile.lean), pinned exactly as in image.txt:
# the closure of what the torch-free stages (synth, plan, report) import plus kfp, whose
# executor runs a component. No torch, open_clip, webdataset, scikit-learn, scipy.
# Regenerate: .venv/bin/python docker/freeze_image_requirements.py --lean
"""
# What the torch-free stages import (report: matplotlib for its plots; its t-interval is
# our own, report/tdist.py, not scipy's), and kfp (a KFP task runs `python -m
# kfp.dsl.executor_main`).
LEAN_ROOTS = ("numpy", "pillow", "faker", "pyyaml", "tqdm", "prometheus-client", "minio",
              "matplotlib", "kfp")  # fmt: skip


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# The project's own extras the image installs: everything but the dev tools.
IMAGE_EXTRAS = ("all",)


def closure(root: str = "salmubench", extras: tuple[str, ...] = IMAGE_EXTRAS) -> dict[str, str]:
    """{canonical name: installed version} of everything `root` needs at run time."""
    pins: dict[str, str] = {}
    done: set[tuple[str, str]] = set()

    def walk(name: str, extras: tuple[str, ...] = ()) -> None:
        dist = metadata.distribution(name)  # PackageNotFoundError: the venv is incomplete
        pins[canonical(name)] = dist.version
        for extra in ("", *extras):
            if (canonical(name), extra) in done:
                continue
            done.add((canonical(name), extra))
            for text in dist.requires or []:
                req = Requirement(text)
                if req.marker is None or req.marker.evaluate({"extra": extra}):
                    walk(req.name, tuple(req.extras))

    walk(root, extras)
    pins.pop(canonical(root))
    return dict(sorted(pins.items()))


def lean_closure() -> dict[str, str]:
    """The closure of LEAN_ROOTS, each of which the full image has too (same versions)."""
    pins: dict[str, str] = {}
    for root in LEAN_ROOTS:
        pins[canonical(root)] = metadata.distribution(root).version
        pins.update(closure(root, ()))
    return dict(sorted(pins.items()))


def pinned(path: Path = OUT) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonical(name)] = version
    return pins


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare the package names")
    parser.add_argument("--lean", action="store_true", help="requirements/lean.txt instead")
    args = parser.parse_args()
    out, header = (LEAN_OUT, LEAN_HEADER) if args.lean else (OUT, HEADER)
    needed = lean_closure() if args.lean else closure()
    if args.check:
        missing = sorted(set(needed) - set(pinned(out)))
        if missing:
            print(f"{out} lacks {', '.join(missing)}: regenerate it", file=sys.stderr)
            return 1
        return 0
    out.write_text(header + "".join(f"{n}=={v}\n" for n, v in needed.items()), "utf-8")
    print(f"{out}: {len(needed)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
