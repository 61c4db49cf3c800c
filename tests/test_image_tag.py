"""Image names come from one place (salmubench_components): version + git revision."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from salmubench_components import (
    DEFAULT_IMAGE,
    IMAGE,
    REPOSITORY,
    check_image,
    git_revision,
    image_ref,
    image_tag,
)

from salmubench import __version__


def test_tags_are_version_plus_revision_and_target():
    assert image_tag("cpu", "g1a2b3c4d") == f"{__version__}-g1a2b3c4d"
    assert image_tag("cuda", "g1a2b3c4d-dirty") == f"{__version__}-g1a2b3c4d-dirty-cuda"
    assert image_tag("cpu", None) == __version__  # the release tag
    assert image_tag("cpu", "nogit") == __version__  # outside a checkout: the version alone
    with pytest.raises(ValueError, match="unknown image target 'rocm'; valid: cpu, cuda"):
        image_tag("rocm")


def test_this_checkout_tags_with_its_revision():
    sha = subprocess.run(
        ["git", "rev-parse", "--short=8", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    revision = git_revision()
    assert re.fullmatch(rf"g{sha}(-dirty)?", revision), revision
    assert image_ref() == f"{REPOSITORY}:{__version__}-{revision}"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "salmubench_components",
            "--repository",
            "reg.example/s",
            "--target",
            "cuda",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == f"reg.example/s:{__version__}-{revision}-cuda"


def test_compiled_pipelines_name_the_release_image():
    """The committed pipelines must not change with every commit: version-only tag."""
    assert f"{REPOSITORY}:{__version__}" == DEFAULT_IMAGE
    assert IMAGE == DEFAULT_IMAGE  # the tests run without $SALMUBENCH_IMAGE


@pytest.mark.parametrize(
    "image", ["reg.example/s:latest", "reg.example/s", "localhost:5000/salmubench"]
)
def test_mutable_or_missing_tags_are_refused(image):
    with pytest.raises(ValueError, match="no immutable tag"):
        check_image(image)


@pytest.mark.parametrize(
    "image",
    ["localhost:5000/salmubench:0.1.0-g1a2b3c4d", "reg.example/s@sha256:" + "0" * 64],
)
def test_tags_and_digests_pass(image):
    assert check_image(image) == image


def test_a_latest_image_in_the_environment_fails_at_import():
    proc = subprocess.run(
        [sys.executable, "-c", "import salmubench_components"],
        capture_output=True,
        text=True,
        env={"SALMUBENCH_IMAGE": "reg.example/s:latest", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode != 0
    assert "'reg.example/s:latest' has no immutable tag" in proc.stderr
