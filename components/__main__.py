"""`python -m salmubench_components [--target cpu|cuda|lean] [--repository R] [--release]`.

Prints the image reference a build of this checkout gets (docker/build.sh tags with it).
"""

from __future__ import annotations

import argparse

from salmubench_components import REPOSITORY, TARGETS, image_ref


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m salmubench_components", description=__doc__)
    parser.add_argument("--target", choices=TARGETS, default="cpu")
    parser.add_argument("--repository", default=REPOSITORY)
    parser.add_argument(
        "--release", action="store_true", help="the version-only tag (what pipelines name)"
    )
    args = parser.parse_args()
    print(image_ref(args.repository, args.target, None if args.release else ""))


if __name__ == "__main__":
    main()
