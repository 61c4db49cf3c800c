"""Kubeflow Pipelines v2 components: one per stage, thin shells over `salmubench <stage>`.

Image names live HERE, in one place, for the components, the pipelines' `--image`, the
training launcher and `docker/build.sh`:

- `image_tag()` = `<package version>-g<git rev>[-dirty][-cuda]`: what `docker/build.sh`
  tags a build with (`python -m salmubench_components` prints the full reference), so an
  image always names the commit it was built from.
- `DEFAULT_IMAGE` = the version-only tag (`ghcr.io/salmubench/salmubench:<version>`), the
  release image: the committed pipelines in pipelines/compiled/ name it, so they do not
  change with every commit.
- `IMAGE`, what the components run: `$SALMUBENCH_IMAGE`, else `DEFAULT_IMAGE`. It is read
  when this package is imported, i.e. at compile time: set the variable (or pass
  `salmubench pipeline compile --image`) before compiling. `:latest` or no tag is refused:
  a mutable tag makes a compiled pipeline's meaning depend on the day it runs.
- `LEAN_IMAGE`, what the torch-free `synth` and `report` components run
  (docker/Dockerfile.lean, issue #18): `$SALMUBENCH_LEAN_IMAGE`, else `IMAGE`'s tag +
  `-lean`, the tag `docker/build.sh lean` gives the lean build of the same commit
  (`<version>-g<rev>[-dirty]-lean`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from salmubench import __version__

IMAGE_ENV = "SALMUBENCH_IMAGE"
REPOSITORY = "ghcr.io/salmubench/salmubench"
LEAN_IMAGE_ENV = "SALMUBENCH_LEAN_IMAGE"
# the stages of docker/Dockerfile that are images, and docker/Dockerfile.lean
TARGETS = ("cpu", "cuda", "lean")
SOURCE = Path(__file__).resolve().parents[1]  # the checkout, for an editable install


def git_revision(repo: str | os.PathLike = SOURCE) -> str:
    """`g<short sha>` (+ `-dirty` when tracked files changed), or 'nogit' outside a checkout."""
    try:

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
            ).stdout.strip()

        sha = git("rev-parse", "--short=8", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "nogit"
    return f"g{sha}" + ("-dirty" if dirty else "")


def image_tag(target: str = "cpu", revision: str | None = "") -> str:
    """`<version>[-<revision>][-cuda|-lean]`; revision "" = this checkout's, None = version
    only. The checkout is the one this package's files are in (`SOURCE`, symlinks resolved),
    not the working directory."""
    if target not in TARGETS:
        raise ValueError(f"unknown image target {target!r}; valid: {', '.join(TARGETS)}")
    if revision == "":
        revision = git_revision()
    tag = __version__
    if revision and revision != "nogit":
        tag += f"-{revision}"
    return tag + ("" if target == "cpu" else f"-{target}")


def image_ref(repository: str = REPOSITORY, target: str = "cpu", revision: str | None = "") -> str:
    return f"{repository}:{image_tag(target, revision)}"


def check_image(image: str) -> str:
    """The image, or ValueError when its tag is missing or `:latest` (digests pass)."""
    last = image.rsplit("/", 1)[-1]
    if "@" not in last and (":" not in last or last.endswith(":latest")):
        raise ValueError(
            f"image {image!r} has no immutable tag; use a version or digest, "
            f"e.g. {DEFAULT_IMAGE!r} or {image_ref()!r}"
        )
    return image


def lean_image(image: str) -> str:
    """The lean image beside the full image `image`: the same repository and tag + `-lean`
    (what `docker/build.sh lean` tags the same commit with). A digest names no tag to
    derive from: ValueError saying to set `$SALMUBENCH_LEAN_IMAGE`."""
    check_image(image)
    if "@" in image.rsplit("/", 1)[-1]:
        raise ValueError(
            f"image {image!r} is a digest: the lean image cannot be derived from it; "
            f"set ${LEAN_IMAGE_ENV} to the lean image (a tag or digest)"
        )
    return f"{image}-lean"


DEFAULT_IMAGE = image_ref(revision=None)
IMAGE = check_image(os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE)
LEAN_IMAGE = check_image(os.environ.get(LEAN_IMAGE_ENV) or lean_image(IMAGE))
