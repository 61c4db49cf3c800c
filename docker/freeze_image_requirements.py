"""Write requirements/image.txt: the runtime closure of salmubench, pinned as installed.

Walks the installed `salmubench` distribution's requirements with its `all` extra (the
Kubeflow shells and DVC; extras requested by a requirement included; `dev`, not) and pins each
package at the version the project venv holds, so the image gets exactly what the tests ran.

  .venv/bin/python docker/freeze_image_requirements.py            # rewrite the file
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


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# The project's own extras the image installs: everything but the dev tools.
IMAGE_EXTRAS = ("all",)


def closure(root: str = "salmubench") -> dict[str, str]:
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

    walk(root, IMAGE_EXTRAS)
    pins.pop(canonical(root))
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
    args = parser.parse_args()
    needed = closure()
    if args.check:
        missing = sorted(set(needed) - set(pinned()))
        if missing:
            print(f"{OUT} lacks {', '.join(missing)}: regenerate it", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(HEADER + "".join(f"{n}=={v}\n" for n, v in needed.items()), "utf-8")
    print(f"{OUT}: {len(needed)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
