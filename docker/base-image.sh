#!/usr/bin/env bash
# The base image for builds on machines that reach no container registry: Debian bookworm
# (minbase) with python3, pip, venv and CA certificates, made with debootstrap and imported
# into podman. Elsewhere, build with the default BASE_IMAGE (python:3.11.14-slim-bookworm).
# Usage: docker/base-image.sh [IMAGE]   (default localhost/debian-py:bookworm; kept if present)
set -euo pipefail
cd "$(dirname "$0")/.."
source docker/podman-env.sh
image=${1:-localhost/debian-py:bookworm}
if podman image exists "$image"; then
    echo "base image $image present"
    exit 0
fi
rootfs=$(mktemp -d "$PODMAN_DIR/rootfs.XXXXXX")
log="$PODMAN_DIR/base-image.log"
trap 'rm -rf "$rootfs"' EXIT
start=$SECONDS
if ! {
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian &&
        chroot "$rootfs" apt-get install -y -qq --no-install-recommends \
            python3 python3-pip python3-venv ca-certificates &&
        chroot "$rootfs" apt-get clean
} >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "docker/base-image.sh: making $image FAILED (full log: $log)" >&2
    exit 1
fi
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
tar --numeric-owner -C "$rootfs" -cf - . | podman import --quiet - "$image" >/dev/null
size=$(podman image ls --noheading --format '{{.Size}}' --filter "reference=$image")
echo "base image $image: $((SECONDS - start)) s, $size"
