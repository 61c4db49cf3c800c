"""Kubeflow Pipelines v2 components: one per stage, thin shells over `salmubench <stage>`.

The container image is ONE setting: `$SALMUBENCH_IMAGE`, else the image tagged with the
package version (never `:latest`, so a compiled pipeline always names the code it runs).
It is read when this package is imported, i.e. at compile time: set the variable (or pass
`salmubench pipeline compile --image`) before compiling.
"""

from __future__ import annotations

import os

from salmubench import __version__

IMAGE_ENV = "SALMUBENCH_IMAGE"
DEFAULT_IMAGE = f"ghcr.io/salmubench/salmubench:{__version__}"
IMAGE = os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE

if IMAGE.endswith(":latest") or ":" not in IMAGE.rsplit("/", 1)[-1]:
    # A mutable tag makes a compiled pipeline's meaning depend on the day it runs.
    raise ValueError(
        f"${IMAGE_ENV}={IMAGE!r} has no immutable tag; use a version or digest, "
        f"e.g. {DEFAULT_IMAGE!r}"
    )
